// Package openapi holds the OpenAPI 3.0.3 document of ClinicPulse's HTTP API
// (openapi.json, written by hand and embedded) and serves it at
// GET /api/v1/openapi.json without a token.
//
// The document is the contract the Go integration tests enforce: every
// request a test sends through an apptest server, and every response it
// gets, is validated against it (internal/apptest), so an undocumented
// route, status, header or field fails the suite. Edit openapi.json with
// the code it describes.
package openapi

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// Path is where the document is served.
const Path = "/api/v1/openapi.json"

// Source is the document as written: indented JSON.
//
//go:embed openapi.json
var Source []byte

// served is the document without insignificant white space (a third
// smaller), and etag its strong validator: the first 128 bits of its
// SHA-256, base64url, quoted (RFC 9110 §8.8.3).
var served, etag = compact(Source)

func compact(src []byte) ([]byte, string) {
	var b bytes.Buffer
	if err := json.Compact(&b, src); err != nil {
		// A broken document is a build error; TestDocumentValidates
		// names it.
		panic("openapi: openapi.json is not JSON: " + err.Error())
	}
	sum := sha256.Sum256(b.Bytes())
	return b.Bytes(), `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`
}

// Document returns the JSON served (compact) and its ETag.
func Document() ([]byte, string) { return served, etag }

// Serve answers GET (and HEAD) /api/v1/openapi.json: 200 application/json
// with a strong ETag and Cache-Control: no-cache, or 304 when
// If-None-Match holds that ETag (or *). It needs no token.
func Serve(c echo.Context) error {
	h := c.Response().Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache")
	if ifNoneMatch(c.Request().Header.Get("If-None-Match"), etag) {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, served)
}

// ifNoneMatch applies RFC 9110 §13.1.2's weak comparison of an
// If-None-Match list against tag.
func ifNoneMatch(field, tag string) bool {
	for _, t := range strings.Split(field, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == tag {
			return true
		}
	}
	return false
}
