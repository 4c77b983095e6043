package metrics

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Snapshot is one reading of the instance's live numbers.
type Snapshot struct {
	At                time.Time `json:"at"`
	Streams           int64     `json:"streams"`    // open SSE responses
	LongPolls         int64     `json:"long_polls"` // long-polls waiting now
	Committed         float64   `json:"-"`          // counters: rates are derived
	Dispatched        float64   `json:"-"`
	Polls             float64   `json:"-"`
	Polls304          float64   `json:"-"`
	SlowDisconnects   int64     `json:"slow_client_disconnects"`
	ListenerConnected *bool     `json:"listener_connected,omitempty"` // nil on SQLite
	ListenerLagSec    float64   `json:"listener_idle_seconds"`        // since the last NOTIFY heard
	EventsPerSec      float64   `json:"events_per_second"`
	DispatchedPerSec  float64   `json:"dispatched_per_second"`
	PollsPerSec       float64   `json:"polls_per_second"`
	NotModifiedShare  float64   `json:"not_modified_share"` // of polls in the last interval
}

// Sampler reads a snapshot every period and keeps the last window of them,
// with rates computed between consecutive readings.
type Sampler struct {
	read   func() Snapshot
	period time.Duration
	keep   int

	mu      sync.Mutex
	history []Snapshot
}

// NewSampler keeps window/period snapshots.
func NewSampler(read func() Snapshot, period, window time.Duration) *Sampler {
	return &Sampler{read: read, period: period, keep: int(window / period)}
}

// Run samples until ctx ends.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTicker(s.period)
	defer t.Stop()
	s.sample()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sample()
		}
	}
}

func (s *Sampler) sample() {
	cur := s.read()
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.history); n > 0 {
		rates(&cur, s.history[n-1])
	}
	s.history = append(s.history, cur)
	if len(s.history) > s.keep {
		s.history = s.history[len(s.history)-s.keep:]
	}
}

func rates(cur *Snapshot, prev Snapshot) {
	dt := cur.At.Sub(prev.At).Seconds()
	if dt <= 0 {
		return
	}
	cur.EventsPerSec = (cur.Committed - prev.Committed) / dt
	cur.DispatchedPerSec = (cur.Dispatched - prev.Dispatched) / dt
	cur.PollsPerSec = (cur.Polls - prev.Polls) / dt
	if d := cur.Polls - prev.Polls; d > 0 {
		cur.NotModifiedShare = (cur.Polls304 - prev.Polls304) / d
	}
}

// Current returns a fresh reading with rates against the last sample, and
// the history.
func (s *Sampler) Current() (Snapshot, []Snapshot) {
	cur := s.read()
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.history); n > 0 {
		rates(&cur, s.history[n-1])
	}
	return cur, append([]Snapshot(nil), s.history...)
}

// PollCounter counts poll responses and their 304s.
type PollCounter struct {
	Total, NotModified atomic.Int64
}
