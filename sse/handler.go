package sse

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/clinicpulse/clinicpulse/limits"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/store"
	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// Defaults of Config.
const (
	DefaultHeartbeat    = 15 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	DefaultBuffer       = 64
	DefaultReplayPage   = 500
)

// Log is the change log a stream replays from.
type Log interface {
	ReadEvents(ctx context.Context, q models.EventQuery) ([]models.Event, error)
	LogHead(ctx context.Context, tenantID string) (store.Head, error)
	// CheckPosition is nil when a tagged cursor names an event of this
	// history of the log (store.Store.CheckPosition); an error wrapping
	// store.ErrOtherHistory when it does not.
	CheckPosition(ctx context.Context, tenantID string, p models.Position) error
	// PositionAt returns the position at seq, tagged when the event at seq
	// is still in the log (store.Store.PositionAt).
	PositionAt(ctx context.Context, tenantID string, seq int64) (models.Position, error)
}

// Syncer is the relay's hand-off: fn runs with the tenant's last dispatched
// seq while no batch of that tenant is being published.
type Syncer interface {
	Sync(tenantID string, fn func(dispatched int64))
}

// Config configures a Handler.
type Config struct {
	Log   Log
	Relay Syncer
	// Heartbeat is the interval of ':' comments (HEARTBEAT).
	Heartbeat time.Duration
	// MaxDuration ends each response after 85–100% of it, with jitter
	// (STREAM_MAX_DURATION); 0 never does.
	MaxDuration time.Duration
	// WriteTimeout bounds each write to a client; a client that does not
	// take a write in time is disconnected.
	WriteTimeout time.Duration
	// Buffer is how many batches a stream may fall behind before it is
	// dropped as too slow.
	Buffer int
	// ReplayPage is how many events one replay read takes from the log.
	ReplayPage int
	// Writers is how many goroutines write to the streams on plain TCP
	// connections (0: one per CPU).
	Writers int
	// NoHijack keeps HTTP/1.x streams on net/http's response writer
	// instead of taking their connections over (see Stream).
	NoHijack bool
	// RetryMin and RetryMax bound the jittered retry: line (ms).
	RetryMin, RetryMax time.Duration
	// Limits bound what one verified caller, and one tenant, may hold and
	// open; zero fields take their defaults.
	Limits Limits
	Logger *slog.Logger
}

// Limits bound the streams of each verified identity (limits.IdentityOf:
// tenant and subject, never the bytes of a header; a platform operator is
// one identity whatever tenant it names) and of each tenant on this
// instance, and how often an identity may open a stream or mint a ticket.
// A request over a bound is answered 429 problem+json with Retry-After
// (RFC 6585 §4, RFC 9110 §10.2.3) before any byte of a stream. A zero
// field takes its default; a negative one removes the bound.
type Limits struct {
	// PerIdentityStaff bounds the concurrent streams of an admin,
	// coordinator, doctor or platform identity (default 16).
	PerIdentityStaff int
	// PerIdentityPublic bounds those of a display or patient identity
	// (default 4): a screen or a phone needs one, a few tabs at most.
	PerIdentityPublic int
	// PerTenant bounds a tenant's concurrent streams (default 2,000).
	PerTenant int
	// OpenRate is the stream opens per second each identity may make, in
	// bursts of up to OpenBurst (defaults 2/s and 20); ticket mints have a
	// bucket of the same size of their own.
	OpenRate  float64
	OpenBurst int
}

// Defaults of Limits.
const (
	DefaultStreamsPerIdentityStaff  = 16
	DefaultStreamsPerIdentityPublic = 4
	DefaultStreamsPerTenant         = 2000
	DefaultOpenRate                 = 2
	DefaultOpenBurst                = 20
)

// rateIdentities bounds each rate table: the least recently seen identity
// is forgotten first (it comes back with a full bucket).
const rateIdentities = 1 << 14

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.PerIdentityStaff, DefaultStreamsPerIdentityStaff)
	def(&l.PerIdentityPublic, DefaultStreamsPerIdentityPublic)
	def(&l.PerTenant, DefaultStreamsPerTenant)
	def(&l.OpenBurst, DefaultOpenBurst)
	if l.OpenRate == 0 {
		l.OpenRate = DefaultOpenRate
	}
	return l
}

