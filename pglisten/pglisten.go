// Package pglisten follows a Postgres LISTEN/NOTIFY channel on a dedicated
// connection and turns each notification of the change log, "<tenant>
// <head>", into a callback.
//
// A notification is only a nudge: the reader of the log decides what is new.
// Postgres drops notifications sent while a session is not listening, so
// after every (re)connect, once LISTEN is in effect, the listener calls
// OnConnect for the caller to catch up from the log. Anything committed
// before that point is in the log OnConnect reads; anything committed after
// it is notified.
package pglisten

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Defaults of Config.
const (
	DefaultMinBackoff     = 100 * time.Millisecond
	DefaultMaxBackoff     = 10 * time.Second
	DefaultHealthCheck    = 30 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	DefaultApplication    = "pglisten"
)

// Config configures a Listener.
type Config struct {
	// URL is the Postgres connection string (postgres://…).
	URL string
	// Channel is the channel to LISTEN on (quoted as an identifier).
	Channel string
	// ApplicationName names the connection in pg_stat_activity, so that an
	// operator (or a test) can find it; DefaultApplication when empty.
	ApplicationName string
	// OnNotify receives every well-formed notification, in the order
	// Postgres delivered them. It runs on the listener's goroutine and must
	// not block.
	OnNotify func(tenant string, head int64)
	// OnConnect runs after every (re)connect, once LISTEN is in effect: the
	// caller catches up on what was committed while nobody listened. An
	// error drops the connection and the listener tries again after a
	// backoff, so a catch-up is never skipped.
	OnConnect func(ctx context.Context) error
	// Logger receives connection losses and malformed payloads.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between reconnect attempts,
	// which doubles from MinBackoff up to MaxBackoff, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// HealthCheck is how long the connection may stay silent before it is
	// pinged: a half-open TCP connection otherwise waits forever.
	HealthCheck time.Duration
	// ConnectTimeout bounds one attempt: dial, authentication and LISTEN,
	// and each health-check ping.
	ConnectTimeout time.Duration
	// Now is the clock of the stats; time.Now when nil.
	Now func() time.Time
}

// Stats is a snapshot of the listener's state, for metrics and the
// operations view.
type Stats struct {
	// Connected is true while LISTEN is in effect and the catch-up after
	// the last connect has run: notifications are flowing.
	Connected bool
	// PID is the backend process id of the listening connection (0 when
	// down): pg_terminate_backend(PID) ends it.
	PID uint32
	// ConnectedSince is when the current connection went live; DownSince
	// when the last one was lost (zero while connected or before the first).
	ConnectedSince, DownSince time.Time
	// Connects counts connections that went live, the first included;
	// Reconnects those after the first.
	Connects, Reconnects int64
	// Failures counts failed attempts and lost connections.
	Failures int64
	// Notifications counts well-formed notifications; BadPayloads those
	// ignored because their payload did not parse.
	Notifications, BadPayloads int64
	// LastNotification is when the last well-formed notification was
	// received (zero before the first). The payload carries no commit
	// time, so this is the receipt time on this instance; the delay from
	// commit to dispatch is measured where the events are read.
	LastNotification time.Time
	// LastError is the error that ended the last connection or attempt.
	LastError string
}

// Listener follows one channel. Run it once; read Stats from any goroutine.
type Listener struct {
	cfg    Config
	pg     *pgx.ConnConfig
	listen string // the LISTEN statement
	logger *slog.Logger

	mu    sync.Mutex
	stats Stats
}

