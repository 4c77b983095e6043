package sse

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
)

// Hub fans each tenant's events out to the streams of that tenant. It is the
// relay's sink: Publish is called per tenant in seq order, without gaps,
// with the tenant's dispatch lock held, and never waits on a client.
//
// Each batch is encoded once, whatever the number of subscribers, and
// linked after the tenant's previous one: the tenant's batches form one
// chain, and a subscriber is a pointer into it (the last batch it took).
// Publishing appends to the chain and wakes the writers; nothing is queued
// per subscriber. A subscriber more than Buffer batches behind when the
// writers look at it cannot keep up: it is dropped on the spot and its
// connection ended (its client resumes from its cursor), which is what
// keeps one stalled tablet from slowing the clinic.
// — centrifuge writer.go, mercure handleFullChan.
//
// Streams on plain TCP connections (HTTP/1.x, hijacked) have no goroutine
// of their own to write: one writer goroutine per shard walks its
// subscribers after each publish and writes each one's new frames to its
// socket in one non-blocking write (writer.go). Only a socket whose buffer
// is full gets a goroutine, until it drains or its write deadline passes.
// Other streams (HTTP/2, TLS) write on their own goroutine, woken by
// Publish.
type Hub struct {
	buffer int64
	logger *slog.Logger
	// What the writers need of the handler's configuration.
	heartbeat, writeTimeout, maxDuration time.Duration
	// forgetAfter is how long a tenant without streams keeps its recent
	// batches and its place in the hub (IdleTenant).
	forgetAfter time.Duration

	mu      sync.RWMutex
	tenants map[string]*audience
	closed  bool
	active  int           // streams between enter and leave
	drained chan struct{} // closed when closed && active == 0
	done    chan struct{} // closed by Close: streams end

	// The clock: one goroutine for the whole hub wakes the shards for
	// heartbeats and time limits, a shard at a time, instead of a timer per
	// connection. Each shard's channel is closed and replaced every period.
	// Close also closes every shard's channel for good, which is how an
	// idle stream learns of the shutdown (one select case fewer).
	period    time.Duration
	beats     [nShards]atomic.Pointer[chan struct{}]
	beatMu    sync.Mutex // serialises closing beat channels
	stopped   atomic.Bool
	nextShard atomic.Uint32
	clockOn   bool           // under mu: the clock and the writers run
	workers   sync.WaitGroup // the clock and the writers
	shards    [nShards]shard
	wakes     []chan struct{} // one per writer; writer w has shards w, w+W, …

	stats struct {
		subscribed, overflows, delivered, replayed, batches atomic.Int64
		backlogs                                            atomic.Int64 // a socket's buffer was full
		evictions                                           atomic.Int64 // idle audiences evicted
	}
}

const nShards = 8

// audience is a tenant's subscribers and the chain of its batches. It
// lives in Hub.tenants while the tenant has streams, and for forgetAfter
// after the last one left; then it is evicted (sweep, evict), and a later
// stream starts a new one.
type audience struct {
	tenant string
	mu     sync.Mutex // serialises Publish and subscribe
	// evicted is set (under Hub.mu and mu) when the audience leaves
	// Hub.tenants: a subscriber that finds it set looks the tenant up again.
	evicted bool
	// tail is the last batch published (a sentinel without events before
	// the first); published is tail.n, for lag checks without the lock.
	tail      *batch
	published atomic.Int64
	// oldest is the first of the recent batches: seqs without a gap up to
	// tail. A client that reconnects with a recent cursor (a cut, a
	// deploy, a time limit) replays from here, from frames already
	// encoded, without reading the database.
	oldest       *batch
	recentEvents int
	recentBytes  int
	// own are the streams that write on their own goroutine (under mu).
	own []*subscriber
	// gen counts the holes the tenant's chain has jumped (Skip).
	gen atomic.Int64
	// streams counts the tenant's registered streams; idleSince is when
	// the last one left (unix ns). A tenant without streams for a while
	// keeps no recent batches (forgetAfter).
	streams   atomic.Int64
	idleSince atomic.Int64
	// bySh are the writer-driven streams of each shard, and whether the
	// shard's writer has this audience to visit (under that shard's mu).
	bySh    [nShards][]*subscriber
	dirtyIn [nShards]bool
}

// IdleTenant is how long the hub keeps a tenant's state after its last
// stream left: long enough for clients cut by a proxy, a deploy or
// STREAM_MAX_DURATION to come back and replay from memory what was
// published meanwhile, short enough that idle (or made-up) tenants cost
// nothing for long. The clock's sweep evicts it within a period after.
const IdleTenant = time.Minute

