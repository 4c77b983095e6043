// Package polling serves the clients that cannot hold the event stream: a
// browser behind a buffering proxy, a serverless host that cuts long
// requests, a curl script run from cron.
//
// It answers GET /api/v1/events (the change log after a cursor) and wraps the
// resource lists with the same conditional-request machinery:
//
//   - a strong ETag derived from the tenant's head seq, the normalised query
//     and the caller's scope and role, so that If-None-Match with the current
//     value is answered 304 from an in-memory head — no database read;
//   - X-Poll-Interval, the advised interval from the client's stream health
//     (?stream=live|down), stretched (never shortened) under overload;
//   - ?wait= long-polls, held in memory until a visible event commits;
//   - a per-token rate limit (429 with Retry-After).
//
// The in-memory heads are fed by the relay, the one in-order publisher of
// committed events: a Poller is a relay sink.
package polling

import (
	"context"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// EventLog is what the poller reads of the store: a page of a tenant's change
// log after a cursor, scope- and topic-filtered, with the cursor of the
// snapshot it read (EGONE for an expired or impossible cursor).
type EventLog interface {
	PollEvents(ctx context.Context, q models.EventQuery) (*models.EventPage, error)
}

// HeadSource is the relay as the poller sees it: the last seq it dispatched
// per tenant, and a way to run code while none of a tenant's batches is being
// published (to register a long-poll without a lost wake-up).
type HeadSource interface {
	Head(tenantID string) int64
	Sync(tenantID string, fn func(dispatched int64))
}

// Intervals maps a client's stream health to the advised poll interval
// (X-Poll-Interval).
type Intervals struct {
	Live    time.Duration // ?stream=live: the stream works; polling is a safety net
	Default time.Duration // no ?stream=
	Down    time.Duration // ?stream=down: polling is the only channel
}

// Config tunes the poller. Zero fields take the defaults of DefaultConfig.
type Config struct {
	Intervals Intervals
	// MaxWait is the longest ?wait= a client may ask for (55 s: under the
	// 60 s idle timeout of common proxies and load balancers).
	MaxWait time.Duration
	// Rate and Burst are the per-token limit on poll requests. The default
	// (10/s, burst 100) is far above a client that follows the advised
	// intervals (one poll per endpoint every 5 s at worst, plus has_more
	// catch-up pages), and far below a broken client's tight loop.
	Rate  rate.Limit
	Burst int
	// MaxTokens bounds the limiter table; the least recently seen token is
	// evicted first (it comes back with a full bucket, which is harmless).
	MaxTokens int
	// OverloadRate is the instance's poll rate (requests/s) above which the
	// advised interval is stretched in proportion, up to MaxStretch times.
	OverloadRate float64
	MaxStretch   float64
	// MaxWaiters bounds the long-polls held at once; above it a poll with
	// ?wait= is answered at once, as without it.
	MaxWaiters int
	// Now is the clock.
	Now func() time.Time
}

// DefaultConfig returns the contract's defaults: intervals 30/15/5 s for
// stream live/absent/down, wait at most 55 s.
func DefaultConfig() Config {
	return Config{
		Intervals:    Intervals{Live: 30 * time.Second, Default: 15 * time.Second, Down: 5 * time.Second},
		MaxWait:      55 * time.Second,
		Rate:         10,
		Burst:        100,
		MaxTokens:    65536,
		OverloadRate: 5000,
		MaxStretch:   4,
		MaxWaiters:   50000,
		Now:          time.Now,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Intervals.Live <= 0 {
		c.Intervals.Live = d.Intervals.Live
	}
	if c.Intervals.Default <= 0 {
		c.Intervals.Default = d.Intervals.Default
	}
	if c.Intervals.Down <= 0 {
		c.Intervals.Down = d.Intervals.Down
	}
	if c.MaxWait <= 0 {
		c.MaxWait = d.MaxWait
	}
	if c.Rate <= 0 {
		c.Rate = d.Rate
	}
	if c.Burst <= 0 {
		c.Burst = d.Burst
	}
	if c.MaxTokens <= 0 {
		c.MaxTokens = d.MaxTokens
	}
	if c.OverloadRate <= 0 {
		c.OverloadRate = d.OverloadRate
	}
	if c.MaxStretch < 1 {
		c.MaxStretch = d.MaxStretch
	}
	if c.MaxWaiters <= 0 {
		c.MaxWaiters = d.MaxWaiters
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	return c
}

// Poller serves the poll endpoints. It is a relay sink (Publish), and must be
// registered with the relay before the relay starts.
type Poller struct {
	cfg     Config
	log     EventLog
	hub     *hub
	limiter *limiter
	load    *meter
}

// New returns a poller reading log, with heads fed by Publish and
// initialised from heads.
func New(log EventLog, heads HeadSource, cfg Config) *Poller {
	cfg = cfg.withDefaults()
	return &Poller{
		cfg:     cfg,
		log:     log,
		hub:     newHub(heads, cfg.MaxWaiters),
		limiter: newLimiter(cfg.Rate, cfg.Burst, cfg.MaxTokens),
		load:    &meter{},
	}
}

// Publish implements relay.Sink: it advances the tenant's in-memory head and
// wakes the long-polls the events concern. It never blocks.
func (p *Poller) Publish(tenantID string, events []models.Event) {
	p.hub.publish(tenantID, events)
}

// Close releases every held long-poll (they answer at once) and makes later
// ones answer without waiting. Call it on shutdown, before the HTTP server
// drains its connections.
func (p *Poller) Close() { p.hub.close() }

// Register mounts GET /events on g, the authenticated /api/v1 group.
func (p *Poller) Register(g *echo.Group) {
	g.GET("/events", p.serveEvents)
}

// Head returns the tenant's in-memory head: the last seq the relay published.
func (p *Poller) Head(tenantID string) int64 { return p.hub.head(tenantID) }

// Waiting returns the number of long-polls held now (for operations stats).
func (p *Poller) Waiting() int64 { return p.hub.waiters() }
