package polling

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
)

// hub keeps each tenant's head in memory, fed by the relay, and the
// long-polls waiting on it. Conditional polls read the head; waiting polls
// sleep on a channel until a publish concerns them. Neither reads the
// database.
type hub struct {
	src        HeadSource
	tenants    sync.Map // tenant id → *tenantState
	maxWaiters int64
	waiting    atomic.Int64
	done       chan struct{}
	closeOnce  sync.Once
}

type tenantState struct {
	head    atomic.Int64 // last seq published
	mu      sync.Mutex
	waiters map[*waiter]struct{}
}

// waiter is one held long-poll.
type waiter struct {
	after int64                    // wake on a matching event with seq > after
	match func(*models.Event) bool // whether the caller sees the event
	ch    chan struct{}            // closed on wake-up
	// under tenantState.mu:
	woke bool
	seen int64 // the last seq published while registered (none matched)
}

func newHub(src HeadSource, maxWaiters int) *hub {
	return &hub{src: src, maxWaiters: int64(maxWaiters), done: make(chan struct{})}
}

// state returns the tenant's state, creating it at the relay's dispatched
// seq. Sync keeps a publish of the same tenant from running meanwhile, so the
// head starts exactly where the relay's next batch will start.
func (h *hub) state(tenant string) *tenantState {
	if v, ok := h.tenants.Load(tenant); ok {
		return v.(*tenantState)
	}
	var st *tenantState
	h.src.Sync(tenant, func(dispatched int64) {
		v, _ := h.tenants.LoadOrStore(tenant, newTenantState(dispatched))
		st = v.(*tenantState)
	})
	return st
}

func newTenantState(head int64) *tenantState {
	st := &tenantState{waiters: map[*waiter]struct{}{}}
	st.head.Store(head)
	return st
}

func (h *hub) head(tenant string) int64 { return h.state(tenant).head.Load() }

// publish advances the head and wakes the waiters that see one of the events.
// The relay calls it in seq order with the tenant's dispatch lock held; it
// only takes the tenant's waiter lock and never blocks.
func (h *hub) publish(tenant string, evs []models.Event) {
	if len(evs) == 0 {
		return
	}
	v, ok := h.tenants.Load(tenant)
	if !ok {
		v, _ = h.tenants.LoadOrStore(tenant, newTenantState(evs[0].Seq-1))
	}
	st := v.(*tenantState)
	last := evs[len(evs)-1].Seq
	st.mu.Lock()
	defer st.mu.Unlock()
	st.head.Store(last)
	for w := range st.waiters {
		for i := range evs {
			if evs[i].Seq > w.after && w.match(&evs[i]) {
				w.woke = true
				close(w.ch)
				delete(st.waiters, w)
				break
			}
		}
		if !w.woke {
			w.seen = last
		}
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
	st := h.state(tenant)
	w := &waiter{after: after, match: match, ch: make(chan struct{}), seen: after}
	registered := false
	h.src.Sync(tenant, func(dispatched int64) {
		if dispatched > after {
			return
		}
		st.mu.Lock()
		st.waiters[w] = struct{}{}
		st.mu.Unlock()
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
	st.mu.Lock()
	delete(st.waiters, w)
	woke, seen = w.woke, max(w.seen, after)
	st.mu.Unlock()
	return woke, seen
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