// What an audience keeps of its recent batches.
const (
	recentMaxEvents = 2048
	recentMaxBytes  = 1 << 20
)

func newAudience(tenant string) *audience {
	a := &audience{tenant: tenant, tail: &batch{}}
	a.idleSince.Store(time.Now().UnixNano())
	return a
}

// add links b after the tail and keeps it among the recent batches.
func (a *audience) add(b *batch) {
	b.n = a.tail.n + 1
	a.tail.next.Store(b)
	a.tail = b
	a.published.Store(b.n)
	if a.oldest == nil {
		a.oldest = b
	}
	a.recentEvents += len(b.events)
	a.recentBytes += len(b.frames)
	for a.oldest != b && (a.recentEvents > recentMaxEvents || a.recentBytes > recentMaxBytes) {
		a.recentEvents -= len(a.oldest.events)
		a.recentBytes -= len(a.oldest.frames)
		a.oldest = a.oldest.next.Load()
	}
}

// forget drops the recent batches (the chain goes on from the tail).
func (a *audience) forget() {
	a.oldest, a.recentEvents, a.recentBytes = nil, 0, 0
}

// leaveAudience counts a subscriber out of its audience, once. The
// audience of the last one to leave goes after forgetAfter (sweep), or at
// once without one.
func (h *Hub) leaveAudience(s *subscriber) {
	a := s.a
	if s.left.Swap(true) || a.streams.Add(-1) != 0 {
		return
	}
	now := time.Now()
	a.idleSince.Store(now.UnixNano())
	if h.forgetAfter <= 0 {
		h.evict(a, now)
	}
}

// evictable reports whether a can leave the hub: it has no streams and has
// been idle for forgetAfter. Call with a.mu held.
func (a *audience) evictable(now time.Time, forgetAfter time.Duration) bool {
	return a.streams.Load() == 0 && now.Sub(time.Unix(0, a.idleSince.Load())) >= forgetAfter
}

// evict removes an idle audience from the hub, so that a tenant nobody
// follows costs no memory: its chain's tail, recent batches and record go
// with it. It races safely with subscribe (which finds evicted set and
// looks again) and with Publish (a batch published to an evicted audience
// reaches no one: it had no streams, and a new stream subscribes inside
// relay.Sync, after that batch, to the new audience).
func (h *Hub) evict(a *audience, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tenants[a.tenant] != a {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.evictable(now, h.forgetAfter) {
		return false
	}
	delete(h.tenants, a.tenant)
	a.evicted = true
	a.forget()
	h.stats.evictions.Add(1)
	return true
}

// sweep evicts the audiences idle for forgetAfter. The clock calls it once
// per period.
func (h *Hub) sweep(now time.Time) {
	var idle []*audience
	h.mu.RLock()
	for _, a := range h.tenants {
		if a.streams.Load() == 0 && now.Sub(time.Unix(0, a.idleSince.Load())) >= h.forgetAfter {
			idle = append(idle, a)
		}
	}
	h.mu.RUnlock()
	for _, a := range idle {
		h.evict(a, now)
	}
}

// since returns the first recent batch holding an event after cursor (the
// rest follow it up to the tail), or false when the oldest kept is later
// than cursor+1. Call with mu held.
// tagAt returns the tag of the tenant's event at seq when it is among the
// recent batches (no database read).
func (a *audience) tagAt(seq int64) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for b := a.oldest; b != nil; b = b.next.Load() {
		if len(b.events) == 0 {
			continue
		}
		if seq < b.events[0].Seq {
			return "", false
		}
		if seq <= b.lastSeq() {
			i := sort.Search(len(b.events), func(i int) bool { return b.events[i].Seq >= seq })
			if i < len(b.events) && b.events[i].Seq == seq {
				return models.EventTag(&b.events[i]), true
			}
			return "", false
		}
	}
	return "", false
}

func (a *audience) since(cursor int64) (*batch, bool) {
	for b := a.oldest; b != nil; b = b.next.Load() {
		if b == a.oldest && b.events[0].Seq > cursor+1 {
			return nil, false
		}
		if b.lastSeq() > cursor {
			return b, true
		}
	}
	return nil, a.oldest != nil
}

