package auth

import (
	"sync"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
)

// verified remembers tokens whose signature and claims were checked, until
// they expire, so that a poller's every request (a 304 most of the time)
// does not parse and verify the same JWT again.
type verified struct {
	mu      sync.Mutex
	max     int
	entries map[string]verifiedEntry
}

type verifiedEntry struct {
	actor models.Actor
	until time.Time // exp plus the leeway: past it the token is rejected
}

func newVerified(max int) *verified {
	return &verified{max: max, entries: make(map[string]verifiedEntry, max)}
}

func (v *verified) get(token string, now time.Time) (models.Actor, bool) {
	v.mu.Lock()
	e, ok := v.entries[token]
	if ok && !now.Before(e.until) {
		delete(v.entries, token)
		ok = false
	}
	v.mu.Unlock()
	return e.actor, ok
}

func (v *verified) put(token string, a models.Actor, until time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.entries) >= v.max {
		// Drop about half, in map order (random): a bounded cache without
		// bookkeeping on the hot path.
		n := 0
		for k := range v.entries {
			delete(v.entries, k)
			if n++; n >= v.max/2 {
				break
			}
		}
	}
	v.entries[token] = verifiedEntry{a, until}
}
