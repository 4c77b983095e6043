package models

import (
	"errors"
	"fmt"
)

// Error codes. Each maps to one HTTP status in the api package's table.
const (
	ECONFLICT      = "conflict"       // illegal state transition, duplicate unique value
	EINTERNAL      = "internal"       // a bug or an unexpected failure; never shown in detail
	EINVALID       = "invalid"        // the caller's input does not validate
	ENOTFOUND      = "not_found"      // no such record in the caller's tenant
	EPRECONDITION  = "precondition"   // If-Match named a stale version
	EUNAUTHORIZED  = "unauthorized"   // no valid credentials
	EFORBIDDEN     = "forbidden"      // valid credentials, not allowed
	EUNPROCESSABLE = "unprocessable"  // an Idempotency-Key reused with another request
	ETOOLARGE      = "too_large"      // a request body over the limit
	EUNSUPPORTED   = "unsupported"    // a request body in an encoding the server does not read
	EGONE          = "cursor_expired" // a cursor older than the retained log
	ERATELIMIT     = "rate_limited"   // too many requests
	EUNAVAILABLE   = "unavailable"    // the database cannot be reached
	EMETHOD        = "method_not_allowed"
)

// FieldError names one invalid field of a request.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is the application's error type: a code, a message safe to show the
// caller, and the fields that failed validation.
type Error struct {
	Code    string
	Message string
	Fields  []FieldError
	// Cursor, on EGONE, is the log's head: where a client that refetched
	// its snapshots (or wants "from now") goes on from.
	Cursor *int64
	// Conflicts, on ECONFLICT from a clinic rule, holds the ids of the
	// records the request collides with (an overlapping appointment, the
	// patient's active queue entry, a doctor's open work), at most
	// MaxConflicts of them.
	Conflicts []string
}

// MaxConflicts bounds the ids a conflict names.
const MaxConflicts = 20

// Conflict returns an ECONFLICT error naming the field whose value collides
// with the records ids (kept to the first MaxConflicts).
func Conflict(field, message string, ids ...string) *Error {
	if len(ids) > MaxConflicts {
		ids = ids[:MaxConflicts]
	}
	e := &Error{Code: ECONFLICT, Message: field + ": " + message, Conflicts: ids}
	if field != "" {
		e.Fields = []FieldError{{Field: field, Message: message}}
	} else {
		e.Message = message
	}
	return e
}

func (e *Error) Error() string {
	return fmt.Sprintf("clinicpulse error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EINVALID error naming one field.
func Invalid(field, message string) *Error {
	return &Error{Code: EINVALID, Message: field + ": " + message, Fields: []FieldError{{Field: field, Message: message}}}
}

// NotFound returns an ENOTFOUND error for an entity.
func NotFound(entity string) *Error {
	return Errorf(ENOTFOUND, "%s not found", entity)
}

// ErrorCode returns the code of err's *Error, EINTERNAL for any other
// non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// ErrorMessage returns the caller-safe message of err.
func ErrorMessage(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Message
	default:
		return "Internal error."
	}
}

// Validation collects field errors; Err returns nil when there are none.
type Validation []FieldError

// Add records a field error.
func (v *Validation) Add(field, message string) { *v = append(*v, FieldError{field, message}) }

// Err returns an EINVALID *Error listing the fields, or nil.
func (v Validation) Err() error {
	if len(v) == 0 {
		return nil
	}
	msg := v[0].Field + ": " + v[0].Message
	if len(v) > 1 {
		msg = fmt.Sprintf("%s (and %d more)", msg, len(v)-1)
	}
	return &Error{Code: EINVALID, Message: msg, Fields: v}
}
