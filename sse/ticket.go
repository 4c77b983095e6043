package sse

import (
	"net/http"
	"time"

	"github.com/clinicpulse/clinicpulse/limits"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/labstack/echo/v4"
)

// TicketMinter issues single-use stream tickets bound to an actor.
type TicketMinter interface {
	MintTicket(actor models.Actor) (ticket string, expires time.Time)
}

// Ticket is the answer of POST /api/v1/stream/tickets.
type Ticket struct {
	Ticket    string    `json:"ticket"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Tickets serves POST /api/v1/stream/tickets on a bearer-authenticated
// route: a browser's EventSource cannot send an Authorization header, so it
// opens GET /api/v1/stream?ticket=… with a ticket minted for that one
// connection. The ticket carries the caller's tenant (for a platform token,
// the tenant it named), subject and role. It is a credential: the answer is
// not cached, and nothing here logs it. Mints are rate-limited per verified
// identity like stream opens (Limits.OpenRate, a bucket of their own):
// over it, 429 problem+json with Retry-After.
func (h *Handler) Tickets(m TicketMinter) echo.HandlerFunc {
	return func(c echo.Context) error {
		actor, ok := models.ActorFromContext(c.Request().Context())
		if !ok || actor.TenantID == "" {
			return models.Errorf(models.EUNAUTHORIZED, "missing credentials")
		}
		if err := allow(c, h.mints, limits.IdentityOf(actor), "ticket mints"); err != nil {
			return err
		}
		t, exp := m.MintTicket(actor)
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusCreated, Ticket{Ticket: t, ExpiresAt: exp.UTC()})
	}
}
