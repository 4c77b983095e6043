package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/labstack/echo/v4"
)

// Store is what the handlers need of the store.
type Store interface {
	Create(ctx context.Context, rec models.Record) (json.RawMessage, error)
	Find(ctx context.Context, entity, id string) (models.Record, error)
	Update(ctx context.Context, entity, id string, ifMatch int64, update any) (json.RawMessage, error)
	Delete(ctx context.Context, entity, id string, ifMatch int64) error
	List(ctx context.Context, entity string, q models.ListQuery) (*models.Page, error)
	Boards(ctx context.Context, tenantID string) ([]models.Board, int64, error)
}

// CursorKey is the Echo context key under which list handlers leave the
// cursor of their snapshot, for the polling layer's ETag.
const CursorKey = models.CursorContextKey

// Consistency makes a committed write visible to the instance's reads
// (polls, ETags, streams) before the write is answered.
type Consistency interface {
	// AwaitDispatched returns once the tenant's events through seq are
	// dispatched to this instance's live channels, or with an error when
	// it gave up (its own bound, or ctx). The write is answered either way:
	// it is committed.
	AwaitDispatched(ctx context.Context, tenantID string, seq int64) error
}

// CursorHeader tells a writer its position in the change log: the cursor
// of its write's last event, "<seq>.<tag>" (models.Position; for a
// replayed Idempotency-Key, the log's head at the replay). Reads at a
// cursor at or after it reflect the write.
const CursorHeader = "X-Cursor"

// Handler serves the seven resources and the queue board.
type Handler struct {
	Store Store
	// Consistency, when set, holds each write's answer until its events
	// are dispatched (read your own writes).
	Consistency Consistency
}

// Register mounts the routes on g (the authenticated /api/v1 group). list,
// when not nil, wraps the list routes (conditional GET, poll hints).
func (h *Handler) Register(g *echo.Group, list echo.MiddlewareFunc) {
	g.GET("/queue/board", h.board)
	h.registerQueue(g)
	for _, name := range models.Entities {
		r := models.Resources[name]
		var mw []echo.MiddlewareFunc
		if list != nil {
			mw = append(mw, list)
		}
		g.GET("/"+name, h.list(r), mw...)
		g.POST("/"+name, h.create(r))
		g.GET("/"+name+"/:id", h.get(r))
		g.PATCH("/"+name+"/:id", h.patch(r))
		g.DELETE("/"+name+"/:id", h.delete(r))
	}
}

func actor(c echo.Context) models.Actor {
	a, _ := models.ActorFromContext(c.Request().Context())
	return a
}

// denyDisplay keeps display tokens to the board.
func denyDisplay(c echo.Context) error {
	if actor(c).Role == models.RoleDisplay {
		return models.Errorf(models.EFORBIDDEN, "a display token reads only the queue board")
	}
	return nil
}

func (h *Handler) board(c echo.Context) error {
	a := actor(c)
	boards, cursor, err := h.Store.Boards(c.Request().Context(), a.TenantID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"boards": boards, "cursor": cursor})
}

func (h *Handler) list(r *models.Resource) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := denyDisplay(c); err != nil {
			return err
		}
		q, err := parseListQuery(c, r)
		if err != nil {
			return err
		}
		page, err := h.Store.List(c.Request().Context(), r.Name, q)
		if err != nil {
			return err
		}
		c.Set(CursorKey, page.Cursor)
		return c.JSON(http.StatusOK, page)
	}
}

func parseListQuery(c echo.Context, r *models.Resource) (models.ListQuery, error) {
	var q models.ListQuery
	var err error
	qp := c.QueryParams()
	if err := models.CheckParams(qp, r.KnowsParam); err != nil {
		return q, err
	}
	if q.Limit, err = models.ParseLimit(qp.Get("limit")); err != nil {
		return q, err
	}
	// since is "<seq>" or "<seq>.<tag>"; the poll layer (polling) checked
	// the tag against the log before the handler runs.
	since, err := models.ParsePosition("since", qp.Get("since"))
	if err != nil {
		return q, err
	}
	q.Since = since.Seq
	if _, ok := qp["since"]; ok && qp.Get("since") == "" {
		return q, models.Invalid("since", `must be a sequence number, optionally with its tag ("8" or "8.k3f9a2q1")`)
	}
	if q.After = qp.Get("after"); q.After != "" && !models.ValidID(r.Name, q.After) {
		return q, models.Invalid("after", "is not an id of this resource")
	}
	if v, ok := qp["q"]; ok && r.Search {
		if len(v) != 1 {
			return q, models.Invalid("q", "must be given at most once")
		}
		if q.Search, err = models.ParseSearch(v[0]); err != nil {
			return q, err
		}
	}
	for name, check := range r.Filters {
		if v, ok := qp[name]; ok {
			if len(v) != 1 || !check(v[0]) {
				return q, models.Invalid(name, "is not a valid filter value")
			}
			if q.Filters == nil {
				q.Filters = map[string]string{}
			}
			q.Filters[name] = v[0]
		}
	}
	return q, nil
}

func (h *Handler) get(r *models.Resource) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := denyDisplay(c); err != nil {
			return err
		}
		rec, err := h.Store.Find(c.Request().Context(), r.Name, c.Param("id"))
		if err != nil {
			return err
		}
		c.Response().Header().Set("ETag", strconv.Quote(strconv.FormatInt(rec.Base().Version, 10)))
		return c.JSON(http.StatusOK, rec)
	}
}

