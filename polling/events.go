package polling

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/clinicpulse/clinicpulse/limits"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/labstack/echo/v4"
)

// serveEvents answers GET /events?since=&limit=&topics=&wait=&stream= with
// {"events","cursor","has_more"}, the caller's view of the log after since.
//
// The database is read only to build a 200: a matching If-None-Match is
// answered 304 from the in-memory head, and a long-poll waits in memory.
func (p *Poller) serveEvents(c echo.Context) error {
	a, q, err := p.begin(c, ParseQuery)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	tenant, scope := a.TenantID, a.Scope()
	tags := newTagger(a, "events", q.eventsKey())
	match := func(e *models.Event) bool { return scope.Visible(e, q.Topics) }
	inm := c.Request().Header.Get("If-None-Match")
	deadline := q.deadline()

	lp := p.longPoll(c, a)
	defer lp.done()
	head := p.hub.head(tenant)
	matched, answered, err := p.revalidate(c, lp, tags, tenant, head, match, deadline)
	if answered {
		return err
	}
	if err := p.checkSince(c, tenant, q); err != nil {
		return err
	}
	// matched: something was published during the wait; read what it changed.
	if !matched && q.Wait > 0 && q.Since == head {
		// Caught up: nothing after since exists, so there is nothing to read
		// until something is published. (since equal to a published head is
		// never expired: the log keeps its head.)
		woke, seen, err := lp.wait(tenant, head, match, deadline)
		if err != nil {
			return err
		}
		if !woke {
			return p.writeEmpty(c, tags, tenant, q, seen)
		}
	}

	after := q.Since
	for {
		page, err := p.log.PollEvents(ctx, models.EventQuery{TenantID: tenant, After: after, Limit: q.Limit, Scope: scope, Topics: q.Topics})
		if err != nil {
			return err
		}
		if len(page.Events) == 0 && q.Wait > 0 && time.Now().Before(deadline) && ctx.Err() == nil && !p.hub.closed() {
			// Nothing visible yet: wait from the snapshot's head. The events
			// up to it were read, so the next read starts there.
			woke, seen, err := lp.wait(tenant, page.Cursor, match, deadline)
			if err != nil {
				return err
			}
			if !woke {
				return p.writeEmpty(c, tags, tenant, q, seen)
			}
			after = page.Cursor
			continue
		}
		for i := range page.Events {
			// Display and patient audiences get no actor (the store's
			// read gives none either; this keeps it so whatever the log).
			page.Events[i] = scope.ForAudience(page.Events[i])
		}
		tag := tags.at(page.Cursor)
		if page.HasMore {
			tag = tags.more(page.Cursor)
		}
		// The head in memory may lag the database by a relay batch: the
		// client may hold this very body although it did not match above.
		if inm != "" && ifNoneMatch(inm, tag) {
			return notModified(c, tag)
		}
		return writeJSON(c, tag, page)
	}
}

// revalidate answers 304 when If-None-Match holds the tag of the body as of
// head: at once, or for a long-poll (deadline set) once the wait ends with
// nothing the caller sees published. matched reports that the tag was
// current; answered, that the response is written (err is its error).
func (p *Poller) revalidate(c echo.Context, lp *longPoll, tags tagger, tenant string, head int64, match func(*models.Event) bool, deadline time.Time) (matched, answered bool, err error) {
	cur := tags.at(head)
	inm := c.Request().Header.Get("If-None-Match")
	if inm == "" || !ifNoneMatch(inm, cur) {
		return false, false, nil
	}
	if deadline.IsZero() {
		return true, true, notModified(c, cur)
	}
	woke, seen, err := lp.wait(tenant, head, match, deadline)
	if err != nil {
		return true, true, err
	}
	if !woke && seen == head {
		return true, true, notModified(c, cur)
	}
	return true, false, nil
}

// begin runs the checks every poll shares: the caller, the rate limit, the
// parameters; and sets the headers every poll response carries.
func (p *Poller) begin(c echo.Context, parse func(url.Values, time.Duration) (Query, error)) (models.Actor, Query, error) {
	a, ok := models.ActorFromContext(c.Request().Context())
	if !ok || a.TenantID == "" {
		return a, Query{}, models.Errorf(models.EUNAUTHORIZED, "no credentials")
	}
	now := p.cfg.Now()
	p.load.hit(now)
	res := c.Response().Header()
	// A shared cache must never hand one tenant's or patient's poll to
	// another (RFC 9111 §5.2.2.7, §4.1); every reuse is revalidated.
	res.Set("Cache-Control", "private, no-cache")
	res.Add("Vary", "Authorization")
	res.Add("Vary", "X-Tenant-ID")
	if ok, retry := p.rate.Allow(limits.IdentityOf(a), now); !ok {
		secs := limits.RetryAfterSeconds(retry)
		res.Set("Retry-After", strconv.FormatInt(secs, 10))
		return a, Query{}, models.Errorf(models.ERATELIMIT, "too many polls by this caller; retry after %d s", secs)
	}
	q, err := parse(c.QueryParams(), p.cfg.MaxWait)
	if err != nil {
		return a, q, err
	}
	res.Set("X-Poll-Interval", intervalHeader(p.interval(q.Stream, now)))
	return a, q, nil
}

// notModified answers 304 with the validator and no body (RFC 9110 §15.4.5:
// the headers a 200 would carry that decide caching, no content).
func notModified(c echo.Context, tag string) error {
	c.Response().Header().Set("ETag", tag)
	return c.NoContent(http.StatusNotModified)
}

// writeEmpty answers a long-poll that ended with nothing visible: the page a
// read at cursor would give, built without reading.
func (p *Poller) writeEmpty(c echo.Context, tags tagger, tenant string, q Query, cursor int64) error {
	page := &models.EventPage{Events: []models.Event{}, Cursor: cursor}
	tag := tags.at(cursor)
	if inm := c.Request().Header.Get("If-None-Match"); inm != "" && ifNoneMatch(inm, tag) {
		return notModified(c, tag)
	}
	// The position depends on the tenant and the cursor only, as the
	// strong ETag requires: the caller's own tagged since (checked against
	// the log before the wait) when nothing it sees came after it, else one
	// primary-key read.
	pos := models.Position{Seq: cursor, Tag: q.SinceTag}
	if cursor != q.Since || q.SinceTag == "" {
		var err error
		if pos, err = p.log.PositionAt(c.Request().Context(), tenant, cursor); err != nil {
			return err
		}
	}
	page.Position = pos.String()
	return writeJSON(c, tag, page)
}

// writeJSON writes the page compactly (Echo's ?pretty would change the bytes
// under a strong ETag).
func writeJSON(c echo.Context, tag string, page *models.EventPage) error {
	b, err := json.Marshal(page)
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", tag)
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
}

// checkSince answers 410 for a tagged since from another history of the log
// (a database restored from a backup reuses seqs for other events); a plain
// integer since is unchecked, as the contract has it. One primary-key read,
// after a 304 was ruled out.
func (p *Poller) checkSince(c echo.Context, tenant string, q Query) error {
	if q.SinceTag == "" {
		return nil
	}
	return p.log.CheckPosition(c.Request().Context(), tenant, models.Position{Seq: q.Since, Tag: q.SinceTag})
}
