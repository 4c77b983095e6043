package app

import (
	"crypto/rand"

	"github.com/labstack/echo/v4"
)

// maxRequestID bounds an X-Request-ID taken from the caller.
const maxRequestID = 64

// validRequestID reports whether a caller's X-Request-ID may be kept: 1 to
// 64 bytes of [A-Za-z0-9._-]. Anything else (long, spaces, quotes, control
// or non-ASCII bytes) is replaced: the id is written to the log and echoed
// in a response header.
func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > maxRequestID {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// requestID gives every request an id, echoed in the X-Request-ID response
// header and logged: the caller's when validRequestID accepts it (a proxy's
// id then ties the two logs together), else a random one (26 base32
// characters). The request header is rewritten to match, so whatever reads
// it later sees the id the log has.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header
		id := h.Get(echo.HeaderXRequestID)
		if !validRequestID(id) || len(h.Values(echo.HeaderXRequestID)) > 1 {
			id = rand.Text()
			h.Set(echo.HeaderXRequestID, id)
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}
