package polling

import (
	"net/http"
	"net/url"
	"path"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/labstack/echo/v4"
)

// ListMiddleware wraps the resource lists (GET /api/v1/<resource>, served by
// the api package: a snapshot, or with ?since= a delta) with the poll
// machinery: the rate limit, parameter checks for since, limit, wait and
// stream (400 naming the parameter), Cache-Control, Vary, X-Poll-Interval, a
// strong ETag from the cursor the handler leaves in the context, 304 from
// the in-memory head, and ?wait= long-polls held in memory.
func (p *Poller) ListMiddleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			resource := path.Base(c.Path())
			r, ok := models.Resources[resource]
			if !ok {
				return next(c)
			}
			a, q, err := p.begin(c, func(v url.Values, maxWait time.Duration) (Query, error) {
				q, err := parseListQuery(v, maxWait)
				if err == nil {
					err = models.CheckParams(v, r.KnowsParam)
				}
				return q, err
			})
			if err != nil {
				return err
			}
			if a.Role == models.RoleDisplay {
				return next(c) // which refuses it: a display reads only the board
			}
			ctx := c.Request().Context()
			tenant := a.TenantID
			tags := newTagger(a, resource, q.listKey(c.QueryParams()))
			scope, topics := listScope(a, resource)
			match := func(e *models.Event) bool { return scope.Visible(e, topics) }
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
			if !matched && q.Wait > 0 && q.HasSince {
				// Is there a change of this resource the caller sees after
				// since? One small read decides whether to wait (and
				// answers 410 for an expired cursor).
				from, changed := q.Since, false
				if q.Since != head {
					page, err := p.log.PollEvents(ctx, models.EventQuery{TenantID: tenant, After: q.Since, Limit: 1, Scope: scope, Topics: topics})
					if err != nil {
						return err
					}
					from, changed = page.Cursor, len(page.Events) > 0
				}
				if !changed {
					if _, _, err := lp.wait(tenant, from, match, deadline); err != nil {
						return err
					}
				}
			}

			res := c.Response()
			res.Before(func() {
				if res.Status != http.StatusOK {
					return
				}
				if cur, ok := c.Get(models.CursorContextKey).(int64); ok {
					res.Header().Set("ETag", tags.at(cur))
				}
			})
			return next(c)
		}
	}
}

// listScope returns the events that change what the caller's list of the
// resource shows, as the store's delta reads them: the resource's events
// (and, for the queue, the board, which moves positions and waits) the
// caller's scope reaches — a patient's own, and the whole doctor directory
// (models.Scope.Reach).
func listScope(a models.Actor, resource string) (models.Scope, models.Topics) {
	topics := models.Topics{resource: true}
	if resource == models.EntityQueue {
		topics[models.EntityBoard] = true
	}
	return a.Scope(), topics
}
