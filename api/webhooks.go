package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/labstack/echo/v4"
)

// WebhookStore is what the webhook subscription handlers need of the
// store. Every method checks that the caller is an admin of the tenant or
// a platform operator (EFORBIDDEN otherwise).
type WebhookStore interface {
	CreateWebhook(ctx context.Context, wh *models.Webhook) error
	FindWebhook(ctx context.Context, id string) (*models.Webhook, error)
	ListWebhooks(ctx context.Context) ([]*models.Webhook, error)
	UpdateWebhook(ctx context.Context, id string, ifMatch int64, change func(wh *models.Webhook, now time.Time) error) (*models.Webhook, error)
	DeleteWebhook(ctx context.Context, id string, ifMatch int64) error
	ReplayWebhook(ctx context.Context, id string, since int64) (*models.Webhook, error)
	WebhookDeliveries(ctx context.Context, id string, limit int) ([]models.WebhookDelivery, error)
	// CheckPosition is nil when a tagged cursor names an event of this
	// history of the log (store.Store.CheckPosition), EGONE otherwise.
	CheckPosition(ctx context.Context, tenantID string, p models.Position) error
}

// Webhooks serves /api/v1/webhooks: subscriptions to the change log,
// pushed signed to the tenant's endpoints (see the webhooks package).
type Webhooks struct {
	Store  WebhookStore
	Policy models.WebhookPolicy
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Wake, when set, is called after a change that may give the
	// deliverer work (create, enable, replay).
	Wake func()
}

// Register mounts the routes on g (the authenticated /api/v1 group).
func (h *Webhooks) Register(g *echo.Group) {
	g.GET("/webhooks", h.list)
	g.POST("/webhooks", h.create)
	g.GET("/webhooks/:id", h.get)
	g.PATCH("/webhooks/:id", h.patch)
	g.DELETE("/webhooks/:id", h.delete)
	g.POST("/webhooks/:id/rotate", h.rotate)
	g.GET("/webhooks/:id/deliveries", h.deliveries)
	g.POST("/webhooks/:id/replay", h.replay)
}

func (h *Webhooks) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// answer writes the subscription with its ETag; secret says whether its
// secret is shown (create and rotate only).
func (h *Webhooks) answer(c echo.Context, status int, wh *models.Webhook, secret bool) error {
	c.Response().Header().Set("ETag", strconv.Quote(strconv.FormatInt(wh.Version, 10)))
	if secret {
		// A secret must not stay in a cache (RFC 9111 §5.2.2.5).
		c.Response().Header().Set("Cache-Control", "no-store")
	}
	return c.JSON(status, wh.View(secret, h.now()))
}

func (h *Webhooks) wake() {
	if h.Wake != nil {
		h.Wake()
	}
}

// params refuses query parameters other than tenant_id, "_" and extra.
func params(c echo.Context, extra ...string) error {
	return models.CheckParams(c.QueryParams(), func(name string) bool {
		if name == "tenant_id" || name == "_" {
			return true
		}
		for _, e := range extra {
			if e == name {
				return true
			}
		}
		return false
	})
}

func (h *Webhooks) list(c echo.Context) error {
	if err := params(c); err != nil {
		return err
	}
	whs, err := h.Store.ListWebhooks(c.Request().Context())
	if err != nil {
		return err
	}
	now := h.now()
	items := make([]models.WebhookView, len(whs))
	for i, wh := range whs {
		items[i] = wh.View(false, now)
	}
	return c.JSON(http.StatusOK, map[string]any{"items": items})
}

func (h *Webhooks) create(c echo.Context) error {
	if err := params(c); err != nil {
		return err
	}
	body, err := ReadBody(c.Request())
	if err != nil {
		return err
	}
	var in models.WebhookCreate
	if err := Decode(body, &in); err != nil {
		return err
	}
	var val models.Validation
	u, uerr := h.Policy.CheckURL("url", in.URL)
	topics, terr := models.CheckTopics(in.Topics)
	for _, e := range []error{uerr, terr} {
		if me, ok := e.(*models.Error); ok {
			val = append(val, me.Fields...)
		}
	}
	if err := val.Err(); err != nil {
		return err
	}
	ctx, err := idempotent(c, body)
	if err != nil {
		return err
	}
	// A repeated Idempotency-Key answers the subscription the first
	// request made, with the secret that signs (CreateWebhook fills wh).
	wh := &models.Webhook{URL: u, Topics: topics, Enabled: in.Enabled == nil || *in.Enabled, Secret: models.NewWebhookSecret()}
	if err := h.Store.CreateWebhook(ctx, wh); err != nil {
		return err
	}
	h.wake()
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/webhooks/"+wh.ID)
	return h.answer(c, http.StatusCreated, wh, true)
}

