// Package limits bounds what one verified caller can take of an instance:
// a request rate (token bucket) and a number of concurrent holds (streams,
// long-polls), each keyed on the verified identity — never on bytes the
// client can vary, such as the spelling of its Authorization header.
//
// Tables are bounded: a rate table keeps at most a configured number of
// identities (least recently seen evicted first; an evicted identity comes
// back with a full bucket, which is harmless), and a concurrency table holds
// an entry only while that identity holds something.
package limits

import (
	"container/list"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
	"golang.org/x/time/rate"
)

// Identity is the key of a verified caller: its tenant and subject (a
// platform operator is one identity whatever tenant it names). It is built
// only from a verified actor.
type Identity struct {
	TenantID string
	Subject  string
}

// IdentityOf returns the identity of a verified actor.
func IdentityOf(a models.Actor) Identity {
	if a.Role == models.RolePlatform {
		return Identity{TenantID: "", Subject: "platform\x00" + a.Subject}
	}
	return Identity{TenantID: a.TenantID, Subject: a.Subject}
}

func (id Identity) hash(seed maphash.Seed) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	h.WriteString(id.TenantID)
	h.WriteByte(0)
	h.WriteString(id.Subject)
	return h.Sum64()
}

const shards = 16

// Rate is a per-identity token bucket over a bounded table. Identities are
// kept as process-local hashes, so the table holds no credentials or ids.
type Rate struct {
	rate   rate.Limit
	burst  int
	seed   maphash.Seed
	shards [shards]rateShard
}

type rateShard struct {
	mu  sync.Mutex
	max int
	m   map[uint64]*list.Element
	lru list.List // of *rateEntry, most recent first
}

type rateEntry struct {
	key uint64
	lim *rate.Limiter
}

// NewRate returns a limiter allowing r requests per second with bursts of
// burst per identity, remembering at most maxIdentities identities.
func NewRate(r rate.Limit, burst, maxIdentities int) *Rate {
	l := &Rate{rate: r, burst: burst, seed: maphash.MakeSeed()}
	per := max(1, maxIdentities/shards)
	for i := range l.shards {
		l.shards[i].max = per
		l.shards[i].m = make(map[uint64]*list.Element)
	}
	return l
}

// Allow takes one request from the identity's bucket. When the bucket is
// empty it returns false and how long until a request would be allowed.
func (l *Rate) Allow(id Identity, now time.Time) (bool, time.Duration) {
	k := id.hash(l.seed)
	s := &l.shards[k%shards]
	s.mu.Lock()
	el, ok := s.m[k]
	if ok {
		s.lru.MoveToFront(el)
	} else {
		if s.lru.Len() >= s.max {
			old := s.lru.Back()
			s.lru.Remove(old)
			delete(s.m, old.Value.(*rateEntry).key)
		}
		el = s.lru.PushFront(&rateEntry{key: k, lim: rate.NewLimiter(l.rate, l.burst)})
		s.m[k] = el
	}
	lim := el.Value.(*rateEntry).lim
	s.mu.Unlock()
	if lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - lim.TokensAt(now)
	return false, time.Duration(math.Ceil(missing / float64(l.rate) * float64(time.Second)))
}

// Len returns the number of identities in the table.
func (l *Rate) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += s.lru.Len()
		s.mu.Unlock()
	}
	return n
}

// RetryAfterSeconds rounds a wait up to whole seconds, at least 1, for a
// Retry-After header (RFC 9110 §10.2.3).
func RetryAfterSeconds(d time.Duration) int64 {
	return max(1, int64((d+time.Second-1)/time.Second))
}

// Holds bounds concurrent holds (open streams, waiting long-polls) per
// identity and per tenant. An entry lives only while something is held.
type Holds struct {
	mu        sync.Mutex
	byID      map[Identity]int
	byTenant  map[string]int
	perTenant int
}

// NewHolds returns a table whose tenants may hold at most perTenant at once
// (0: no tenant bound).
func NewHolds(perTenant int) *Holds {
	return &Holds{byID: map[Identity]int{}, byTenant: map[string]int{}, perTenant: perTenant}
}

// Acquire takes one hold for id if the identity holds fewer than perIdentity
// and its tenant fewer than the tenant bound. It returns the release
// function (call it exactly once) and true, or nil and false.
func (h *Holds) Acquire(id Identity, tenantID string, perIdentity int) (release func(), ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if perIdentity > 0 && h.byID[id] >= perIdentity {
		return nil, false
	}
	if h.perTenant > 0 && h.byTenant[tenantID] >= h.perTenant {
		return nil, false
	}
	h.byID[id]++
	h.byTenant[tenantID]++
	var once sync.Once
	return func() { once.Do(func() { h.release(id, tenantID) }) }, true
}

func (h *Holds) release(id Identity, tenantID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byID[id]--; h.byID[id] <= 0 {
		delete(h.byID, id)
	}
	if h.byTenant[tenantID]--; h.byTenant[tenantID] <= 0 {
		delete(h.byTenant, tenantID)
	}
}

// Held returns what the identity holds now.
func (h *Holds) Held(id Identity) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byID[id]
}

// Entries returns the number of identities holding something (the table's
// size: zero when nothing is held).
func (h *Holds) Entries() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.byID)
}
