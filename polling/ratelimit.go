package polling

import (
	"container/list"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

const limiterShards = 16

// limiter is a per-token token bucket over a bounded table: each shard keeps
// its tokens in least-recently-used order and evicts the oldest when full.
// Tokens are keyed by a process-local hash, so the table holds no
// credentials.
type limiter struct {
	rate   rate.Limit
	burst  int
	seed   maphash.Seed
	shards [limiterShards]limiterShard
}

type limiterShard struct {
	mu  sync.Mutex
	max int
	m   map[uint64]*list.Element
	lru list.List // of *limiterEntry, most recent first
}

type limiterEntry struct {
	key uint64
	lim *rate.Limiter
}

func newLimiter(r rate.Limit, burst, maxTokens int) *limiter {
	l := &limiter{rate: r, burst: burst, seed: maphash.MakeSeed()}
	per := max(1, maxTokens/limiterShards)
	for i := range l.shards {
		l.shards[i].max = per
		l.shards[i].m = make(map[uint64]*list.Element)
	}
	return l
}

// allow takes one request from the token's bucket. When the bucket is empty
// it returns false and how long until a request would be allowed.
func (l *limiter) allow(token string, now time.Time) (bool, time.Duration) {
	k := maphash.String(l.seed, token)
	s := &l.shards[k%limiterShards]
	s.mu.Lock()
	el, ok := s.m[k]
	if ok {
		s.lru.MoveToFront(el)
	} else {
		if s.lru.Len() >= s.max {
			old := s.lru.Back()
			s.lru.Remove(old)
			delete(s.m, old.Value.(*limiterEntry).key)
		}
		el = s.lru.PushFront(&limiterEntry{key: k, lim: rate.NewLimiter(l.rate, l.burst)})
		s.m[k] = el
	}
	lim := el.Value.(*limiterEntry).lim
	s.mu.Unlock()
	if lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - lim.TokensAt(now)
	return false, time.Duration(math.Ceil(missing / float64(l.rate) * float64(time.Second)))
}

// size returns the number of tokens in the table.
func (l *limiter) size() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += s.lru.Len()
		s.mu.Unlock()
	}
	return n
}
