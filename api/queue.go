package api

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/labstack/echo/v4"
)

// Recaller calls a called queue entry again (see store.Store.Recall).
type Recaller interface {
	Recall(ctx context.Context, id string, ifMatch int64) (json.RawMessage, error)
}

// registerQueue mounts the queue's actions beside its resource routes:
//
//	POST /queue/{id}/recall   call a called entry again
//
// A re-call is its own request, not PATCH {"status":"called"} on a called
// entry (that answers 409): it answers 200 with the entry (recalls+1,
// recalled_at, version+1) and emits queue.updated and queue.board, whose
// last_call a display flashes. The body is empty or {}; If-Match and
// Idempotency-Key are honoured as on PATCH, and the answer carries X-Cursor
// as every write's does.
func (h *Handler) registerQueue(g *echo.Group) {
	g.POST("/"+models.EntityQueue+"/:id/recall", h.recall)
}

func (h *Handler) recall(c echo.Context) error {
	if err := denyDisplay(c); err != nil {
		return err
	}
	rc, ok := h.Store.(Recaller)
	if !ok {
		return models.Errorf(models.ENOTFOUND, "no such resource")
	}
	ifMatch, err := parseIfMatch(c)
	if err != nil {
		return err
	}
	body, err := ReadBody(c.Request())
	if err != nil {
		return err
	}
	if len(body) > 0 {
		if err := Decode(body, &struct{}{}); err != nil {
			return err
		}
	}
	ctx, err := idempotent(c, body)
	if err != nil {
		return err
	}
	// A write like any other: X-Cursor, answered once this instance's
	// polls and streams show it.
	ctx, pos := withPosition(ctx)
	out, err := rc.Recall(ctx, c.Param("id"), ifMatch)
	if err != nil {
		return err
	}
	h.settle(c, pos)
	return c.JSONBlob(http.StatusOK, out)
}
