// Package relay hands each tenant's committed events to the live channels
// (streams, long-polls, ETag heads) strictly in seq order.
//
// Writers never publish: two handlers that commit seq 5 and 6 may run their
// after-commit code in either order. A writer only nudges the relay; the
// relay reads the log after the last seq it dispatched and publishes what it
// finds, in order. Nudges come from this process after a commit, from other
// instances through Postgres LISTEN/NOTIFY, and from a slow safety-net scan.
//
// Events pruned before the relay dispatched them (after a stall longer than
// the retention) leave a hole after its dispatched seq. The relay notices it
// when a read does not start right after that seq, or finds nothing while a
// nudge reported a later head; only then does it ask the log how far it is
// pruned. It moves past the pruned seqs with a warning, tells the sinks that
// implement Skipper, and goes on from there.
package relay

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/store"
)

// Log is the change log the relay reads.
type Log interface {
	ReadEvents(ctx context.Context, q models.EventQuery) ([]models.Event, error)
	Heads(ctx context.Context) (map[string]int64, error)
	// LogHead is asked only when a read shows a hole after the dispatched
	// seq: it tells how far the log is pruned.
	LogHead(ctx context.Context, tenantID string) (store.Head, error)
}

// Sink receives a tenant's events in seq order, without gaps, each once. It
// must not block: it is called with the tenant's dispatch lock held.
//
// The one exception is a pruned hole: seqs pruned before they were
// dispatched are never published. A sink that implements Skipper is told
// before the events after the hole; any other sink sees the jump.
type Sink interface {
	Publish(tenantID string, events []models.Event)
}

// Skipper is a Sink told about pruned holes. Skip says that the tenant's
// seqs in (after, through] were pruned before the relay dispatched them and
// will never be published: the next Publish of the tenant starts after
// through. It is called with the tenant's dispatch lock held and must not
// block.
type Skipper interface {
	Skip(tenantID string, after, through int64)
}

// batch is how many events one read takes from the log.
const batch = 500

// Relay dispatches committed events to sinks in seq order per tenant.
type Relay struct {
	log      Log
	interval time.Duration
	logger   *slog.Logger

	mu      sync.Mutex
	tenants map[string]*tenant
	dirty   map[string]struct{}
	sinks   []Sink
	wake    chan struct{}
}

// tenant is the relay's position in one tenant's log.
//
// A tenant that has dispatched nothing (no log, or a made-up tenant id that a
// head, a poll or a stream asked about) is forgotten as soon as nothing uses
// it: recreated, it starts from the same place (0), so forgetting it loses no
// event and moves no head. So is one a nudge named that turns out to have no
// log (a NOTIFY from another schema of a shared database). A tenant that has dispatched something keeps its
// entry: sinks hold subscribers and waiters at its seq, and the log alone
// cannot tell which of its committed events were already published. Those
// entries are bounded by the tenants that have a log (tenant_heads rows),
// about 100 bytes each.
type tenant struct {
	mu         sync.Mutex   // held while a batch is read and published
	dispatched atomic.Int64 // last seq handed to the sinks; written under mu
	nudged     atomic.Int64 // highest head a nudge reported, a seq already committed; written under Relay.mu
	forgotten  bool         // removed from Relay.tenants; set under mu and Relay.mu

	wmu      sync.Mutex    // guards advanced
	advanced chan struct{} // closed when dispatched moves; nil while nobody waits
}

// advance sets the dispatched seq and wakes AwaitDispatched callers.
func (t *tenant) advance(seq int64) {
	t.dispatched.Store(seq)
	t.wmu.Lock()
	if t.advanced != nil {
		close(t.advanced)
		t.advanced = nil
	}
	t.wmu.Unlock()
}

// New returns a relay over log. interval is the safety-net scan period
// (0 disables it).
func New(log Log, interval time.Duration, logger *slog.Logger) *Relay {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Relay{log: log, interval: interval, logger: logger, tenants: map[string]*tenant{}, dirty: map[string]struct{}{}, wake: make(chan struct{}, 1)}
}