// newRate returns the limiter of Limits' rate, or nil for none.
func (l Limits) newRate() *limits.Rate {
	if l.OpenRate < 0 || l.OpenBurst < 0 {
		return nil
	}
	return limits.NewRate(rate.Limit(l.OpenRate), l.OpenBurst, rateIdentities)
}

// perIdentity returns the bound of an actor's identity (0: none).
func (l Limits) perIdentity(a models.Actor) int {
	n := l.PerIdentityStaff
	if !a.Scope().SeesActors() {
		n = l.PerIdentityPublic
	}
	return max(n, 0)
}

// Handler serves GET /api/v1/stream.
type Handler struct {
	cfg          Config
	hub          *Hub
	holds        *limits.Holds
	opens, mints *limits.Rate // nil: not rate-limited
}

// NewHandler returns a stream handler and its hub; register Hub() with the
// relay before the relay starts.
func NewHandler(cfg Config) *Handler {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.ReplayPage <= 0 {
		cfg.ReplayPage = DefaultReplayPage
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Second
	}
	if cfg.RetryMax <= 0 || cfg.RetryMax > 5*time.Second {
		cfg.RetryMax = 5 * time.Second
	}
	cfg.RetryMin = min(cfg.RetryMin, cfg.RetryMax)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// The clock's period: the heartbeat, or finer when streams have a time
	// limit, so that a response ends within 5% of it.
	period := cfg.Heartbeat
	if cfg.MaxDuration > 0 {
		period = min(period, max(cfg.MaxDuration/20, 10*time.Millisecond))
	}
	hub := NewHub(cfg.Buffer, period, cfg.Logger)
	hub.heartbeat, hub.writeTimeout, hub.maxDuration = cfg.Heartbeat, cfg.WriteTimeout, cfg.MaxDuration
	hub.setWriters(cfg.Writers)
	cfg.Limits = cfg.Limits.withDefaults()
	return &Handler{cfg: cfg, hub: hub, holds: limits.NewHolds(max(cfg.Limits.PerTenant, 0)),
		opens: cfg.Limits.newRate(), mints: cfg.Limits.newRate()}
}

// allow takes one request from the identity's bucket of r, or returns the
// 429 error to answer (with Retry-After set).
func allow(c echo.Context, r *limits.Rate, id limits.Identity, what string) error {
	if r == nil {
		return nil
	}
	ok, wait := r.Allow(id, time.Now())
	if ok {
		return nil
	}
	secs := limits.RetryAfterSeconds(wait)
	c.Response().Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	return models.Errorf(models.ERATELIMIT, "too many %s with these credentials; retry after %d s", what, secs)
}

// hold takes one of the identity's and the tenant's concurrent streams, or
// returns the 429 error to answer (with Retry-After set).
func (h *Handler) hold(c echo.Context, id limits.Identity, a models.Actor) (release func(), err error) {
	per := h.cfg.Limits.perIdentity(a)
	release, ok := h.holds.Acquire(id, a.TenantID, per)
	if ok {
		return release, nil
	}
	secs := limits.RetryAfterSeconds(h.cfg.RetryMax)
	c.Response().Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	if per > 0 && h.holds.Held(id) >= per {
		return nil, models.Errorf(models.ERATELIMIT, "these credentials hold their %d streams already; close one, or retry after %d s", per, secs)
	}
	return nil, models.Errorf(models.ERATELIMIT, "the tenant holds its %d streams on this server already; retry after %d s", h.cfg.Limits.PerTenant, secs)
}

// Hub returns the handler's hub, the relay's sink.
func (h *Handler) Hub() *Hub { return h.hub }

