package app

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/clinicpulse/clinicpulse/metrics"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/labstack/echo/v4"
)

func isStream(route string) bool { return route == "/api/v1/stream" }

// isPoll: GETs of the events endpoint and of the resource lists are polls.
func isPoll(route string) bool {
	name, ok := strings.CutPrefix(route, "/api/v1/")
	if !ok {
		return false
	}
	if name == "events" {
		return true
	}
	_, resource := models.Resources[name]
	return resource
}

// Gauges reads live numbers of the stream and long-poll layers; the layers
// set these when they are mounted.
type Gauges struct {
	Streams         func() int64
	LongPolls       func() int64
	SlowDisconnects func() int64
	Replayed        func() int64
}

func zero() int64 { return 0 }

// mountMetrics serves /metrics and the operations stats, and starts keeping
// ten minutes of history for the operations page.
func (a *App) mountMetrics() {
	g := &a.gauges
	for _, f := range []*func() int64{&g.Streams, &g.LongPolls, &g.SlowDisconnects, &g.Replayed} {
		if *f == nil {
			*f = zero
		}
	}
	m := a.Metrics
	m.Gauge("clinicpulse_streams_open", "SSE streams open on this instance.", func() float64 { return float64(g.Streams()) })
	m.Gauge("clinicpulse_longpolls_waiting", "Long-polls waiting on this instance.", func() float64 { return float64(g.LongPolls()) })
	m.Counter("clinicpulse_slow_client_disconnects_total", "Streams dropped because the client did not keep up.", func() float64 { return float64(g.SlowDisconnects()) })
	m.Counter("clinicpulse_events_replayed_total", "Events replayed from the log to resuming streams.", func() float64 { return float64(g.Replayed()) })
	if l := a.Listener; l != nil {
		m.Gauge("clinicpulse_listener_connected", "1 when the LISTEN connection is up.", func() float64 {
			if l.Stats().Connected {
				return 1
			}
			return 0
		})
		m.Gauge("clinicpulse_listener_idle_seconds", "Seconds since the last NOTIFY was heard (the NOTIFY lag is in clinicpulse_event_dispatch_lag_seconds).", func() float64 {
			if t := l.Stats().LastNotification; !t.IsZero() {
				return time.Since(t).Seconds()
			}
			return 0
		})
		m.Counter("clinicpulse_listener_reconnects_total", "LISTEN reconnections.", func() float64 { return float64(l.Stats().Reconnects) })
	}
	a.Sampler = metrics.NewSampler(a.snapshot, 5*time.Second, 10*time.Minute)
	a.Echo.GET("/metrics", echo.WrapHandler(m.Handler()))
	a.API(false).GET("/ops/stats", a.opsStats)
}

func (a *App) snapshot() metrics.Snapshot {
	g := a.gauges
	s := metrics.Snapshot{
		At: a.Config.Now(), Streams: g.Streams(), LongPolls: g.LongPolls(), SlowDisconnects: g.SlowDisconnects(),
		Polls: float64(a.Metrics.Polls.Total.Load()), Polls304: float64(a.Metrics.Polls.NotModified.Load()),
	}
	if v, err := a.Metrics.Gather(); err == nil {
		s.Committed, s.Dispatched = v["clinicpulse_events_committed_total"], v["clinicpulse_events_dispatched_total"]
	}
	if l := a.Listener; l != nil {
		st := l.Stats()
		s.ListenerConnected = &st.Connected
		if !st.LastNotification.IsZero() {
			s.ListenerLagSec = a.Config.Now().Sub(st.LastNotification).Seconds()
		}
	}
	return s
}

var instanceID = func() string {
	h, _ := os.Hostname()
	return h + "-" + strconv.Itoa(os.Getpid())
}()

// opsStats answers the operations view: admins of the tenant and platform
// operators; the numbers are the instance's, not the tenant's.
func (a *App) opsStats(c echo.Context) error {
	actor, _ := models.ActorFromContext(c.Request().Context())
	if actor.Role != models.RoleAdmin && actor.Role != models.RolePlatform {
		return models.Errorf(models.EFORBIDDEN, "operations stats are for admins and platform operators")
	}
	cur, hist := a.Sampler.Current()
	return c.JSON(http.StatusOK, map[string]any{
		"instance": instanceID, "database": a.Store.Dialect(), "current": cur, "history": hist,
		"sample_seconds": 5,
	})
}
