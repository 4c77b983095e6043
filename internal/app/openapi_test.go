package app_test

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/clinicpulse/clinicpulse/api/openapi"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"
)

// TestOpenAPICoversEveryRoute checks the OpenAPI document against the
// server's router both ways: every route registered with Echo (HEAD routes
// included) is an operation of the document, and every operation of the
// document is a registered route, except OPTIONS, which the server answers
// for every path without a route of its own (routes.go). Every path of the
// document has its OPTIONS operation.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(openapi.Source)
	if err != nil {
		t.Fatal(err)
	}
	s := apptest.Start(t)

	// Echo's patterns in the document's form: /queue/:id → /queue/{id};
	// the static files' catch-all /static* is /static/{file}.
	docPath := func(p string) string {
		if p == "/static*" {
			return "/static/{file}"
		}
		parts := strings.Split(p, "/")
		for i, part := range parts {
			if name, ok := strings.CutPrefix(part, ":"); ok {
				parts[i] = "{" + name + "}"
			}
		}
		return strings.Join(parts, "/")
	}
	registered := map[string]bool{}
	for _, r := range s.App.Echo.Routes() {
		if r.Method == echo.RouteNotFound {
			continue // a group's catch-all: 404 or 405, no operation
		}
		key := r.Method + " " + docPath(r.Path)
		registered[key] = true
		item := doc.Paths.Value(docPath(r.Path))
		if item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("route %s %s is not in the OpenAPI document", r.Method, r.Path)
		}
	}
	if len(registered) < 60 {
		t.Fatalf("only %d routes registered", len(registered))
	}
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		if item.Options == nil {
			t.Errorf("%s: no OPTIONS operation", path)
		}
		for method := range item.Operations() {
			if method == http.MethodOptions {
				continue
			}
			if !registered[method+" "+path] {
				t.Errorf("%s %s is in the OpenAPI document but no route serves it", method, path)
			}
		}
	}
}

// TestOpenAPIServed checks GET /api/v1/openapi.json: no token needed, the
// embedded document (compact) with a strong ETag, 304 for that ETag, and
// HEAD with GET's status and header fields and no body. The route is in the
// route table, so its requests get a fixed metrics label.
func TestOpenAPIServed(t *testing.T) {
	s := apptest.Start(t)
	want, tag := openapi.Document()
	r := s.Do(t, http.MethodGet, openapi.Path, "", nil)
	if r.Status != 200 || r.Header.Get("Content-Type") != "application/json" || !bytes.Equal(r.Body, want) {
		t.Fatalf("GET %s: %d %q, %d bytes", openapi.Path, r.Status, r.Header.Get("Content-Type"), len(r.Body))
	}
	if r.Header.Get("ETag") != tag || r.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("ETag %q (want %q), Cache-Control %q", r.Header.Get("ETag"), tag, r.Header.Get("Cache-Control"))
	}
	// A token is not needed, and a bad one is not looked at.
	if r := s.Do(t, http.MethodGet, openapi.Path, "not-a-token", nil); r.Status != 200 {
		t.Errorf("with a bad token: %d", r.Status)
	}
	for _, inm := range []string{tag, "W/" + tag, `"other", ` + tag, "*"} {
		if r := s.Do(t, http.MethodGet, openapi.Path, "", nil, "If-None-Match", inm); r.Status != 304 || len(r.Body) != 0 || r.Header.Get("ETag") != tag {
			t.Errorf("If-None-Match %s: %d, %d bytes, ETag %q", inm, r.Status, len(r.Body), r.Header.Get("ETag"))
		}
	}
	if r := s.Do(t, http.MethodGet, openapi.Path, "", nil, "If-None-Match", `"stale"`); r.Status != 200 {
		t.Errorf("If-None-Match with a stale tag: %d", r.Status)
	}
	h := s.Do(t, http.MethodHead, openapi.Path, "", nil)
	if h.Status != 200 || len(h.Body) != 0 || h.Header.Get("ETag") != tag || h.Header.Get("Content-Length") != r.Header.Get("Content-Length") {
		t.Errorf("HEAD: %d, %d bytes, ETag %q, Content-Length %q (GET %q)", h.Status, len(h.Body), h.Header.Get("ETag"),
			h.Header.Get("Content-Length"), r.Header.Get("Content-Length"))
	}
	if o := s.Do(t, http.MethodOptions, openapi.Path, "", nil); o.Status != 204 || o.Header.Get("Allow") != "GET, HEAD, OPTIONS" {
		t.Errorf("OPTIONS: %d Allow %q", o.Status, o.Header.Get("Allow"))
	}
	_, metrics := seriesOf(t, s)
	if !slices.ContainsFunc(strings.Split(metrics, "\n"), func(l string) bool {
		return strings.HasPrefix(l, "clinicpulse_http_requests_total{") && strings.Contains(l, `route="/api/v1/openapi.json"`) && strings.Contains(l, `status="304"`)
	}) {
		t.Errorf("no request series labelled with the route /api/v1/openapi.json")
	}
}