// Shutdown ends every stream cleanly (each client reconnects, to another
// instance if this one is going away) and waits for them within ctx.
func (h *Handler) Shutdown(ctx context.Context) {
	h.hub.Close()
	if err := h.hub.Drain(ctx); err != nil {
		h.cfg.Logger.Warn("sse: streams still open at shutdown", "err", err)
	}
}

// cursor is where a client resumes.
type cursor struct {
	seq int64
	tag string // the tag of the event at seq ("" for a plain integer cursor)
	set bool   // a cursor was given
	bad bool   // ... and it is not a position (models.ParsePosition)
	// verified: tag is the tag of the event at seq in this log (checked
	// by sameHistory), so the stream may send it back as a position.
	verified bool
}

// resumeCursor reads the client's cursor: the Last-Event-ID header (sent by
// EventSource when it reconnects, keeping the original URL) wins over
// ?since=. Either is "<seq>" or "<seq>.<tag>" (models.ParsePosition).
func resumeCursor(c echo.Context) cursor {
	// A repeated header or parameter names no one cursor: which one the
	// client meant is not obvious, so neither is taken (a reset follows).
	hs, qs := c.Request().Header.Values("Last-Event-ID"), c.QueryParams()["since"]
	if len(hs) > 1 || (len(hs) == 0 && len(qs) > 1) {
		return cursor{set: true, bad: true}
	}
	s := c.Request().Header.Get("Last-Event-ID")
	if s == "" {
		s = c.QueryParam("since")
	}
	if s == "" {
		return cursor{}
	}
	p, err := models.ParsePosition("Last-Event-ID", s)
	if err != nil {
		return cursor{set: true, bad: true}
	}
	return cursor{seq: p.Seq, tag: p.Tag, set: true}
}

// Stream serves a tenant's events as Server-Sent Events to the
// authenticated actor: a retry: line, the replay after the client's cursor
// (or a reset), then live events, heartbeats, and a last comment when the
// stream ends. Errors are answered as problem+json only before the stream
// starts (a bad ?topics=); once it has, a failure ends the response and the
// client resumes, because an error status would stop EventSource for good.
func (h *Handler) Stream(c echo.Context) error {
	st, err := h.open(c)
	if st == nil {
		return err
	}
	if st.conn == nil {
		defer st.end()
		if st.start() {
			st.live()
		}
		return nil
	}
	// Hijacked: start on the request's goroutine, then let it (and
	// net/http's connection state with its buffers) go.
	if !st.start() {
		st.end()
		return nil
	}
	if st.raw != nil {
		// A plain TCP connection: the shard's writer carries the stream,
		// and its reader releases the stream's hold when it ends.
		_ = st.conn.SetWriteDeadline(time.Time{})
		st.sub.release, st.release = st.release, nil
		if !h.hub.attach(st.sub, st.conn, st.raw) {
			st.release, st.sub.release = st.sub.release, nil // no reader was started
			st.buf = AppendComment(st.buf[:0], "server shutting down; reconnect")
			_ = st.flushBuf()
			st.end()
		}
		return nil
	}
	// TLS: a fresh goroutine with a shallow stack carries the stream.
	go st.run()
	return nil
}

// run carries a hijacked stream until it ends.
func (st *stream) run() {
	defer st.end()
	st.live()
}

// hijack takes the HTTP/1.x connection over from net/http: the status line
// and headers are written here, the body is the frames until the stream
// closes the connection (Connection: close, no chunked framing), and the
// stream's context ends when the client closes its side. It reports false
// (nothing written) when the connection cannot be hijacked.
func (st *stream) hijack(res *echo.Response, rc *http.ResponseController) bool {
	conn, _, err := rc.Hijack()
	if err != nil {
		return false
	}
	// The stream owns the connection now: the server's ReadTimeout, which
	// bounds a request's header and body, must not end the reader that
	// waits for the client to leave.
	_ = conn.SetReadDeadline(time.Time{})
	hd := res.Header().Clone()
	hd.Set("Connection", "close")
	hd.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	_ = hd.Write(&b)
	b.WriteString("\r\n")
	res.Status, res.Committed = http.StatusOK, true // for the request log and metrics
	st.conn, st.out = conn, connSink{conn}
	st.buf = append(st.buf, b.Bytes()...)
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			// Writer-driven: the connection's reader is started by attach;
			// the request's context stays valid until Stream returns.
			st.raw = raw
			return true
		}
	}
	// net/http cancels the request's context when the handler returns:
	// the stream's own ends when the client closes its side (a read
	// returns) or the stream closes the connection.
	ctx, cancel := context.WithCancel(context.WithoutCancel(st.ctx))
	st.ctx, st.cancel = ctx, cancel
	go func() {
		var one [1]byte
		_, _ = conn.Read(one[:])
		cancel()
	}()
	return true
}

