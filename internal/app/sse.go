package app

import (
	"context"

	"github.com/clinicpulse/clinicpulse/sse"
)

// mountSSE mounts GET /api/v1/stream (bearer or single-use ticket) and
// POST /api/v1/stream/tickets (bearer only), both bounded per verified
// identity and tenant (Config.Streams), registers the stream hub with
// the relay, and ends the streams first on shutdown. The stream route gets
// no gzip, timeout or body-dump middleware: each would buffer, cut or copy a
// response that never ends.
func (a *App) mountSSE() {
	h := sse.NewHandler(sse.Config{
		Log:         a.Store,
		Relay:       a.Relay,
		Heartbeat:   a.Config.Heartbeat,
		MaxDuration: a.Config.StreamMaxDuration,
		Limits:      a.Config.Streams,
		Logger:      a.Logger,
	})
	a.Relay.AddSink(h.Hub())
	a.API(true).GET("/stream", h.Stream)
	a.API(false).POST("/stream/tickets", h.Tickets(a.Auth))
	a.OnShutdown(func(ctx context.Context) { h.Shutdown(ctx) })
	hub := h.Hub()
	a.gauges.Streams = func() int64 { return int64(hub.Stats().Streams) }
	a.gauges.SlowDisconnects = func() int64 { return hub.Stats().SlowDisconnects }
	a.gauges.Replayed = func() int64 { return hub.Stats().Replayed }
}
