package polling

import (
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// meter counts poll requests per wall-clock second, lock-free on the hot
// path: the rate is the count of the last complete second (or of the current
// one, once it is larger).
type meter struct {
	sec  atomic.Int64 // the current second (Unix)
	cur  atomic.Int64 // requests in it
	prev atomic.Int64 // requests in the second before, 0 if it had none
	mu   sync.Mutex   // serialises the roll-over
}

func (m *meter) hit(now time.Time) {
	m.roll(now.Unix())
	m.cur.Add(1)
}

func (m *meter) roll(s int64) {
	if m.sec.Load() == s {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch old := m.sec.Load(); {
	case old == s:
		return
	case old == s-1:
		m.prev.Store(m.cur.Load())
	default:
		m.prev.Store(0)
	}
	m.cur.Store(0)
	m.sec.Store(s)
}

// rate returns the recent requests per second.
func (m *meter) rate(now time.Time) float64 {
	m.roll(now.Unix())
	return float64(max(m.prev.Load(), m.cur.Load()))
}

// interval returns the advised poll interval for a stream health: the
// configured one, stretched in proportion to the load when this instance
// serves more than OverloadRate polls per second (at most MaxStretch times).
// It is never shorter than the configured interval.
func (p *Poller) interval(h Health, now time.Time) time.Duration {
	base := p.cfg.Intervals.Default
	switch h {
	case HealthLive:
		base = p.cfg.Intervals.Live
	case HealthDown:
		base = p.cfg.Intervals.Down
	}
	if r := p.load.rate(now); r > p.cfg.OverloadRate {
		stretch := math.Min(r/p.cfg.OverloadRate, p.cfg.MaxStretch)
		return time.Duration(float64(base) * stretch)
	}
	return base
}

// intervalHeader formats an interval in whole seconds, rounded up.
func intervalHeader(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}
