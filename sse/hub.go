package sse

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
)

// Hub fans each tenant's events out to the streams of that tenant. It is the
// relay's sink: Publish is called per tenant in seq order, without gaps,
// with the tenant's dispatch lock held, and never waits on a client.
//
// Each batch is encoded once, whatever the number of subscribers; a
// subscriber's queue holds pointers to shared batches. A queue that is full
// when a batch arrives means the client cannot keep up: the subscriber is
// dropped on the spot and its connection ended (its client resumes from its
// cursor), which is what keeps one stalled tablet from slowing the clinic.
// — centrifuge writer.go, mercure handleFullChan.
type Hub struct {
	buffer int
	logger *slog.Logger

	mu      sync.RWMutex
	tenants map[string]*audience
	closed  bool
	active  int           // streams between enter and leave
	drained chan struct{} // closed when closed && active == 0
	done    chan struct{} // closed by Close: streams end

	// The clock: one goroutine for the whole hub wakes the streams for
	// heartbeats and time limits, a shard at a time, instead of a timer per
	// connection. Each shard's channel is closed and replaced every period.
	// Close also closes every shard's channel for good, which is how an
	// idle stream learns of the shutdown (one select case fewer).
	period    time.Duration
	shards    [nShards]atomic.Pointer[chan struct{}]
	shardMu   sync.Mutex // serialises closing shard channels
	stopped   atomic.Bool
	nextShard atomic.Uint32
	clockOn   bool          // under mu
	clockDone chan struct{} // closed when the clock goroutine returns

	stats struct {
		subscribed, overflows, delivered, replayed, batches atomic.Int64
	}
}

const nShards = 8

// audience is a tenant's set of subscribers, and its recent batches.
type audience struct {
	mu   sync.Mutex
	subs []*subscriber
	// recent holds the last batches published, oldest first: seqs without
	// a gap up to the last one dispatched. A client that reconnects with a
	// recent cursor (a cut, a deploy, a time limit) replays from here, from
	// frames already encoded, without reading the database.
	recent       []*batch
	recentEvents int
	recentBytes  int
}

// What an audience keeps of its recent batches.
const (
	recentMaxEvents = 2048
	recentMaxBytes  = 1 << 20
)

func (a *audience) remember(b *batch) {
	a.recent = append(a.recent, b)
	a.recentEvents += len(b.events)
	a.recentBytes += len(b.frames)
	for len(a.recent) > 1 && (a.recentEvents > recentMaxEvents || a.recentBytes > recentMaxBytes) {
		old := a.recent[0]
		a.recent[0] = nil
		a.recent = a.recent[1:]
		a.recentEvents -= len(old.events)
		a.recentBytes -= len(old.frames)
	}
	if cap(a.recent) > 2*len(a.recent)+16 {
		a.recent = append([]*batch(nil), a.recent...)
	}
}

// since returns the recent batches holding every event after cursor, or
// false when the oldest kept is later than cursor+1.
func (a *audience) since(cursor int64) ([]*batch, bool) {
	for i, b := range a.recent {
		first, last := b.events[0].Seq, b.events[len(b.events)-1].Seq
		if i == 0 && first > cursor+1 {
			return nil, false
		}
		if last > cursor {
			return append([]*batch(nil), a.recent[i:]...), true
		}
	}
	return nil, len(a.recent) > 0
}

// NewHub returns a hub whose subscribers queue up to buffer batches, and
// whose clock wakes every stream once per period (the heartbeat, or less
// when streams have a time limit).
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
	h := &Hub{buffer: buffer, logger: logger, period: period, tenants: map[string]*audience{},
		drained: make(chan struct{}), done: make(chan struct{}), clockDone: make(chan struct{})}
	for i := range h.shards {
		c := make(chan struct{})
		h.shards[i].Store(&c)
	}
	return h
}

// subscriber is one stream's registration.
type subscriber struct {
	ch     chan *batch // closed by the hub when the subscriber overflows
	scope  models.Scope
	topics models.Topics
	mask   topicMask // topics as a bit set
	all    bool      // staff without a topic filter: every event
	shard  int
	idx    int // position in the audience; -1 once removed (under audience.mu)
	dead   atomic.Bool
	// wd ends a write blocked on a client that stopped reading; set before
	// the subscriber is registered and only called with audience.mu held,
	// while the stream is still running.
	wd interface{ SetWriteDeadline(time.Time) error }
}

func (s *subscriber) visible(e *models.Event) bool {
	return s.all || s.scope.Visible(e, s.topics)
}

// batch is one Publish call's events, encoded once for every subscriber.
type batch struct {
	events []models.Event
	frames []byte  // the frames of all events, back to back
	ends   []int32 // ends[i] is where event i's frame ends in frames
	mask   topicMask
	// patients maps a patient id to the topics of its events in the batch;
	// built on the first patient subscriber's question.
	patients map[string]topicMask
}

func (b *batch) lastSeq() int64 { return b.events[len(b.events)-1].Seq }

func (b *batch) frame(i int) (start, end int) {
	if i > 0 {
		start = int(b.ends[i-1])
	}
	return start, int(b.ends[i])
}