// sink is where a stream's bytes go: the HTTP response, or the connection
// after a hijack. Its SetWriteDeadline may be called from any goroutine.
type sink interface {
	Write(p []byte) (int, error)
	Flush() error
	SetWriteDeadline(t time.Time) error
}

type responseSink struct {
	w  *echo.Response
	rc *http.ResponseController
}

func (r responseSink) Write(p []byte) (int, error)        { return r.w.Write(p) }
func (r responseSink) Flush() error                       { return r.rc.Flush() }
func (r responseSink) SetWriteDeadline(t time.Time) error { return r.rc.SetWriteDeadline(t) }

type connSink struct{ net.Conn }

func (connSink) Flush() error { return nil }

// open checks the request, sends the headers and returns the stream, or
// nil (with the error to answer, or none when the hub is shutting down).
//
// Stream and live are kept small, and the work of starting a stream
// is in functions that have returned by the time it idles: an idle stream's
// goroutine then uses under 4 KiB of stack, and the garbage collector
// halves its stack (16 KiB after the request's authentication) to 8 KiB.
//
//go:noinline
func (h *Handler) open(c echo.Context) (*stream, error) {
	req := c.Request()
	ctx := req.Context()
	actor, ok := models.ActorFromContext(ctx)
	if !ok || actor.TenantID == "" {
		return nil, models.Errorf(models.EUNAUTHORIZED, "missing credentials")
	}
	topics, err := models.ParseTopics(c.QueryParam("topics"))
	if err != nil {
		return nil, err
	}
	id := limits.IdentityOf(actor)
	if err := allow(c, h.opens, id, "stream opens"); err != nil {
		return nil, err
	}
	release, err := h.hold(c, id, actor)
	if err != nil {
		return nil, err
	}
	res := c.Response()
	hd := res.Header()
	hd.Set(echo.HeaderContentType, "text/event-stream")
	// no-transform: proxies must not compress or rewrite the stream;
	// X-Accel-Buffering: nginx must not buffer it.
	hd.Set("Cache-Control", "no-cache, no-transform")
	hd.Set("X-Accel-Buffering", "no")
	hd.Del(echo.HeaderContentLength)
	if req.Method == http.MethodHead {
		// RFC 9110 §9.3.2: the headers a GET would get, and no body: no
		// hijack, no subscription.
		release()
		res.WriteHeader(http.StatusOK)
		return nil, nil
	}

	st := &stream{h: h, ctx: ctx, tenant: actor.TenantID, scope: actor.Scope(), topics: topics, cur: resumeCursor(c),
		release: release, sentID: -1}
	rc := http.NewResponseController(res)
	if req.ProtoMajor != 1 || h.cfg.NoHijack || !st.hijack(res, rc) {
		// The stream owns the response now: the server's ReadTimeout must
		// not cut it (HTTP/2 arms it per stream; HTTP/1.x on the
		// connection). Unsupported only on writers that have no deadline.
		_ = rc.SetReadDeadline(time.Time{})
		res.WriteHeader(http.StatusOK)
		st.out = responseSink{res, rc}
	}
	st.buf = AppendRetry(st.buf, h.retry())
	if !h.hub.enter() {
		// Shutting down: tell the client to go elsewhere.
		st.buf = AppendComment(st.buf, "server shutting down")
		_ = st.flushBuf()
		st.finish()
		st.release()
		return nil, nil
	}
	return st, nil
}

