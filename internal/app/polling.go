package app

import (
	"context"

	"github.com/clinicpulse/clinicpulse/polling"
	"github.com/labstack/echo/v4"
)

// listMiddleware builds the poller and returns its wrapper for the resource
// list routes (conditional GET, poll hints, long-poll, rate limit).
//
// New calls it once, before mountPolling, and App has no field to hand the
// poller from one to the other; so the poller is wired here whole: it
// becomes a relay sink (the relay has not started yet), its long-polls are
// released on shutdown, and GET /api/v1/events is mounted on an
// authenticated /api/v1 group of its own — the same prefix and middleware as
// the group mountPolling receives, so one rate limit and one set of heads
// serve the events endpoint and the lists.
func (a *App) listMiddleware() echo.MiddlewareFunc {
	cfg := polling.DefaultConfig()
	cfg.Now = a.Config.Now
	p := polling.New(a.Store, a.Relay, cfg)
	a.Relay.AddSink(p)
	a.OnShutdown(func(context.Context) { p.Close() })
	p.Register(a.API(false))
	return p.ListMiddleware()
}

// mountPolling mounts the poll routes on the authenticated group. They are
// mounted with the poller in listMiddleware (see there).
func (a *App) mountPolling(v1 *echo.Group) {}
