package polling

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
)

// hub holds the long-polls waiting on each tenant's log, woken by the relay's
// publishes. Conditional polls read the relay's head; waiting polls sleep on
// a channel until a publish concerns them. Neither reads the database.
//
// A tenant has state here only while a long-poll waits on it: asking about a
// tenant (a head, a poll, even a made-up tenant id) leaves nothing behind,
// and there is nothing to evict.
type hub struct {
	src        HeadSource
	seed       maphash.Seed
	shards     [hubShards]hubShard
	maxWaiters int64
	waiting    atomic.Int64
	done       chan struct{}
	closeOnce  sync.Once
}

const hubShards = 32

// hubShard holds the waiters of the tenants that hash to it. Its lock is
// held to register, wake or remove a waiter, never while blocking.
type hubShard struct {
	mu      sync.Mutex
	tenants map[string]map[*waiter]struct{} // only tenants with waiters
}

// waiter is one held long-poll.
type waiter struct {
	after int64                    // wake on a matching event with seq > after
	match func(*models.Event) bool // whether the caller sees the event
	ch    chan struct{}            // closed on wake-up
	// under the shard's lock:
	woke bool
	seen int64 // the last seq published while registered (none matched)
}

func newHub(src HeadSource, maxWaiters int) *hub {
	h := &hub{src: src, seed: maphash.MakeSeed(), maxWaiters: int64(maxWaiters), done: make(chan struct{})}
	for i := range h.shards {
		h.shards[i].tenants = map[string]map[*waiter]struct{}{}
	}
	return h
}

func (h *hub) shard(tenant string) *hubShard {
	return &h.shards[maphash.String(h.seed, tenant)%hubShards]
}

// head returns the last seq the relay published for the tenant.
func (h *hub) head(tenant string) int64 { return h.src.Head(tenant) }

// publish wakes the waiters that see one of the events. The relay calls it
// in seq order with the tenant's dispatch lock held; it only takes the
// shard's lock and never blocks.
func (h *hub) publish(tenant string, evs []models.Event) {
	if len(evs) == 0 {
		return
	}
	sh := h.shard(tenant)
	last := evs[len(evs)-1].Seq
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ws := sh.tenants[tenant]
	for w := range ws {
		for i := range evs {
			if evs[i].Seq > w.after && w.match(&evs[i]) {
				w.woke = true
				close(w.ch)
				delete(ws, w)
				break
			}
		}
		if !w.woke {
			w.seen = last
		}
	}
	if ws != nil && len(ws) == 0 {
		delete(sh.tenants, tenant)
	}
}

// wait holds until an event with seq > after that match accepts is
// published, until deadline, until ctx ends or until the hub closes.
//
// woke reports that there may be something to read: a matching event was
// published, or the relay had already published past after when the wait
// began (those events were not seen by match, so the caller must read them).
// Otherwise seen is the last seq published meanwhile (at least after): the
// caller sees no event in (after, seen].
func (h *hub) wait(ctx context.Context, tenant string, after int64, match func(*models.Event) bool, deadline time.Time) (woke bool, seen int64) {
	select {
	case <-h.done:
		return false, after
	default:
	}
	if h.waiting.Add(1) > h.maxWaiters {
		h.waiting.Add(-1)
		return false, after
	}
	defer h.waiting.Add(-1)
	sh := h.shard(tenant)
	w := &waiter{after: after, match: match, ch: make(chan struct{}), seen: after}
	registered := false
	// Registered while no batch of the tenant is being published: the
	// relay's next publish starts right after dispatched.
	h.src.Sync(tenant, func(dispatched int64) {
		if dispatched > after {
			return
		}
		sh.mu.Lock()
		ws := sh.tenants[tenant]
		if ws == nil {
			ws = map[*waiter]struct{}{}
			sh.tenants[tenant] = ws
		}
		ws[w] = struct{}{}
		sh.mu.Unlock()
		registered = true
	})
	if !registered {
		return true, after
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-w.ch:
	case <-t.C:
	case <-ctx.Done():
	case <-h.done:
	}
	sh.mu.Lock()
	if ws := sh.tenants[tenant]; ws != nil {
		delete(ws, w)
		if len(ws) == 0 {
			delete(sh.tenants, tenant)
		}
	}
	woke, seen = w.woke, max(w.seen, after)
	sh.mu.Unlock()
	return woke, seen
}

// tenants returns the number of tenants with waiters (the hub's only
// per-tenant state).
func (h *hub) tenants() int {
	n := 0
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		n += len(sh.tenants)
		sh.mu.Unlock()
	}
	return n
}

func (h *hub) closed() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

func (h *hub) close() { h.closeOnce.Do(func() { close(h.done) }) }

// waiters returns the number of long-polls held (for tests and stats).
func (h *hub) waiters() int64 { return h.waiting.Load() }