// NewHub returns a hub whose subscribers may fall up to buffer batches
// behind, and whose clock wakes every stream once per period (the
// heartbeat, or less when streams have a time limit).
func NewHub(buffer int, period time.Duration, logger *slog.Logger) *Hub {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	if period <= 0 {
		period = DefaultHeartbeat
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &Hub{buffer: int64(buffer), logger: logger, period: period, heartbeat: period, writeTimeout: DefaultWriteTimeout, forgetAfter: IdleTenant,
		tenants: map[string]*audience{}, drained: make(chan struct{}), done: make(chan struct{})}
	for i := range h.beats {
		c := make(chan struct{})
		h.beats[i].Store(&c)
		h.shards[i] = shard{auds: map[*audience]struct{}{}}
	}
	h.setWriters(0)
	return h
}

// subscriber is one stream's registration.
type subscriber struct {
	a     *audience
	scope models.Scope
	mask  topicMask // the topics as a bit set
	all   bool      // staff without a topic filter: every event
	shard int
	idx   int // position in a.own or a.bySh[shard]; -1 once removed

	// at is the last batch taken (only the stream's writer moves it);
	// taken is at.n, for the lag checks of others.
	at    *batch
	gen   int64 // a.gen when it subscribed
	taken atomic.Int64
	floor int64 // the last seq passed: events <= floor are not sent again
	dead  atomic.Bool
	left  atomic.Bool // counted out of a.streams

	// Streams on their own goroutine: wake is poked by Publish; wd ends a
	// write blocked on a client that stopped reading (set before the
	// subscriber is registered, called with audience.mu held while the
	// stream runs).
	wake chan struct{}
	wd   deadliner

	// Writer-driven streams (writer.go): the connection, and the stream's
	// hold (limits.Holds), given back by its reader when it ends.
	sock    *socket
	release func()
}

// deadliner ends a write blocked on a client (a sink, a connection).
type deadliner interface{ SetWriteDeadline(time.Time) error }

// sees reports whether event i of b is visible to s: models.Scope.Visible
// with the topics as a bit set (topics only name known entities), so that
// a delivery costs no map lookup.
func (s *subscriber) sees(b *batch, i int) bool {
	if s.all {
		return true
	}
	m := b.masks[i]
	switch {
	case m&s.mask == 0:
		return false
	case m == boardBit:
		return true
	case s.scope.BoardOnly:
		return false
	case s.scope.PatientID != "":
		// Their own records and the doctor directory (models.Scope.Reach).
		return s.scope.Visible(&b.events[i], nil)
	}
	return true
}

// take moves s past the batches published since it last took, calling fn
// for each one it wants. Only the stream's writer calls it.
func (s *subscriber) take(fn func(b *batch) error) error {
	for b := s.at.next.Load(); b != nil; b = b.next.Load() {
		if b.wanted(s) {
			if err := fn(b); err != nil {
				return err
			}
		}
		s.at = b
		s.taken.Store(b.n)
	}
	return nil
}

// appendNew appends the frames of b that are new and visible to s, and
// reports how many.
func (s *subscriber) appendNew(dst []byte, b *batch) ([]byte, int) {
	frames := 0
	var fs *frameSet
	for i := range b.events {
		e := &b.events[i]
		if e.Seq <= s.floor {
			continue
		}
		s.floor = e.Seq
		if s.sees(b, i) {
			if fs == nil {
				fs = b.form(s.scope)
			}
			start, end := fs.frame(i)
			dst = append(dst, fs.frames[start:end]...)
			frames++
		}
	}
	return dst, frames
}

// batch is one Publish call's events, encoded once for every subscriber.
// It never changes once linked into its audience's chain, except that its
// redacted form is made on first use.
type batch struct {
	events   []models.Event
	frameSet // the frames as staff see them
	// anon is the frames as display and patient audiences see them (no
	// actor: models.Scope.ForAudience), encoded the first time one of them
	// takes the batch; a batch without actors shares frameSet.
	anon  atomic.Pointer[frameSet]
	masks []topicMask // masks[i] is event i's entity as a bit
	mask  topicMask   // the union of masks
	// patients maps a patient id to the topics of its events in the
	// batch, for batches too long to scan per patient subscriber.
	patients map[string]topicMask
	n        int64                 // the batch's number in its audience
	next     atomic.Pointer[batch] // the batch published after this one
}

func (b *batch) lastSeq() int64 { return b.events[len(b.events)-1].Seq }

// frameSet is the frames of a batch's events, back to back.
type frameSet struct {
	frames []byte
	ends   []int32 // ends[i] is where event i's frame ends in frames
}

// frame returns where event i's frame lies in frames.
func (f *frameSet) frame(i int) (start, end int) {
	if i > 0 {
		start = int(f.ends[i-1])
	}
	return start, int(f.ends[i])
}

// form returns the frames as the scope receives them: as encoded for
// staff, or without actors for display and patient audiences (encoded
// now if this is their first use; two streams racing to make them agree,
// and one copy is kept). Staff-only fan-out never encodes twice.
func (b *batch) form(sc models.Scope) *frameSet {
	if sc.SeesActors() {
		return &b.frameSet
	}
	if f := b.anon.Load(); f != nil {
		return f
	}
	f := b.redacted(sc)
	if !b.anon.CompareAndSwap(nil, f) {
		f = b.anon.Load()
	}
	return f
}

// redacted encodes the batch's frames for an audience that does not see
// actors (models.Scope.ForAudience); a batch whose events carry none
// shares the staff frames.
func (b *batch) redacted(sc models.Scope) *frameSet {
	n := 0
	for i := range b.events {
		if b.events[i].Actor != "" {
			n++
		}
	}
	if n == 0 {
		return &b.frameSet
	}
	f := &frameSet{frames: make([]byte, 0, len(b.frames)), ends: make([]int32, len(b.events))}
	for i := range b.events {
		if b.events[i].Actor == "" {
			start, end := b.frame(i)
			f.frames = append(f.frames, b.frames[start:end]...)
		} else {
			e := sc.ForAudience(b.events[i])
			f.frames, _ = AppendEvent(f.frames, &e) // an error was logged with the staff form
		}
		f.ends[i] = int32(len(f.frames))
	}
	return f
}

// patientScan is how many events a patient subscriber's question scans
// before the batch indexes its events by patient.
const patientScan = 8

func newBatch(events []models.Event, logger *slog.Logger) *batch {
	b := &batch{events: events, frameSet: frameSet{ends: make([]int32, len(events))}, masks: make([]topicMask, len(events))}
	size := 0
	for i := range events {
		size += len(events[i].Data) + 160
	}
	b.frames = make([]byte, 0, size)
	for i := range events {
		var err error
		if b.frames, err = AppendEvent(b.frames, &events[i]); err != nil {
			logger.Error("sse: event sent without its data", "seq", events[i].Seq, "err", err)
		}
		b.ends[i] = int32(len(b.frames))
		b.masks[i] = maskOf(events[i].Entity)
		b.mask |= b.masks[i]
		if p := events[i].PatientID; p != "" && len(events) > patientScan {
			if b.patients == nil {
				b.patients = map[string]topicMask{}
			}
			b.patients[p] |= b.masks[i]
		}
	}
	return b
}

// wanted reports whether any event of b is visible to s; it spares waking a
// display for a patient's record. Exact: the stream filters each event
// again when it writes.
func (b *batch) wanted(s *subscriber) bool {
	switch {
	case s.all:
		return true
	case b.mask&s.mask == 0:
		return false
	case s.scope.BoardOnly:
		return b.mask&s.mask&boardBit != 0
	case s.scope.PatientID != "":
		if b.mask&s.mask&(boardBit|directoryBit) != 0 {
			return true
		}
		if len(b.events) <= patientScan {
			for i := range b.events {
				if s.sees(b, i) {
					return true
				}
			}
			return false
		}
		return b.patients[s.scope.PatientID]&s.mask != 0
	}
	return true
}

// topicMask is a set of entities, one bit each.
type topicMask uint16

const (
	boardBit topicMask = 1 << 14
	otherBit topicMask = 1 << 15 // an entity this build does not know
	allMask            = ^topicMask(0)
)

// directoryBit is the doctor directory, which patients see whole
// (models.Scope.Reach).
var directoryBit = maskOf(models.EntityDoctor)

func maskOf(entity string) topicMask {
	if entity == models.EntityBoard {
		return boardBit
	}
	for i, e := range models.Entities {
		if e == entity {
			return 1 << i
		}
	}
	return otherBit
}

func topicsMask(t models.Topics) topicMask {
	if t == nil {
		return allMask
	}
	var m topicMask
	for e, ok := range t {
		if ok {
			m |= maskOf(e)
		}
	}
	return m
}

// Publish hands the tenant's events to its subscribers without blocking. It
// keeps events: the caller must not change them afterwards.
func (h *Hub) Publish(tenantID string, events []models.Event) {
	if len(events) == 0 {
		return
	}
	h.mu.RLock()
	a := h.tenants[tenantID]
	h.mu.RUnlock()
	if a == nil {
		return
	}
	b := newBatch(events, h.logger)
	a.mu.Lock()
	a.add(b)
	if a.streams.Load() == 0 && time.Since(time.Unix(0, a.idleSince.Load())) > h.forgetAfter {
		// Nobody has followed the tenant for a while: a client that comes
		// back replays from the log, and the memory is not held for it.
		a.forget()
	}
	h.stats.batches.Add(1)
	for i := 0; i < len(a.own); {
		s := a.own[i]
		lag := b.n - s.taken.Load()
		switch {
		case lag > h.buffer:
			// The client is not keeping up: drop it now rather than wait.
			a.removeOwn(s)
			h.overflow(s)
			continue
		case b.wanted(s) || lag > h.buffer/2:
			// (A stream that wants nothing of a long run of batches is
			// woken anyway, to move past them.)
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
		i++
	}
	a.mu.Unlock()
	for i := range h.shards {
		h.shards[i].notify(a, i)
	}
}

// Skip is told by the relay that the tenant's events in (after, through]
// were pruned before they were dispatched: they will never be published.
// The hub forgets its recent batches (they would replay across the hole)
// and ends the tenant's streams, which jumped it: each client resumes from
// its cursor, and a cursor inside the hole gets a reset from the replay.
func (h *Hub) Skip(tenantID string, after, through int64) {
	h.mu.RLock()
	a := h.tenants[tenantID]
	h.mu.RUnlock()
	if a == nil {
		return
	}
	h.logger.Warn("sse: events pruned before they were published; ending the tenant's streams",
		"tenant", tenantID, "after", after, "through", through)
	a.mu.Lock()
	a.forget()
	a.gen.Add(1)
	for _, s := range a.own {
		s.idx = -1
		h.kill(s)
	}
	clear(a.own)
	a.own = a.own[:0]
	a.mu.Unlock()
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		for _, s := range a.bySh[i] {
			s.dead.Store(true)
			s.sock.close(false)
		}
		sh.mu.Unlock()
	}
}

// kill ends a stream on its own goroutine: its next wake finds it dead.
func (h *Hub) kill(s *subscriber) {
	s.dead.Store(true)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	if s.wd != nil {
		_ = s.wd.SetWriteDeadline(time.Unix(1, 0))
	}
}

// overflow ends a stream on its own goroutine that fell too far behind. Its
// handler may be blocked in a write to a client that stopped reading: a
// deadline in the past ends that write at once (net.Conn deadlines may be
// set from any goroutine). The handler is still running: it leaves the
// audience, under the lock held here, before it returns.
func (h *Hub) overflow(s *subscriber) {
	h.stats.overflows.Add(1)
	h.kill(s)
}

func (a *audience) removeOwn(s *subscriber) {
	a.own = removeSub(a.own, s)
}

// removeSub removes s from subs by its index (idempotent).
func removeSub(subs []*subscriber, s *subscriber) []*subscriber {
	i := s.idx
	if i < 0 || i >= len(subs) || subs[i] != s {
		return subs
	}
	last := len(subs) - 1
	subs[i] = subs[last]
	subs[i].idx = i
	subs[last] = nil
	s.idx = -1
	return subs[:last]
}

// enter counts a stream as running; false once the hub is closed.
func (h *Hub) enter() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.active++
	if !h.clockOn {
		h.clockOn = true
		h.workers.Add(1 + len(h.wakes))
		go h.clock()
		for w := range h.wakes {
			go h.write(w)
		}
	}
	return true
}

