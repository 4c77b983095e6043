package app

import (
	"net/http"

	"github.com/clinicpulse/clinicpulse/api"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/webhooks"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// mountWebhooks builds the deliverer — a relay sink, woken by every
// dispatch of this instance (its own commits, and other instances' through
// LISTEN/NOTIFY) — mounts the subscription routes and the webhook metrics.
func (a *App) mountWebhooks(v1 *echo.Group) {
	cfg := a.Config.Webhooks
	cfg.Now = a.Config.Now
	cfg.Logger = a.Logger
	m := a.Metrics
	lag := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "clinicpulse_webhook_delivery_lag_seconds",
		Help:    "From an event's commit to its successful webhook delivery (retries included).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800},
	})
	m.Register(lag)
	d := webhooks.New(a.Store, cfg)
	d.Stats.Latency = lag.Observe
	a.Webhooks = d
	a.Relay.AddSink(d)
	h := &api.Webhooks{Store: a.Store, Policy: cfg.Policy, Now: a.Config.Now, Wake: d.Wake}
	h.Register(v1)
	v1.GET("/webhooks/stats", a.webhookStats)

	for _, r := range webhooks.ResultNames {
		m.CounterL("clinicpulse_webhook_deliveries_total", "Webhook delivery attempts by result (success: 2xx; http_error: another status; timeout; refused: an address the SSRF rules forbid; network; skipped: events pruned or outside the topics, passed over).",
			prometheus.Labels{"result": r}, func() float64 { return float64(d.Stats.Results()[r]) })
	}
	m.Gauge("clinicpulse_webhook_pending", "Enabled webhook subscriptions with events not yet delivered (all instances, at the last scan).", func() float64 { return float64(d.Stats.Pending.Load()) })
	m.Gauge("clinicpulse_webhook_retrying", "Of those, subscriptions waiting to retry after a failure: the retry queue.", func() float64 { return float64(d.Stats.Retrying.Load()) })
	m.Gauge("clinicpulse_webhook_max_lag_events", "The largest head − delivered seq over all subscriptions, in events (a gauge per subscription would be an unbounded label).", func() float64 { return float64(d.Stats.MaxLag.Load()) })
	m.Gauge("clinicpulse_webhook_active", "Subscriptions this instance is delivering now.", func() float64 { return float64(d.Stats.Active.Load()) })
}

// webhookStats answers the operations view's webhook health: admins of the
// tenant and platform operators. The subscriptions are the tenant's; the
// counters are the instance's.
func (a *App) webhookStats(c echo.Context) error {
	actor, _ := models.ActorFromContext(c.Request().Context())
	if actor.Role != models.RoleAdmin && actor.Role != models.RolePlatform {
		return models.Errorf(models.EFORBIDDEN, "webhook stats are for admins and platform operators")
	}
	if err := models.CheckParams(c.QueryParams(), func(n string) bool { return n == "tenant_id" || n == "_" }); err != nil {
		return err
	}
	ctx := c.Request().Context()
	whs, err := a.Store.ListWebhooks(ctx)
	if err != nil {
		return err
	}
	head, err := a.Store.LogHead(ctx, actor.TenantID)
	if err != nil {
		return err
	}
	type sub struct {
		ID             string `json:"id"`
		Enabled        bool   `json:"enabled"`
		DisabledReason string `json:"disabled_reason"`
		Cursor         int64  `json:"cursor"`
		Lag            int64  `json:"lag"`
		Failures       int    `json:"failures"`
		State          string `json:"state"`
	}
	subs := make([]sub, 0, len(whs))
	for _, wh := range whs {
		s := sub{ID: wh.ID, Enabled: wh.Enabled, DisabledReason: wh.DisabledReason, Cursor: wh.Cursor, Lag: max(0, head.Seq-wh.Cursor), Failures: wh.Failures}
		switch {
		case !wh.Enabled:
			s.State = "disabled"
		case wh.Failures > 0:
			s.State = "retrying"
		case s.Lag > 0:
			s.State = "delivering"
		default:
			s.State = "idle"
		}
		subs = append(subs, s)
	}
	d := a.Webhooks
	return c.JSON(http.StatusOK, map[string]any{
		"head": head.Seq, "subscriptions": subs,
		"instance": map[string]any{
			"results": d.Stats.Results(), "active": d.Stats.Active.Load(),
			"pending": d.Stats.Pending.Load(), "retrying": d.Stats.Retrying.Load(), "max_lag": d.Stats.MaxLag.Load(),
		},
	})
}