func (h *Webhooks) get(c echo.Context) error {
	if err := params(c); err != nil {
		return err
	}
	wh, err := h.Store.FindWebhook(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return h.answer(c, http.StatusOK, wh, false)
}

func (h *Webhooks) patch(c echo.Context) error {
	if err := params(c); err != nil {
		return err
	}
	ifMatch, body, err := preconditions(c)
	if err != nil {
		return err
	}
	var in models.WebhookUpdate
	if err := Decode(body, &in); err != nil {
		return err
	}
	var val models.Validation
	var u, topics string
	if in.URL != nil {
		var err error
		if u, err = h.Policy.CheckURL("url", *in.URL); err != nil {
			val = append(val, err.(*models.Error).Fields...)
		}
	}
	if in.Topics != nil {
		var err error
		if topics, err = models.CheckTopics(*in.Topics); err != nil {
			val = append(val, err.(*models.Error).Fields...)
		}
	}
	if err := val.Err(); err != nil {
		return err
	}
	ctx, err := idempotent(c, body)
	if err != nil {
		return err
	}
	wh, err := h.Store.UpdateWebhook(ctx, c.Param("id"), ifMatch, func(wh *models.Webhook, _ time.Time) error {
		if in.URL != nil {
			wh.URL = u
		}
		if in.Topics != nil {
			wh.Topics = topics
		}
		if in.Enabled != nil {
			if *in.Enabled && !wh.Enabled {
				// Re-enabled: a fresh start from where it stopped.
				wh.Failures, wh.NextAttemptMS, wh.DisabledReason = 0, 0, ""
			}
			wh.Enabled = *in.Enabled
		}
		return nil
	})
	if err != nil {
		return err
	}
	h.wake()
	return h.answer(c, http.StatusOK, wh, false)
}

func (h *Webhooks) delete(c echo.Context) error {
	if err := params(c); err != nil {
		return err
	}
	ifMatch, body, err := preconditions(c)
	if err != nil {
		return err
	}
	ctx, err := idempotent(c, body)
	if err != nil {
		return err
	}
	if err := h.Store.DeleteWebhook(ctx, c.Param("id"), ifMatch); err != nil {
		return err
	}
	h.wake() // the worker stops at once instead of at its next save
	return c.NoContent(http.StatusNoContent)
}

// rotate gives the subscription a new secret, answered once; the old one
// keeps signing beside it for models.WebhookSecretOverlap. A retried
// rotate with the same Idempotency-Key rotates once and answers the secret
// that signs now (a second rotation would end the old secret's overlap).
func (h *Webhooks) rotate(c echo.Context) error {
	if err := params(c); err != nil {
		return err
	}
	body, err := emptyBody(c)
	if err != nil {
		return err
	}
	ctx, err := idempotent(c, body)
	if err != nil {
		return err
	}
	wh, err := h.Store.UpdateWebhook(ctx, c.Param("id"), 0, func(wh *models.Webhook, now time.Time) error {
		until := now.Add(models.WebhookSecretOverlap)
		wh.PreviousSecret, wh.PreviousUntil = wh.Secret, &until
		wh.Secret = models.NewWebhookSecret()
		return nil
	})
	if err != nil {
		return err
	}
	h.wake() // the worker signs with the new secret from its next request
	return h.answer(c, http.StatusOK, wh, true)
}

// emptyBody refuses a body on an action that takes none; it returns the
// body ("" or "{}") for the Idempotency-Key's hash.
func emptyBody(c echo.Context) ([]byte, error) {
	b, err := ReadBody(c.Request())
	if err != nil {
		return nil, err
	}
	if len(b) > 0 && string(b) != "{}" {
		return nil, models.Invalid("body", "this action takes no body")
	}
	return b, nil
}

// MaxDeliveriesLimit bounds ?limit= of the deliveries list.
const MaxDeliveriesLimit = 500

func (h *Webhooks) deliveries(c echo.Context) error {
	if err := params(c, "limit"); err != nil {
		return err
	}
	limit := 50
	if v, ok := c.QueryParams()["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if len(v) != 1 || err != nil || n < 1 || n > MaxDeliveriesLimit {
			return models.Invalid("limit", "must be an integer from 1 to 500")
		}
		limit = n
	}
	ds, err := h.Store.WebhookDeliveries(c.Request().Context(), c.Param("id"), limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"items": ds})
}

// replay moves the cursor to ?since=<seq> (or "<seq>.<tag>"): the events
// after it go out again, with the same webhook-ids. A since outside the
// retained log is 410.
func (h *Webhooks) replay(c echo.Context) error {
	if err := params(c, "since"); err != nil {
		return err
	}
	v, ok := c.QueryParams()["since"]
	switch {
	case !ok || (len(v) == 1 && v[0] == ""):
		return models.Invalid("since", "is required: a cursor of the log (\"8\" or \"8.k3f9a2q1\")")
	case len(v) != 1:
		return models.Invalid("since", "must be given once")
	}
	pos, err := models.ParsePosition("since", v[0])
	if err != nil {
		return err
	}
	if _, err := emptyBody(c); err != nil {
		return err
	}
	// A tagged since from another history of the log (a restored
	// database) is 410, as everywhere a cursor is taken.
	if _, err := h.Store.FindWebhook(c.Request().Context(), c.Param("id")); err != nil {
		return err // 403 for a caller who may not, 404 for no such subscription
	}
	a, _ := models.ActorFromContext(c.Request().Context())
	if err := h.Store.CheckPosition(c.Request().Context(), a.TenantID, pos); err != nil {
		return err
	}
	wh, err := h.Store.ReplayWebhook(c.Request().Context(), c.Param("id"), pos.Seq)
	if err != nil {
		return err
	}
	h.wake()
	return c.JSON(http.StatusOK, wh.View(false, h.now()))
}
