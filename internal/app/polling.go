package app

import (
	"context"

	"github.com/clinicpulse/clinicpulse/polling"
	"github.com/labstack/echo/v4"
)

// listMiddleware builds the poller — a relay sink (the relay has not
// started yet) whose long-polls are released on shutdown — and returns its
// wrapper for the resource list routes (conditional GET, poll hints,
// long-poll, rate limit).
func (a *App) listMiddleware() echo.MiddlewareFunc {
	cfg := a.Config.Polling
	cfg.Now = a.Config.Now
	a.Poller = polling.New(a.Store, a.Relay, cfg)
	a.Relay.AddSink(a.Poller)
	a.OnShutdown(func(context.Context) { a.Poller.Close() })
	a.gauges.LongPolls = a.Poller.Waiting
	return a.Poller.ListMiddleware()
}

// mountPolling mounts GET /api/v1/events on the authenticated group, beside
// the lists, so one rate limit and one set of heads serve both.
func (a *App) mountPolling(v1 *echo.Group) { a.Poller.Register(v1) }