func newBatch(events []models.Event, logger *slog.Logger) *batch {
	b := &batch{events: events, ends: make([]int32, len(events))}
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
		b.mask |= maskOf(events[i].Entity)
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
		if b.mask&s.mask&boardBit != 0 {
			return true
		}
		if len(b.events) <= 8 {
			for i := range b.events {
				if s.scope.Visible(&b.events[i], s.topics) {
					return true
				}
			}
			return false
		}
		if b.patients == nil {
			b.patients = map[string]topicMask{}
			for i := range b.events {
				if p := b.events[i].PatientID; p != "" {
					b.patients[p] |= maskOf(b.events[i].Entity)
				}
			}
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
	a.mu.Lock()
	defer a.mu.Unlock()
	b := newBatch(events, h.logger)
	a.remember(b)
	h.stats.batches.Add(1)
	for i := 0; i < len(a.subs); {
		s := a.subs[i]
		if !b.wanted(s) {
			i++
			continue
		}
		select {
		case s.ch <- b:
			i++
		default:
			// The client is not keeping up: drop it now rather than wait.
			a.remove(s)
			h.overflow(s)
		}
	}
}

// overflow ends a subscriber that could not take a batch. Its handler may
// be blocked in a write to a client that stopped reading: a deadline in the
// past ends that write at once (net.Conn deadlines may be set from any
// goroutine). The handler is still running: it leaves the audience, under
// the lock held here, before it returns.
func (h *Hub) overflow(s *subscriber) {
	h.stats.overflows.Add(1)
	s.dead.Store(true)
	close(s.ch)
	if s.wd != nil {
		_ = s.wd.SetWriteDeadline(time.Unix(1, 0))
	}
}

func (a *audience) remove(s *subscriber) {
	i := s.idx
	if i < 0 {
		return
	}
	last := len(a.subs) - 1
	a.subs[i] = a.subs[last]
	a.subs[i].idx = i
	a.subs[last] = nil
	a.subs = a.subs[:last]
	s.idx = -1
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
		go h.clock()
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
// With a cursor (>= 0), it also returns the recent batches after it, if the
// hub still has them all.
func (h *Hub) subscribe(tenantID string, scope models.Scope, topics models.Topics, wd interface{ SetWriteDeadline(time.Time) error }, cursor int64) (*subscriber, []*batch, bool) {
	s := &subscriber{ch: make(chan *batch, h.buffer), scope: scope, topics: topics, mask: topicsMask(topics),
		all: topics == nil && !scope.BoardOnly && scope.PatientID == "", wd: wd,
		shard: int(h.nextShard.Add(1) % nShards)}
	h.mu.RLock()
	a := h.tenants[tenantID]
	h.mu.RUnlock()
	if a == nil {
		h.mu.Lock()
		if a = h.tenants[tenantID]; a == nil {
			a = &audience{}
			h.tenants[tenantID] = a
		}
		h.mu.Unlock()
	}
	a.mu.Lock()
	s.idx = len(a.subs)
	a.subs = append(a.subs, s)
	var hist []*batch
	ok := false
	if cursor >= 0 {
		hist, ok = a.since(cursor)
	}
	a.mu.Unlock()
	h.stats.subscribed.Add(1)
	return s, hist, ok
}

// unsubscribe removes a subscriber (idempotent).
func (h *Hub) unsubscribe(tenantID string, s *subscriber) {
	h.mu.RLock()
	a := h.tenants[tenantID]
	h.mu.RUnlock()
	if a == nil {
		return
	}
	a.mu.Lock()
	a.remove(s)
	a.mu.Unlock()
}

// beat returns the channel that the clock closes at a shard's next tick,
// or at shutdown (then it is closed already).
func (h *Hub) beat(shard int) <-chan struct{} { return *h.shards[shard].Load() }

// closing reports whether Close was called.
func (h *Hub) closing() bool { return h.stopped.Load() }

func (h *Hub) clock() {
	defer close(h.clockDone)
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
		h.shardMu.Lock()
		if !h.stopped.Load() {
			close(*h.shards[i].Swap(&c))
		}
		h.shardMu.Unlock()
		i = (i + 1) % nShards
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
	h.shardMu.Lock()
	h.stopped.Store(true)
	for i := range h.shards {
		c := closedChan
		close(*h.shards[i].Swap(&c))
	}
	h.shardMu.Unlock()
	if h.active == 0 {
		close(h.drained)
	}
	if !h.clockOn {
		close(h.clockDone)
	}
}

// Drain waits until every stream has returned and the clock has stopped,
// or ctx ends.
func (h *Hub) Drain(ctx context.Context) error {
	for _, c := range []chan struct{}{h.drained, h.clockDone} {
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
	// keep up (a full queue).
	SlowDisconnects int64
	// Delivered counts event frames written to clients, replay included.
	Delivered int64
	// Replayed counts the event frames of replays (from the log or from
	// the hub's recent batches).
	Replayed int64
	// Batches counts batches published to at least one subscriber.
	Batches int64
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.RLock()
	n := h.active
	h.mu.RUnlock()
	return Stats{Streams: n, Subscribed: h.stats.subscribed.Load(), SlowDisconnects: h.stats.overflows.Load(),
		Delivered: h.stats.delivered.Load(), Replayed: h.stats.replayed.Load(), Batches: h.stats.batches.Load()}
}
