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
//   - ?wait= long-polls, held in memory until a visible event commits, at
//     most a few per verified identity and a bound per tenant;
//   - a rate limit per verified identity (429 with Retry-After).
//
// Every limit is keyed on the verified identity (limits.IdentityOf): never on
// bytes the client can vary, such as the spelling of its Authorization
// header.
//
// The in-memory heads are fed by the relay, the one in-order publisher of
// committed events: a Poller is a relay sink.
package polling

import (
	"context"
	"github.com/clinicpulse/clinicpulse/internal/defaults"
	"strconv"
	"time"

	"github.com/clinicpulse/clinicpulse/limits"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// EventLog is what the poller reads of the store: a page of a tenant's change
// log after a cursor, scope- and topic-filtered, with the cursor of the
// snapshot it read (EGONE for an expired or impossible cursor).
type EventLog interface {
	PollEvents(ctx context.Context, q models.EventQuery) (*models.EventPage, error)
	// CheckPosition is nil when a tagged cursor names an event of this
	// history of the log, EGONE (410) when it does not.
	CheckPosition(ctx context.Context, tenantID string, p models.Position) error
	// PositionAt is seq with the tag of the event at it (untagged when the
	// event is gone from the log).
	PositionAt(ctx context.Context, tenantID string, seq int64) (models.Position, error)
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
	// Rate and Burst are the limit on poll requests per verified identity
	// (tenant and subject; limits.IdentityOf). The default (10/s, burst
	// 100) is far above a client that follows the advised intervals (one
	// poll per endpoint every 5 s at worst, plus has_more catch-up pages),
	// and far below a broken client's tight loop.
	Rate  rate.Limit
	Burst int
	// MaxIdentities bounds the rate limiter's table; the least recently
	// seen identity is evicted first (it comes back with a full bucket,
	// which is harmless).
	MaxIdentities int
	// LongPollsPerDisplay, LongPollsPerPatient and LongPollsPerStaff bound
	// the long-polls one verified identity holds at once, by its role
	// (staff: admin, coordinator, doctor, platform); LongPollsPerTenant
	// bounds a tenant's. A long-poll over a bound is answered 429 with
	// Retry-After. A browser holds one (its tabs share a leader), so a
	// display's or a patient's few cover a second device.
	LongPollsPerDisplay int
	LongPollsPerPatient int
	LongPollsPerStaff   int
	LongPollsPerTenant  int
	// OverloadRate is the instance's poll rate (requests/s) above which the
	// advised interval is stretched in proportion, up to MaxStretch times.
	OverloadRate float64
	MaxStretch   float64
	// MaxWaiters bounds the long-polls held at once on the instance; above
	// it a poll with ?wait= is answered at once, as without it. The bounds
	// per identity keep one identity from taking all of them.
	MaxWaiters int
	// Now is the clock.
	Now func() time.Time
}

// DefaultConfig returns the contract's defaults: intervals 30/15/5 s for
// stream live/absent/down, wait at most 55 s.
func DefaultConfig() Config {
	return Config{
		Intervals:           Intervals{Live: 30 * time.Second, Default: 15 * time.Second, Down: 5 * time.Second},
		MaxWait:             55 * time.Second,
		Rate:                10,
		Burst:               100,
		MaxIdentities:       65536,
		LongPollsPerDisplay: 4,
		LongPollsPerPatient: 4,
		LongPollsPerStaff:   16,
		LongPollsPerTenant:  1000,
		OverloadRate:        5000,
		MaxStretch:          4,
		MaxWaiters:          50000,
		Now:                 time.Now,
	}
}

// orDefault sets *v to def when *v is zero or negative (a Config field left
// unset).
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	defaults.Set(&c.Intervals.Live, d.Intervals.Live)
	defaults.Set(&c.Intervals.Default, d.Intervals.Default)
	defaults.Set(&c.Intervals.Down, d.Intervals.Down)
	defaults.Set(&c.MaxWait, d.MaxWait)
	defaults.Set(&c.Rate, d.Rate)
	defaults.Set(&c.Burst, d.Burst)
	defaults.Set(&c.MaxIdentities, d.MaxIdentities)
	defaults.Set(&c.LongPollsPerDisplay, d.LongPollsPerDisplay)
	defaults.Set(&c.LongPollsPerPatient, d.LongPollsPerPatient)
	defaults.Set(&c.LongPollsPerStaff, d.LongPollsPerStaff)
	defaults.Set(&c.LongPollsPerTenant, d.LongPollsPerTenant)
	defaults.Set(&c.OverloadRate, d.OverloadRate)
	if c.MaxStretch < 1 {
		c.MaxStretch = d.MaxStretch
	}
	defaults.Set(&c.MaxWaiters, d.MaxWaiters)
	if c.Now == nil {
		c.Now = d.Now
	}
	return c
}

// Poller serves the poll endpoints. It is a relay sink (Publish), and must be
// registered with the relay before the relay starts.
type Poller struct {
	cfg   Config
	log   EventLog
	hub   *hub
	rate  *limits.Rate
	holds *limits.Holds
	load  *meter
}

// New returns a poller reading log, with heads fed by Publish and
// initialised from heads.
func New(log EventLog, heads HeadSource, cfg Config) *Poller {
	cfg = cfg.withDefaults()
	return &Poller{
		cfg:   cfg,
		log:   log,
		hub:   newHub(heads, cfg.MaxWaiters),
		rate:  limits.NewRate(cfg.Rate, cfg.Burst, cfg.MaxIdentities),
		holds: limits.NewHolds(cfg.LongPollsPerTenant),
		load:  &meter{},
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

// Tenants returns the number of tenants the poller keeps state for: those
// with a long-poll waiting now.
func (p *Poller) Tenants() int { return p.hub.tenants() }

// longPollsPer returns how many long-polls an identity of the role may hold.
func (p *Poller) longPollsPer(r models.Role) int {
	switch r {
	case models.RoleDisplay:
		return p.cfg.LongPollsPerDisplay
	case models.RolePatient:
		return p.cfg.LongPollsPerPatient
	}
	return p.cfg.LongPollsPerStaff
}

// longPoll is one request's claim on a held long-poll: taken when it first
// waits, kept across its waits, released when the request ends.
type longPoll struct {
	p       *Poller
	c       echo.Context
	a       models.Actor
	release func()
}

func (p *Poller) longPoll(c echo.Context, a models.Actor) *longPoll {
	return &longPoll{p: p, c: c, a: a}
}

// wait is hub.wait under the identity's and the tenant's bounds: over one,
// it answers ERATELIMIT (429) with Retry-After set, and does not wait.
func (l *longPoll) wait(tenant string, after int64, match func(*models.Event) bool, deadline time.Time) (woke bool, seen int64, err error) {
	if l.release == nil {
		release, ok := l.p.holds.Acquire(limits.IdentityOf(l.a), l.a.TenantID, l.p.longPollsPer(l.a.Role))
		if !ok {
			retry := limits.RetryAfterSeconds(l.p.cfg.Intervals.Down)
			l.c.Response().Header().Set("Retry-After", strconv.FormatInt(retry, 10))
			return false, after, models.Errorf(models.ERATELIMIT,
				"too many long-polls held: at most %d per %s token and %d per tenant; retry after %d s", l.p.longPollsPer(l.a.Role), l.a.Role, l.p.cfg.LongPollsPerTenant, retry)
		}
		l.release = release
	}
	woke, seen = l.p.hub.wait(l.c.Request().Context(), tenant, after, match, deadline)
	return woke, seen, nil
}

// done releases the claim, if the request took one.
func (l *longPoll) done() {
	if l.release != nil {
		l.release()
	}
}
