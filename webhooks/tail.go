package webhooks

import (
	"encoding/json"
	"sync"

	"github.com/clinicpulse/clinicpulse/models"
)

// Bounds of a tenant's tail: a worker further behind reads the log.
const (
	tailEvents = 4096
	tailBytes  = 8 << 20
)

// tail is the recent end of one tenant's log as the relay published it
// (contiguous seqs), shared by the workers of the tenant's subscriptions
// on this instance: in the steady state they read no event from the
// database, and each event is encoded once for all of them. It exists
// while a worker of the tenant runs (users, guarded by Deliverer.mu).
type tail struct {
	users int

	mu      sync.Mutex
	entries []*entry // entries[i].ev.Seq = entries[0].ev.Seq + i
	bytes   int
	changed signal // fired by add
}

// entry is one event and its body, encoded on first use.
type entry struct {
	ev   models.Event
	once sync.Once
	body []byte
	err  error
}

// json returns the event envelope, byte for byte as /events answers it to
// staff.
func (e *entry) json() ([]byte, error) {
	e.once.Do(func() { e.body, e.err = json.Marshal(&e.ev) })
	return e.body, e.err
}

func entrySize(e *models.Event) int { return len(e.Data) + 256 }

// add appends published events. Events that do not follow the last one (a
// pruned hole the relay moved past) start the tail over. The oldest go
// beyond the bounds.
func (t *tail) add(evs []models.Event) {
	if len(evs) == 0 {
		return
	}
	t.mu.Lock()
	if n := len(t.entries); n > 0 && evs[0].Seq != t.entries[n-1].ev.Seq+1 {
		t.entries, t.bytes = nil, 0
	}
	for i := range evs {
		t.entries = append(t.entries, &entry{ev: evs[i]})
		t.bytes += entrySize(&evs[i])
	}
	if len(t.entries) > tailEvents || t.bytes > tailBytes {
		// Keep the newest three quarters of either bound, in a new array
		// (the old one's front would stay reachable otherwise).
		keep, size := 0, 0
		for i := len(t.entries) - 1; i >= 0; i-- {
			size += entrySize(&t.entries[i].ev)
			if keep >= tailEvents*3/4 || (keep > 0 && size > tailBytes*3/4) {
				break
			}
			keep++
		}
		t.entries = append([]*entry(nil), t.entries[len(t.entries)-keep:]...)
		t.bytes = 0
		for _, e := range t.entries {
			t.bytes += entrySize(&e.ev)
		}
	}
	t.mu.Unlock()
	t.changed.fire()
}

// after returns, from the tail, the events after cursor for a
// subscription (see pick). ok is false when the tail does not hold the
// event after cursor (empty, or cursor is older than its first): the log
// must be read.
func (t *tail) after(cursor int64, f filter) (out []*entry, through, change int64, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.entries) == 0 {
		return nil, 0, 0, false
	}
	first := t.entries[0].ev.Seq
	last := first + int64(len(t.entries)) - 1
	switch {
	case cursor+1 < first:
		return nil, 0, 0, false
	case cursor >= last:
		return nil, cursor, 0, true
	}
	out, through, change = f.pick(t.entries[cursor+1-first:], last)
	return out, through, change, true
}

// filter picks a subscription's events.
type filter struct {
	topics models.Topics
	// self is the subscription's id; its own changes after checked stop
	// a pick.
	self    string
	checked int64
	limit   int
}

// pick returns the events of es (consecutive, in seq order) that the
// topics see, at most limit, and through: where the cursor may move once
// they are delivered (end, the last seq es covers, or the last event
// returned when limit cut the list). It stops before a change of the
// subscription itself (its "webhooks" event after checked: its URL,
// topics or secrets may have changed, or it was disabled or deleted),
// whose seq it returns as change, so that the worker reads the
// subscription again before its next request: every event committed
// after a change is sent with the new settings.
func (f filter) pick(es []*entry, end int64) (out []*entry, through, change int64) {
	for _, e := range es {
		if e.ev.Entity == models.EntityWebhook && e.ev.ID == f.self && e.ev.Seq > f.checked {
			return out, e.ev.Seq - 1, e.ev.Seq
		}
		if (models.Scope{}).Visible(&e.ev, f.topics) {
			out = append(out, e)
			if len(out) == f.limit {
				return out, e.ev.Seq, 0
			}
		}
	}
	return out, end, 0
}