// leave undoes enter.
func (h *Hub) leave() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.active--
	if h.closed && h.active == 0 {
		close(h.drained)
	}
}

// subscribe registers a subscriber for a tenant's live events. Call it
// inside relay.Sync, so that it sees every batch after the seq Sync gives.
// A stream on its own goroutine (own) is woken by Publish from now on; a
// writer-driven one waits for activate. With a cursor (>= 0), it also
// returns the first recent batch after it (the replay runs from there up
// to s.at), if the hub still has them all.
func (h *Hub) subscribe(tenantID string, scope models.Scope, topics models.Topics, own bool, wd deadliner, cursor int64) (*subscriber, *batch, bool) {
	s := &subscriber{scope: scope, mask: topicsMask(topics),
		all: topics == nil && !scope.BoardOnly && scope.PatientID == "", wd: wd,
		shard: int(h.nextShard.Add(1) % nShards), idx: -1}
	if own {
		s.wake = make(chan struct{}, 1)
	}
	a := h.audience(tenantID)
	s.a = a
	s.at = a.tail
	a.streams.Add(1)
	s.gen = a.gen.Load()
	s.taken.Store(a.tail.n)
	if own {
		s.idx = len(a.own)
		a.own = append(a.own, s)
	}
	var first *batch
	ok := false
	if cursor >= 0 {
		first, ok = a.since(cursor)
	}
	a.mu.Unlock()
	h.stats.subscribed.Add(1)
	return s, first, ok
}

