package auth

import (
	"crypto"
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
	// The key set's key that verified the token (key nil for HS256): a hit
	// is only good while the set still holds it (Authenticator.stillInSet).
	kid, alg string
	key      crypto.PublicKey
}

func newVerified(max int) *verified {
	return &verified{max: max, entries: make(map[string]verifiedEntry, max)}
}

func (v *verified) get(token string, now time.Time) (verifiedEntry, bool) {
	v.mu.Lock()
	e, ok := v.entries[token]
	if ok && !now.Before(e.until) {
		delete(v.entries, token)
		ok = false
	}
	v.mu.Unlock()
	return e, ok
}

func (v *verified) drop(token string) {
	v.mu.Lock()
	delete(v.entries, token)
	v.mu.Unlock()
}

func (v *verified) put(token string, e verifiedEntry) {
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
	v.entries[token] = e
}