// end leaves the hub: first the audience, so that nothing else touches the
// connection's deadline, then the deadline for the response's end, then
// the count of running streams and the identity's hold.
func (st *stream) end() {
	if st.sub != nil {
		st.h.hub.unsubscribe(st.sub)
	}
	st.finish()
	st.h.hub.leave()
	if st.release != nil {
		st.release()
		st.release = nil
	}
}

// retry returns a jittered reconnection delay in ms, so that clients cut at
// once (a deploy, a proxy restart) come back spread out.
func (h *Handler) retry() int64 {
	lo, hi := h.cfg.RetryMin.Milliseconds(), h.cfg.RetryMax.Milliseconds()
	return lo + rand.Int64N(hi-lo+1)
}

// stream is one response: its start runs on the request's goroutine; then
// the shard's writer carries it (plain TCP), or live runs on the request's
// goroutine (HTTP/2) or on a fresh one (TLS).
type stream struct {
	h      *Handler
	ctx    context.Context // the request's, or the hijacked connection's
	cancel context.CancelFunc
	conn   net.Conn        // set when hijacked
	raw    syscall.RawConn // set when hijacked from plain TCP
	out    sink
	cur    cursor
	tenant string
	scope  models.Scope
	topics models.Topics
	sub    *subscriber
	// release gives back the identity's and tenant's hold (limits.Holds)
	// when the stream ends; a writer-driven stream's reader takes it over.
	release func()
	// sentID is the id of the last frame written (-1: none yet).
	sentID int64

	deadline time.Time // the write deadline in force
	lastBeat time.Time // the last heartbeat (or the start)
	endAt    time.Time // when the time limit ends the stream (zero: never)
	buf      []byte    // frames not yet written
	failed   bool      // a write failed: the connection is gone
}

var errGone = errors.New("sse: stream ended")

// start registers the stream with the hub and writes what comes before
// the live events: the retry line, then a reset or the replay after the
// client's cursor. It reports whether the stream goes on.
//
//go:noinline
func (st *stream) start() bool {
	h, ctx, cur := st.h, st.ctx, st.cur

	var dispatched int64
	var first *batch
	var inRecent bool
	at := int64(-1)
	if cur.set && !cur.bad {
		at = cur.seq
	}
	h.cfg.Relay.Sync(st.tenant, func(d int64) {
		dispatched = d
		st.sub, first, inRecent = h.hub.subscribe(st.tenant, st.scope, st.topics, st.raw == nil, st.out, min(at, d))
	})
	sub := st.sub
	sub.floor = dispatched
	if inRecent && at < dispatched && (first == nil || len(sub.at.events) == 0 || sub.at.lastSeq() != dispatched) {
		inRecent = false // not what the hub published last: ask the log
	}

	switch {
	case cur.bad:
		st.reset(ResetInvalid, dispatched)
	case !cur.set:
		// Live from here.
	case cur.seq > dispatched:
		// Ahead of the log (a restored database), or seen elsewhere (a
		// poll, another instance) before this instance dispatched it.
		head, err := h.cfg.Log.LogHead(ctx, st.tenant)
		if err != nil {
			st.abort(ctx, "log head", err)
			return false
		}
		if cur.seq > head.Seq {
			st.reset(ResetAhead, dispatched)
			break
		}
		same, err := st.sameHistory(cur)
		if err != nil {
			st.abort(ctx, "check cursor", err)
			return false
		}
		st.cur.verified = same && cur.tag != ""
		if !same {
			st.reset(ResetHistory, dispatched)
		} else {
			sub.floor = cur.seq
		}
	default:
		// A tagged cursor must name an event of this history of the log:
		// after a restore from a backup, seqs are reused for other events.
		same, err := st.sameHistory(cur)
		if err != nil {
			st.abort(ctx, "check cursor", err)
			return false
		}
		st.cur.verified = same && cur.tag != ""
		switch {
		case !same:
			st.reset(ResetHistory, dispatched)
		case cur.seq == dispatched:
			// Live from here (the common reconnect of an up-to-date
			// client costs no query).
		case inRecent:
			// Recent enough for the hub's memory: no query, frames
			// already encoded.
			if st.writeBuf() != nil {
				return false
			}
			sub.floor = cur.seq
			for b := first; ; b = b.next.Load() {
				n, err := st.writeBatch(b)
				if err != nil {
					return false
				}
				h.hub.stats.delivered.Add(int64(n))
				h.hub.stats.replayed.Add(int64(n))
				if b == sub.at {
					break
				}
			}
			sub.floor = dispatched
		default:
			if err := st.replay(ctx, cur.seq, dispatched); err != nil {
				if !errors.Is(err, errGone) {
					st.abort(ctx, "replay", err)
				}
				return false
			}
		}
	}
	// The client's position (WHATWG HTML §9.2.6: an id field and a blank
	// line set the last event ID without dispatching an event): every seq
	// up to sub.floor has been sent or is not for this stream, and what
	// comes next is after it. A client that has seen no event (no cursor,
	// or a replay its scope filtered out) resumes from here without a gap.
	if st.sentID != sub.floor {
		st.buf = AppendID(st.buf, st.position(sub.floor))
		st.sentID = sub.floor
	}
	if st.flushBuf() != nil {
		return false
	}
	if cap(st.buf) > 16<<10 {
		st.buf = nil // a replay grew it: do not keep it for the connection's life
	}
	return true
}