// AddSink registers a sink; call before Start.
func (r *Relay) AddSink(s Sink) { r.sinks = append(r.sinks, s) }

// Start reads every tenant's head: events up to it are history (subscribers
// replay them from the log), events after it will be dispatched.
func (r *Relay) Start(ctx context.Context) error {
	heads, err := r.log.Heads(ctx)
	if err != nil {
		return fmt.Errorf("relay: start: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, h := range heads {
		t := &tenant{}
		t.dispatched.Store(h)
		r.tenants[id] = t
	}
	return nil
}

// lock returns the tenant's entry, created if need be, with its lock held.
func (r *Relay) lock(id string) *tenant {
	for {
		r.mu.Lock()
		t, ok := r.tenants[id]
		if !ok {
			// A tenant unknown at Start had no events then: all of its are new.
			t = &tenant{}
			r.tenants[id] = t
		}
		r.mu.Unlock()
		t.mu.Lock()
		if !t.forgotten {
			return t
		}
		t.mu.Unlock() // forgotten meanwhile: take the new entry
	}
}

// unlock releases a tenant's lock, forgetting the tenant first if it has
// dispatched nothing and nothing is pending for it.
func (r *Relay) unlock(id string, t *tenant) {
	defer t.mu.Unlock()
	if t.dispatched.Load() != 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dirty := r.dirty[id]; r.tenants[id] != t || t.nudged.Load() != 0 || dirty {
		return
	}
	t.forgotten = true
	delete(r.tenants, id)
}

// Nudge tells the relay that the tenant's log reached head. It never blocks.
func (r *Relay) Nudge(tenantID string, head int64) {
	if head <= 0 {
		return
	}
	r.mu.Lock()
	t, ok := r.tenants[tenantID]
	if !ok {
		t = &tenant{}
		r.tenants[tenantID] = t
	}
	if head <= t.dispatched.Load() {
		r.mu.Unlock()
		return
	}
	if head > t.nudged.Load() {
		t.nudged.Store(head)
	}
	r.dirty[tenantID] = struct{}{}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Head returns the last seq dispatched for the tenant (0 for a tenant the
// relay has dispatched nothing of). It creates nothing.
func (r *Relay) Head(tenantID string) int64 {
	r.mu.Lock()
	t := r.tenants[tenantID]
	r.mu.Unlock()
	if t == nil {
		return 0
	}
	return t.dispatched.Load()
}

// AwaitDispatched returns once every sink has been handed the tenant's
// events through seq (or seqs up to it were pruned and skipped), or with
// ctx's error. A writer that waits for its commit's last seq before it
// answers makes the write visible to every read on this instance: the poll
// heads, ETags and streams all move in the sinks.
func (r *Relay) AwaitDispatched(ctx context.Context, tenantID string, seq int64) error {
	r.mu.Lock()
	t := r.tenants[tenantID]
	r.mu.Unlock()
	if t == nil {
		// The write committed seq, so the relay has it to read; a nudge
		// makes the entry, which is not forgotten while nudged.
		r.Nudge(tenantID, seq)
		r.mu.Lock()
		t = r.tenants[tenantID]
		r.mu.Unlock()
		if t == nil {
			return nil
		}
	}
	for {
		t.wmu.Lock()
		if t.dispatched.Load() >= seq {
			t.wmu.Unlock()
			return nil
		}
		if t.advanced == nil {
			t.advanced = make(chan struct{})
		}
		ch := t.advanced
		t.wmu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("relay: await seq %d: %w", seq, ctx.Err())
		}
	}
}

// Sync runs fn with the tenant's last dispatched seq while no batch of that
// tenant is being published. A subscriber that registers inside fn and
// replays the log up to that seq receives every later event exactly once.
func (r *Relay) Sync(tenantID string, fn func(dispatched int64)) {
	t := r.lock(tenantID)
	defer r.unlock(tenantID, t)
	fn(t.dispatched.Load())
}

// Tenants returns the number of tenants the relay keeps an entry for.
func (r *Relay) Tenants() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.tenants)
}