// audience returns the tenant's audience, creating it if the tenant has
// none, with its mu held: one that was evicted meanwhile is not returned.
func (h *Hub) audience(tenantID string) *audience {
	for {
		h.mu.RLock()
		a := h.tenants[tenantID]
		h.mu.RUnlock()
		if a == nil {
			h.mu.Lock()
			if a = h.tenants[tenantID]; a == nil {
				a = newAudience(tenantID)
				h.tenants[tenantID] = a
			}
			h.mu.Unlock()
		}
		a.mu.Lock()
		if !a.evicted {
			return a
		}
		a.mu.Unlock()
	}
}

// unsubscribe removes a stream on its own goroutine (idempotent).
func (h *Hub) unsubscribe(s *subscriber) {
	a := s.a
	a.mu.Lock()
	a.removeOwn(s)
	a.mu.Unlock()
	h.leaveAudience(s)
}

// beat returns the channel that the clock closes at a shard's next tick,
// or at shutdown (then it is closed already).
func (h *Hub) beat(shard int) <-chan struct{} { return *h.beats[shard].Load() }

// closing reports whether Close was called.
func (h *Hub) closing() bool { return h.stopped.Load() }

func (h *Hub) clock() {
	defer h.workers.Done()
	t := time.NewTicker(h.period / nShards)
	defer t.Stop()
	// Start the shards' ticks at a random point so that two instances
	// started together do not beat together.
	i := rand.IntN(nShards)
	for {
		select {
		case <-h.done:
			return
		case <-t.C:
		}
		c := make(chan struct{})
		h.beatMu.Lock()
		if !h.stopped.Load() {
			close(*h.beats[i].Swap(&c))
		}
		h.beatMu.Unlock()
		h.shards[i].beat()
		i = (i + 1) % nShards
		if i == 0 {
			h.sweep(time.Now())
		}
	}
}