// reset appends a reset frame: the client refetches, then goes on from
// cursor.
func (st *stream) reset(reason string, cursor int64) {
	st.buf = AppendReset(st.buf, reason, st.position(cursor))
	st.sentID = cursor
}

// sameHistory reports whether the client's cursor belongs to this history
// of the log: a plain integer cursor always does (unchecked, as the
// contract has it); a tagged one when the event at its seq has its tag,
// looked up among the hub's recent batches, else in the log (one
// primary-key read).
func (st *stream) sameHistory(cur cursor) (bool, error) {
	if cur.tag == "" || cur.seq == 0 {
		return true, nil
	}
	if tag, ok := st.sub.a.tagAt(cur.seq); ok {
		return tag == cur.tag, nil
	}
	err := st.h.cfg.Log.CheckPosition(st.ctx, st.tenant, models.Position{Seq: cur.seq, Tag: cur.tag})
	if errors.Is(err, store.ErrOtherHistory) {
		return false, nil
	}
	var me *models.Error
	if errors.As(err, &me) && me.Code == models.EGONE {
		return false, nil // older than retention or ahead: not resumable either
	}
	return err == nil, err
}

// position returns the position at seq to send as an event id: tagged with
// the event at seq when it is known (the client's own cursor, the hub's
// recent batches, else one read of the log), plain when the event is gone
// from the log or the read fails (a plain cursor still resumes, unchecked).
func (st *stream) position(seq int64) models.Position {
	switch {
	case seq == 0:
		return models.Position{}
	case seq == st.cur.seq && st.cur.verified:
		// The client's own tag, checked against the log by sameHistory
		// (never an unchecked one: a wrong tag echoed back as the reset's
		// id would make the client reset again on every reconnect).
		return models.Position{Seq: seq, Tag: st.cur.tag}
	}
	if tag, ok := st.sub.a.tagAt(seq); ok {
		return models.Position{Seq: seq, Tag: tag}
	}
	p, err := st.h.cfg.Log.PositionAt(st.ctx, st.tenant, seq)
	if err != nil {
		return models.Position{Seq: seq}
	}
	return p
}

// abort ends a stream that failed after its headers went out: a last
// comment, and the client reconnects after its retry delay.
func (st *stream) abort(ctx context.Context, op string, err error) {
	if ctx.Err() == nil {
		st.h.cfg.Logger.Warn("sse: stream failed; the client will resume", "op", op, "err", err)
		st.buf = AppendComment(st.buf, "temporarily unavailable; reconnect")
		_ = st.flushBuf()
	}
}