// Keeps reports whether the relay keeps an entry for the tenant.
func (r *Relay) Keeps(tenantID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.tenants[tenantID]
	return ok
}

// Run dispatches until ctx ends.
func (r *Relay) Run(ctx context.Context) {
	var tick <-chan time.Time
	if r.interval > 0 {
		t := time.NewTicker(r.interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-tick:
			r.scan(ctx)
		}
		r.mu.Lock()
		dirty := r.dirty
		r.dirty = map[string]struct{}{}
		r.mu.Unlock()
		for id := range dirty {
			if err := r.dispatch(ctx, id); err != nil && ctx.Err() == nil {
				r.logger.Warn("relay: dispatch failed; will retry", "tenant", id, "err", err)
				r.mu.Lock()
				r.dirty[id] = struct{}{}
				r.mu.Unlock()
				select {
				case <-ctx.Done():
					return
				case <-time.After(250 * time.Millisecond):
				}
				select {
				case r.wake <- struct{}{}:
				default:
				}
			}
		}
	}
}

// scan compares every tenant's head with what was dispatched: the safety net
// for a lost nudge.
func (r *Relay) scan(ctx context.Context) {
	heads, err := r.log.Heads(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.logger.Warn("relay: scan failed", "err", err)
		}
		return
	}
	for id, h := range heads {
		if h > r.Head(id) {
			r.Nudge(id, h)
		}
	}
}

// dispatch publishes the tenant's events after its dispatched seq.
func (r *Relay) dispatch(ctx context.Context, tenantID string) error {
	t := r.lock(tenantID)
	defer r.unlock(tenantID, t)
	for {
		after := t.dispatched.Load()
		// Loaded before the read: a head committed before it, which the
		// read sees unless it was pruned.
		nudged := t.nudged.Load()
		evs, err := r.log.ReadEvents(ctx, models.EventQuery{TenantID: tenantID, After: after, Limit: batch})
		if err != nil {
			return err
		}
		if (len(evs) > 0 && evs[0].Seq != after+1) || (len(evs) == 0 && nudged > after) {
			// A hole (never the common case: a tenant's transactions
			// commit in seq order).
			moved, noLog, err := r.skipPruned(ctx, tenantID, t, after)
			if err != nil {
				return err
			}
			if moved {
				continue // read again from after the hole
			}
			if noLog {
				// The nudge named a tenant without a log: a NOTIFY of
				// another schema sharing the database. Nothing to keep.
				r.mu.Lock()
				if t.nudged.Load() == nudged {
					t.nudged.Store(0)
				}
				r.mu.Unlock()
				return nil
			}
			if len(evs) > 0 {
				// Not pruned: the missing seqs may still show up.
				return fmt.Errorf("relay: tenant %s: the log has seq %d after %d, and is not pruned past %d", tenantID, evs[0].Seq, after, after)
			}
			return nil
		}
		if len(evs) > 0 {
			for _, s := range r.sinks {
				s.Publish(tenantID, evs)
			}
			t.advance(evs[len(evs)-1].Seq)
		}
		if len(evs) < batch {
			return nil
		}
	}
}

// skipPruned moves the tenant's dispatched seq past what the log pruned
// after it, if anything, and reports whether it did, and whether the tenant
// has no log at all.
func (r *Relay) skipPruned(ctx context.Context, tenantID string, t *tenant, after int64) (moved, noLog bool, err error) {
	h, err := r.log.LogHead(ctx, tenantID)
	if err != nil {
		return false, false, err
	}
	if h.PrunedThrough <= after {
		return false, h.Seq == 0, nil
	}
	r.logger.Warn("relay: events were pruned before they were dispatched; moving past them (streams behind the hole get a reset when they resume)",
		"tenant", tenantID, "after", after, "through", h.PrunedThrough, "missed", h.PrunedThrough-after)
	for _, s := range r.sinks {
		if sk, ok := s.(Skipper); ok {
			sk.Skip(tenantID, after, h.PrunedThrough)
		}
	}
	t.advance(h.PrunedThrough)
	return true, false, nil
}