func (h *Handler) create(r *models.Resource) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := denyDisplay(c); err != nil {
			return err
		}
		body, err := ReadBody(c.Request())
		if err != nil {
			return err
		}
		rec := r.New()
		if err := Decode(body, rec); err != nil {
			return err
		}
		ctx, err := idempotent(c, body)
		if err != nil {
			return err
		}
		ctx, pos := withPosition(ctx)
		out, err := h.Store.Create(ctx, rec)
		if err != nil {
			return err
		}
		h.settle(c, pos)
		return c.JSONBlob(http.StatusCreated, out)
	}
}

func (h *Handler) patch(r *models.Resource) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := denyDisplay(c); err != nil {
			return err
		}
		ifMatch, body, err := preconditions(c)
		if err != nil {
			return err
		}
		u := r.NewUpdate()
		if err := Decode(body, u); err != nil {
			return err
		}
		ctx, err := idempotent(c, body)
		if err != nil {
			return err
		}
		ctx, pos := withPosition(ctx)
		out, err := h.Store.Update(ctx, r.Name, c.Param("id"), ifMatch, u)
		if err != nil {
			return err
		}
		h.settle(c, pos)
		return c.JSONBlob(http.StatusOK, out)
	}
}

func (h *Handler) delete(r *models.Resource) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := denyDisplay(c); err != nil {
			return err
		}
		if !r.Deletable {
			// RFC 9110 §15.5.6: a 405 names the methods the resource has.
			c.Response().Header().Set(echo.HeaderAllow, "GET, HEAD, PATCH")
		}
		ifMatch, err := parseIfMatch(c)
		if err != nil {
			return err
		}
		ctx, err := idempotent(c, nil)
		if err != nil {
			return err
		}
		ctx, pos := withPosition(ctx)
		if err := h.Store.Delete(ctx, r.Name, c.Param("id"), ifMatch); err != nil {
			return err
		}
		h.settle(c, pos)
		return c.NoContent(http.StatusNoContent)
	}
}

// MaxIdempotencyKey bounds an Idempotency-Key, in characters.
const MaxIdempotencyKey = 200

// withPosition asks the store to report where the write leaves the log.
func withPosition(ctx context.Context) (context.Context, *models.WritePosition) {
	pos := &models.WritePosition{}
	return models.NewContextWithWritePosition(ctx, pos), pos
}

// settle tells the writer its position (X-Cursor) and, with Consistency
// set, waits until the instance's reads reflect the write.
func (h *Handler) settle(c echo.Context, pos *models.WritePosition) {
	if pos.Seq <= 0 {
		return
	}
	c.Response().Header().Set(CursorHeader, models.Position{Seq: pos.Seq, Tag: pos.Tag}.String())
	if h.Consistency != nil {
		_ = h.Consistency.AwaitDispatched(c.Request().Context(), actor(c).TenantID, pos.Seq)
	}
}

// idempotent attaches the request's Idempotency-Key, if any, to its
// context: the write records its response under the key in its transaction,
// and a repeat of the same request gets that response without writing.
// Keys are the caller's own (the store scopes them by tenant and sub, in
// separate columns) and bound to method, route, id and body; the same key
// with another request is 422. A key is at most MaxIdempotencyKey
// characters of UTF-8 without control characters; anything else is 400
// naming Idempotency-Key, before it reaches the hash or the database.
func idempotent(c echo.Context, body []byte) (context.Context, error) {
	ctx := c.Request().Context()
	vs := c.Request().Header.Values("Idempotency-Key")
	switch {
	case len(vs) == 0:
		return ctx, nil
	case len(vs) == 1 && vs[0] == "":
		// Sent but empty: a client that meant a key and lost it must not
		// have its retry written twice.
		return ctx, models.Invalid("Idempotency-Key", "must not be empty (leave the header out for no key)")
	case len(vs) > 1:
		return ctx, models.Invalid("Idempotency-Key", "must be given once")
	}
	key := vs[0]
	if !models.ValidLine(key, MaxIdempotencyKey) {
		return ctx, models.Invalid("Idempotency-Key", "must be at most 200 characters of UTF-8 text without control characters")
	}
	sum := sha256.Sum256(append([]byte(c.Request().Method+" "+c.Path()+" "+c.Param("id")+"\n"), body...))
	return models.NewContextWithIdempotencyKey(ctx, models.IdempotencyKey{Key: key, Hash: hex.EncodeToString(sum[:])}), nil
}

// preconditions reads what a PATCH or DELETE starts with: its If-Match
// (parseIfMatch) and its body (ReadBody, bounded).
func preconditions(c echo.Context) (ifMatch int64, body []byte, err error) {
	if ifMatch, err = parseIfMatch(c); err != nil {
		return 0, nil, err
	}
	body, err = ReadBody(c.Request())
	return ifMatch, body, err
}

// parseIfMatch reads If-Match: "<version>" (RFC 9110 §13.1.1). The quotes
// may be left out, and W/ is accepted, since proxies that compress weaken
// ETags. Absent or * is 0 (no precondition). Anything else — a list or a
// repeated header (one version is current, so only one can be meant), a
// sign, a non-digit, a version of 0 or past int64 — is 400 naming If-Match.
func parseIfMatch(c echo.Context) (int64, error) {
	bad := models.Invalid("If-Match", `must be one record version, such as "3"`)
	vs := c.Request().Header.Values("If-Match")
	if len(vs) > 1 {
		return 0, bad
	}
	var v string
	if len(vs) == 1 {
		v = strings.TrimSpace(vs[0])
	}
	if v == "" || v == "*" {
		return 0, nil
	}
	v = strings.TrimPrefix(v, "W/")
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if v == "" || len(v) > 19 || strings.Trim(v, "0123456789") != "" {
		return 0, bad
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, bad
	}
	return n, nil
}