// replay writes the log's events in (after, until] visible to the stream,
// a page at a time. A page that does not start right after the cursor has a
// hole, which is either the audience's filter or pruning: only then does it
// ask the log how far it is pruned, and a pruned hole gets a reset (the
// common resume of a staff client costs one query).
func (st *stream) replay(ctx context.Context, after, until int64) error {
	h := st.h
	for after < until {
		evs, err := h.cfg.Log.ReadEvents(ctx, models.EventQuery{TenantID: st.tenant, After: after, Until: until,
			Limit: h.cfg.ReplayPage, Scope: st.scope, Topics: st.topics})
		if err != nil {
			return err
		}
		if len(evs) == 0 || evs[0].Seq != after+1 {
			head, err := h.cfg.Log.LogHead(ctx, st.tenant)
			if err != nil {
				return err
			}
			if after < head.PrunedThrough {
				st.reset(ResetExpired, until)
				break
			}
		}
		for i := range evs {
			e := st.scope.ForAudience(evs[i]) // as live delivery redacts it
			var err error
			if st.buf, err = AppendEvent(st.buf, &e); err != nil {
				h.cfg.Logger.Error("sse: event sent without its data", "seq", e.Seq, "err", err)
			}
			st.sentID = e.Seq
		}
		h.hub.stats.delivered.Add(int64(len(evs)))
		h.hub.stats.replayed.Add(int64(len(evs)))
		if len(evs) < h.cfg.ReplayPage {
			break
		}
		after = evs[len(evs)-1].Seq
		if err := st.flushBuf(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return errGone
		case <-h.hub.done:
			return errGone
		default:
		}
	}
	st.sub.floor = until
	return nil
}

// live delivers new batches, heartbeats, the time limit and the
// shutdown until the stream ends.
func (st *stream) live() {
	hub, sub, done := st.h.hub, st.sub, st.ctx.Done()
	st.startClock()
	for beat := hub.beat(sub.shard); ; {
		select {
		case <-sub.wake:
			if sub.dead.Load() || st.drain() != nil {
				return // too slow (the client resumes from its cursor), or gone
			}
		case <-beat:
			beat = hub.beat(sub.shard)
			if !st.tick() {
				return
			}
		case <-done:
			return // the client went away
		}
	}
}

// startClock sets when the stream ends, if it has a time limit.
func (st *stream) startClock() {
	h := st.h
	now := time.Now()
	st.lastBeat = now
	if h.cfg.MaxDuration > 0 {
		// Aim between 85% and 95% of the limit, so that clients cut at the
		// same time do not all come back at the same time; the clock's
		// period (at most 5% of it) may add the rest.
		st.endAt = now.Add(h.cfg.MaxDuration*95/100 - time.Duration(rand.Int64N(int64(h.cfg.MaxDuration)/10+1)))
	}
}

// tick runs at each of the hub clock's beats for this stream: the
// shutdown, the time limit, then the heartbeat. It reports whether the stream goes on.
//
//go:noinline
func (st *stream) tick() bool {
	h := st.h
	if h.hub.closing() {
		st.buf = AppendComment(st.buf, "server shutting down; reconnect")
		_ = st.flushBuf()
		return false
	}
	now := time.Now()
	if !st.endAt.IsZero() && !now.Before(st.endAt) {
		st.buf = AppendComment(st.buf, "stream time limit; reconnect")
		_ = st.flushBuf()
		return false
	}
	if now.Sub(st.lastBeat) >= h.cfg.Heartbeat-h.hub.period/2 {
		st.lastBeat = now
		st.buf = AppendComment(st.buf, "heartbeat")
		return st.flushBuf() == nil
	}
	return true
}

// drain writes the batches published since the last drain, then flushes
// once.
//
//go:noinline
func (st *stream) drain() error {
	frames := 0
	err := st.sub.take(func(b *batch) error {
		n, err := st.writeBatch(b)
		frames += n
		return err
	})
	st.h.hub.stats.delivered.Add(int64(frames))
	if err != nil {
		return err
	}
	return st.flush()
}