// closedChan is closed: what beat returns after Close.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Close ends every stream: each writes a last comment and returns, and new
// ones end at once. Wait for them with Drain.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	close(h.done)
	h.beatMu.Lock()
	h.stopped.Store(true)
	for i := range h.beats {
		c := closedChan
		close(*h.beats[i].Swap(&c))
		h.shards[i].beat()
	}
	h.beatMu.Unlock()
	if h.active == 0 {
		close(h.drained)
	}
}

// Drain waits until every stream has returned and the clock and the
// writers have stopped, or ctx ends.
func (h *Hub) Drain(ctx context.Context) error {
	workers := make(chan struct{})
	go func() { h.workers.Wait(); close(workers) }()
	for _, c := range []chan struct{}{h.drained, workers} {
		select {
		case <-c:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Stats are the hub's counters, for the operations page.
type Stats struct {
	// Streams is the number of streams open now.
	Streams int
	// Subscribed counts streams registered since start.
	Subscribed int64
	// SlowDisconnects counts streams dropped because their client did not
	// keep up (more than Buffer batches behind).
	SlowDisconnects int64
	// Delivered counts event frames written to clients, replay included.
	Delivered int64
	// Replayed counts the event frames of replays (from the log or from
	// the hub's recent batches).
	Replayed int64
	// Batches counts batches published to tenants that have had streams.
	Batches int64
	// Tenants is the number of tenants the hub holds state for now: those
	// with streams, and those idle for less than the idle period that
	// remember recent batches.
	Tenants int
	// Evictions counts idle tenants whose state the hub let go.
	Evictions int64
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.RLock()
	n, tenants := h.active, len(h.tenants)
	h.mu.RUnlock()
	return Stats{Streams: n, Subscribed: h.stats.subscribed.Load(), SlowDisconnects: h.stats.overflows.Load(),
		Delivered: h.stats.delivered.Load(), Replayed: h.stats.replayed.Load(), Batches: h.stats.batches.Load(),
		Tenants: tenants, Evictions: h.stats.evictions.Load()}
}
