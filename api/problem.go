// Package api serves the clinic's REST API with Echo: thin handlers that
// bind a request, call one store method and render the result, and the one
// error handler that turns every error into RFC 9457 problem+json.
package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/labstack/echo/v4"
)

// Problem is an RFC 9457 problem detail.
type Problem struct {
	Type   string              `json:"type"`
	Title  string              `json:"title"`
	Status int                 `json:"status"`
	Detail string              `json:"detail,omitempty"`
	Errors []models.FieldError `json:"errors,omitempty"`
	// Cursor extends cursor-expired problems with the log's head.
	Cursor *int64 `json:"cursor,omitempty"`
	// Conflicts extends conflict problems of the clinic's rules with the
	// ids of the records the request collides with (an overlapping
	// appointment, the patient's active queue entry, a doctor's open work).
	Conflicts []string `json:"conflicts,omitempty"`
}

// ProblemBase prefixes every problem type.
const ProblemBase = "https://clinicpulse.dev/problems/"

var codes = map[string]struct {
	status int
	slug   string
	title  string
}{
	models.EINVALID:       {http.StatusBadRequest, "validation", "Invalid request"},
	models.EUNAUTHORIZED:  {http.StatusUnauthorized, "unauthorized", "Unauthorized"},
	models.EFORBIDDEN:     {http.StatusForbidden, "forbidden", "Forbidden"},
	models.ENOTFOUND:      {http.StatusNotFound, "not-found", "Not found"},
	models.EMETHOD:        {http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed"},
	models.ECONFLICT:      {http.StatusConflict, "conflict", "Conflict"},
	models.EGONE:          {http.StatusGone, "cursor-expired", "Cursor expired"},
	models.EPRECONDITION:  {http.StatusPreconditionFailed, "precondition-failed", "Precondition failed"},
	models.ETOOLARGE:      {http.StatusRequestEntityTooLarge, "too-large", "Request body too large"},
	models.EUNSUPPORTED:   {http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type"},
	models.EUNPROCESSABLE: {http.StatusUnprocessableEntity, "idempotency-key-reused", "Idempotency-Key reused"},
	models.ERATELIMIT:     {http.StatusTooManyRequests, "rate-limited", "Too many requests"},
	models.EUNAVAILABLE:   {http.StatusServiceUnavailable, "unavailable", "Service unavailable"},
	models.EINTERNAL:      {http.StatusInternalServerError, "internal", "Internal error"},
}

// StatusOf returns the HTTP status of an error code.
func StatusOf(code string) int {
	if c, ok := codes[code]; ok {
		return c.status
	}
	return http.StatusInternalServerError
}

// ErrorHandler renders every error as problem+json. Internal errors are
// logged with the request id and never shown in detail.
func ErrorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		p := ProblemOf(err)
		if p.Status >= 500 && p.Status != http.StatusServiceUnavailable {
			logger.Error("internal error", "request_id", c.Response().Header().Get(echo.HeaderXRequestID),
				"method", c.Request().Method, "route", c.Path(), "err", err)
		}
		switch p.Status {
		case http.StatusServiceUnavailable:
			c.Response().Header().Set("Retry-After", "5")
		case http.StatusUnsupportedMediaType:
			c.Response().Header().Set("Accept-Encoding", "identity")
		}
		b, _ := json.Marshal(p)
		c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
		// A HEAD gets the GET's fields, Content-Length included (RFC 9110 §9.3.2).
		c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(b)))
		c.Response().WriteHeader(p.Status)
		if c.Request().Method != http.MethodHead {
			_, _ = c.Response().Write(b)
		}
	}
}

// ProblemOf converts an error to a problem.
func ProblemOf(err error) Problem {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			err = models.Errorf(models.ENOTFOUND, "no such resource")
		case http.StatusMethodNotAllowed:
			err = models.Errorf(models.EMETHOD, "method not allowed on this resource")
		case http.StatusRequestEntityTooLarge:
			err = models.Errorf(models.ETOOLARGE, "the request body exceeds 1 MiB")
		case http.StatusUnauthorized, http.StatusBadRequest, http.StatusForbidden, http.StatusTooManyRequests, http.StatusServiceUnavailable:
			code := map[int]string{401: models.EUNAUTHORIZED, 400: models.EINVALID, 403: models.EFORBIDDEN, 429: models.ERATELIMIT, 503: models.EUNAVAILABLE}[he.Code]
			msg, _ := he.Message.(string)
			err = models.Errorf(code, "%s", msg)
		}
	}
	code := models.ErrorCode(err)
	c := codes[code]
	if c.status == 0 {
		c = codes[models.EINTERNAL]
	}
	p := Problem{Type: ProblemBase + c.slug, Title: c.title, Status: c.status, Detail: models.ErrorMessage(err)}
	var me *models.Error
	if errors.As(err, &me) {
		p.Errors, p.Cursor, p.Conflicts = me.Fields, me.Cursor, me.Conflicts
	}
	if strings.TrimSpace(p.Detail) == "" {
		p.Detail = c.title
	}
	return p
}
