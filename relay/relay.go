// Package relay hands each tenant's committed events to the live channels
// (streams, long-polls, ETag heads) strictly in seq order.
//
// Writers never publish: two handlers that commit seq 5 and 6 may run their
// after-commit code in either order. A writer only nudges the relay; the
// relay reads the log after the last seq it dispatched and publishes what it
// finds, in order. Nudges come from this process after a commit, from other
// instances through Postgres LISTEN/NOTIFY, and from a slow safety-net scan.
package relay

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
)

// Log is the change log the relay reads.
type Log interface {
	ReadEvents(ctx context.Context, q models.EventQuery) ([]models.Event, error)
	Heads(ctx context.Context) (map[string]int64, error)
}

// Sink receives a tenant's events in seq order, without gaps, each once. It
// must not block: it is called with the tenant's dispatch lock held.
type Sink interface {
	Publish(tenantID string, events []models.Event)
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

type tenant struct {
	mu         sync.Mutex   // held while a batch is read and published
	dispatched atomic.Int64 // last seq handed to the sinks; written under mu
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

func (r *Relay) tenant(id string) *tenant {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.tenants[id]
	if !ok {
		// A tenant unknown at Start had no events then: all of its are new.
		t = &tenant{}
		r.tenants[id] = t
	}
	return t
}

// Nudge tells the relay that the tenant's log reached head. It never blocks.
func (r *Relay) Nudge(tenantID string, head int64) {
	if head <= r.tenant(tenantID).dispatched.Load() {
		return
	}
	r.mu.Lock()
	r.dirty[tenantID] = struct{}{}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Head returns the last seq dispatched for the tenant.
func (r *Relay) Head(tenantID string) int64 {
	return r.tenant(tenantID).dispatched.Load()
}

// Sync runs fn with the tenant's last dispatched seq while no batch of that
// tenant is being published. A subscriber that registers inside fn and
// replays the log up to that seq receives every later event exactly once.
func (r *Relay) Sync(tenantID string, fn func(dispatched int64)) {
	t := r.tenant(tenantID)
	t.mu.Lock()
	defer t.mu.Unlock()
	fn(t.dispatched.Load())
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
	t := r.tenant(tenantID)
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		evs, err := r.log.ReadEvents(ctx, models.EventQuery{TenantID: tenantID, After: t.dispatched.Load(), Limit: batch})
		if err != nil {
			return err
		}
		if len(evs) > 0 {
			for _, s := range r.sinks {
				s.Publish(tenantID, evs)
			}
			t.dispatched.Store(evs[len(evs)-1].Seq)
		}
		if len(evs) < batch {
			return nil
		}
	}
}