// New checks the configuration and returns a listener; it does not connect.
func New(cfg Config) (*Listener, error) {
	if cfg.Channel == "" {
		return nil, errors.New("pglisten: no channel")
	}
	pg, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("pglisten: %w", err)
	}
	if cfg.ApplicationName == "" {
		cfg.ApplicationName = DefaultApplication
	}
	pg.RuntimeParams["application_name"] = cfg.ApplicationName
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.HealthCheck <= 0 {
		cfg.HealthCheck = DefaultHealthCheck
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OnNotify == nil {
		cfg.OnNotify = func(string, int64) {}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Listener{cfg: cfg, pg: pg, listen: "LISTEN " + pgx.Identifier{cfg.Channel}.Sanitize(),
		logger: logger.With("component", "pglisten", "channel", cfg.Channel)}, nil
}

// Stats returns a snapshot of the listener's state.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Run listens until ctx ends, reconnecting after every loss with a capped,
// jittered exponential backoff. It closes its connection before it returns
// and leaves no goroutine behind.
func (l *Listener) Run(ctx context.Context) {
	attempt := 0
	for {
		start := l.cfg.Now()
		err := l.session(ctx)
		if ctx.Err() != nil {
			return
		}
		// A connection that lived longer than the longest wait was healthy:
		// the next loss starts the backoff again from its minimum. Attempts
		// that fail at once (the database is down, or accepts and drops us)
		// keep doubling it.
		if l.cfg.Now().Sub(start) > l.cfg.MaxBackoff {
			attempt = 0
		}
		wait := backoff(attempt, l.cfg.MinBackoff, l.cfg.MaxBackoff, rand.Float64())
		attempt++
		l.mu.Lock()
		l.stats.Failures++
		l.stats.LastError = err.Error()
		l.mu.Unlock()
		l.logger.Warn("pglisten: connection lost; reconnecting", "err", err, "attempt", attempt, "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// session connects, listens, catches up, and then delivers notifications
// until the connection fails or ctx ends.
func (l *Listener) session(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, l.cfg.ConnectTimeout)
	conn, err := pgx.ConnectConfig(cctx, l.pg)
	if err != nil {
		cancel()
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		// ctx may be done already: closing gets its own short bound.
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(c)
	}()
	_, err = conn.Exec(cctx, l.listen)
	cancel()
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if l.cfg.OnConnect != nil {
		if err := l.cfg.OnConnect(ctx); err != nil {
			return fmt.Errorf("catch-up: %w", err)
		}
	}
	l.mu.Lock()
	if l.stats.Connects > 0 {
		l.stats.Reconnects++
	}
	l.stats.Connects++
	l.stats.Connected, l.stats.PID = true, conn.PgConn().PID()
	l.stats.ConnectedSince, l.stats.DownSince = l.cfg.Now(), time.Time{}
	l.mu.Unlock()
	l.logger.Info("pglisten: listening", "pid", conn.PgConn().PID())
	defer func() {
		l.mu.Lock()
		l.stats.Connected, l.stats.PID, l.stats.DownSince = false, 0, l.cfg.Now()
		l.mu.Unlock()
	}()
	for {
		wctx, cancel := context.WithTimeout(ctx, l.cfg.HealthCheck)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if n != nil {
			l.deliver(n)
		}
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// Silent for HealthCheck: make sure the other end is still
			// there. A timeout leaves a pgx connection usable.
			pctx, cancel := context.WithTimeout(ctx, l.cfg.ConnectTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("health check: %w", err)
			}
		default:
			return fmt.Errorf("wait: %w", err)
		}
	}
}

func (l *Listener) deliver(n *pgconn.Notification) {
	tenant, head, err := ParsePayload(n.Payload)
	if err != nil {
		l.mu.Lock()
		l.stats.BadPayloads++
		l.mu.Unlock()
		p := n.Payload
		if len(p) > 64 {
			p = p[:64]
		}
		l.logger.Warn("pglisten: ignoring malformed notification", "err", err, "payload", p, "from_pid", n.PID)
		return
	}
	l.mu.Lock()
	l.stats.Notifications++
	l.stats.LastNotification = l.cfg.Now()
	l.mu.Unlock()
	l.cfg.OnNotify(tenant, head)
}

// backoff returns the wait before reconnect attempt n (from 0): min·2ⁿ
// capped at max, of which a random half is taken away (r in [0, 1)) so that
// the instances a database restart disconnected together do not come back
// in lockstep.
func backoff(n int, lo, hi time.Duration, r float64) time.Duration {
	d := lo
	for i := 0; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d - time.Duration(r*float64(d/2))
}