// writeBatch writes the events of b that are new and visible to the
// stream, each run of consecutive frames in one write, and returns the
// frames written.
func (st *stream) writeBatch(b *batch) (frames int, err error) {
	sub := st.sub
	var fs *frameSet
	runStart, runEnd := -1, -1
	write := func() error {
		if runStart < 0 {
			return nil
		}
		if err := st.setDeadline(); err != nil {
			return err
		}
		if _, err := st.out.Write(fs.frames[runStart:runEnd]); err != nil {
			st.failed = true
			return err
		}
		runStart = -1
		return nil
	}
	for i := range b.events {
		e := &b.events[i]
		if e.Seq <= sub.floor {
			continue
		}
		sub.floor = e.Seq
		if !sub.sees(b, i) {
			if err := write(); err != nil {
				return frames, err
			}
			continue
		}
		if fs == nil {
			fs = b.form(sub.scope)
		}
		s, end := fs.frame(i)
		if runStart < 0 {
			runStart = s
		}
		runEnd = end
		st.sentID = e.Seq
		frames++
	}
	return frames, write()
}

// setDeadline gives the next write WriteTimeout to complete, reusing a
// deadline that still has more than half of it left. It fails if the hub
// dropped the subscriber meanwhile, whose deadline it must not undo.
func (st *stream) setDeadline() error {
	now := time.Now()
	if st.deadline.Sub(now) < st.h.cfg.WriteTimeout/2 {
		st.deadline = now.Add(st.h.cfg.WriteTimeout)
		if err := st.out.SetWriteDeadline(st.deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
			st.failed = true
			return err
		}
	}
	if st.sub != nil && st.sub.dead.Load() {
		return errGone
	}
	return nil
}

// flushBuf writes st.buf and flushes.
func (st *stream) flushBuf() error {
	if err := st.writeBuf(); err != nil {
		return err
	}
	return st.flush()
}

// writeBuf writes st.buf.
func (st *stream) writeBuf() error {
	if len(st.buf) == 0 {
		return nil
	}
	if err := st.setDeadline(); err != nil {
		return err
	}
	_, err := st.out.Write(st.buf)
	st.buf = st.buf[:0]
	if err != nil {
		st.failed = true
	}
	return err
}

func (st *stream) flush() error {
	if err := st.setDeadline(); err != nil {
		return err
	}
	if err := st.out.Flush(); err != nil {
		st.failed = true
		return err
	}
	return st.clearDeadline()
}

// clearDeadline lifts the write deadline once nothing is pending: HTTP/2
// resets a stream whose deadline passes even when it has no write in
// progress (net/http's http2 stream.onWriteTimeout: RST_STREAM
// INTERNAL_ERROR), so an idle stream keeps none between writes. Like
// setDeadline it fails if the hub dropped the subscriber meanwhile: the
// hub marks it dead before it pulls the deadline into the past, so a kill
// this clears is seen here.
func (st *stream) clearDeadline() error {
	st.deadline = time.Time{}
	if err := st.out.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		st.failed = true
		return err
	}
	if st.sub != nil && st.sub.dead.Load() {
		return errGone
	}
	return nil
}

// finish runs after the subscriber has left the hub, so nothing else can
// touch the deadline: the end of the response (the last chunk) gets a fresh
// one, unless the hub cut the connection. net/http clears it before the
// connection's next request.
func (st *stream) finish() {
	if st.conn != nil {
		// Hijacked: the body ends with the connection. A stream the hub
		// dropped, or whose write failed, ends with a reset rather than a
		// clean close, so the client can tell the two apart.
		if tcp, ok := st.conn.(interface{ SetLinger(sec int) error }); ok && (st.failed || st.sub != nil && st.sub.dead.Load()) {
			_ = tcp.SetLinger(0)
		}
		_ = st.conn.Close()
		if st.cancel != nil {
			st.cancel()
		}
		return
	}
	if !st.failed && (st.sub == nil || !st.sub.dead.Load()) {
		_ = st.out.SetWriteDeadline(time.Now().Add(st.h.cfg.WriteTimeout))
	}
}
