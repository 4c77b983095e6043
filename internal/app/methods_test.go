package app_test

import (
	"bytes"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/labstack/echo/v4"
)

// rawClient sends each request on its own connection, uncompressed, so a
// GET and a HEAD of one resource are answered alike (Go's transport asks
// for gzip on GET only) and a HEAD of the stream leaves nothing behind.
var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true, DisableKeepAlives: true}}

func send(t *testing.T, s *apptest.Server, method, path, token string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := rawClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	var body []byte
	if method != http.MethodHead || path != "/api/v1/stream" {
		body, _ = io.ReadAll(res.Body)
	}
	return res, body
}

// allowSet parses an Allow header.
func allowSet(v string) []string {
	var out []string
	for _, m := range strings.Split(v, ",") {
		if m = strings.TrimSpace(m); m != "" {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out
}

// concrete turns a route pattern into a path that reaches it.
func concrete(pattern string, ids map[string]string) string {
	parts := strings.Split(pattern, "/")
	for i, p := range parts {
		switch {
		case strings.HasSuffix(p, "*"):
			parts[i] = strings.TrimSuffix(p, "*") + "/index.html"
		case strings.HasPrefix(p, ":"):
			parts[i] = ids[parts[i-1]]
			if parts[i] == "" {
				parts[i] = "x_00000000000000000000"
			}
		}
	}
	return strings.Join(parts, "/")
}

// matches reports whether a route pattern matches path as Echo's router
// does: a static segment matches itself, :param one segment (a last :param
// the rest of the path), a trailing * anything.
func matches(pattern, path string) bool {
	if pre, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(path, pre)
	}
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	for i, p := range ps {
		if i >= len(xs) {
			return false
		}
		if strings.HasPrefix(p, ":") {
			if i == len(ps)-1 {
				return xs[i] != ""
			}
			continue
		}
		if p != xs[i] {
			return false
		}
	}
	return len(xs) == len(ps)
}

// headerDiff lists the header fields in which a HEAD answer differs from
// the GET's (RFC 9110 §9.3.2: the same fields, without content).
func headerDiff(get, head http.Header, skipLength bool) []string {
	skip := map[string]bool{"Date": true, "X-Request-Id": true}
	if skipLength {
		skip["Content-Length"] = true
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(get)) {
		if !skip[k] && !slices.Equal(get[k], head[k]) {
			out = append(out, k+": GET "+strings.Join(get[k], ",")+" HEAD "+strings.Join(head[k], ","))
		}
	}
	for k := range head {
		if _, ok := get[k]; !ok && !skip[k] {
			out = append(out, k+": only in HEAD")
		}
	}
	return out
}

// TestEveryRouteAnswersHEADAndWrongMethods walks the server's route table,
// so a route added later is covered: every GET route answers HEAD as GET
// (same status and header fields, no content; a poll's If-None-Match gives
// the same 304), and every method a known path lacks answers 405
// problem+json with an Allow listing the path's methods, HEAD where GET is
// (RFC 9110 §9.3.2, §15.5.6). Unknown paths stay 404.
func TestEveryRouteAnswersHEADAndWrongMethods(t *testing.T) {
	s := apptest.Start(t)
	tok := s.Token("heads", models.RoleAdmin, "admin-1")
	ids := map[string]string{
		"patients": s.Create(t, tok, "patients", map[string]any{"name": "Ana"})["id"].(string),
		"doctors":  s.Create(t, tok, "doctors", map[string]any{"name": "Dr. B"})["id"].(string),
	}

	// The reproductions of issue 11 item 6.
	for _, r := range []struct {
		method, path string
		want         int
	}{
		{http.MethodHead, "/api/v1/patients", 200},
		{http.MethodHead, "/api/v1/events", 200},
		{http.MethodHead, "/api/v1/stream", 200},
		{http.MethodHead, "/healthz", 200},
		{http.MethodHead, "/static/clinicpulse.js", 200},
		{http.MethodPost, "/api/v1/stream", 405},
		{http.MethodPut, "/api/v1/patients", 405},
	} {
		if res, _ := send(t, s, r.method, r.path, tok); res.StatusCode != r.want {
			t.Errorf("%s %s: %d, want %d", r.method, r.path, res.StatusCode, r.want)
		}
	}

	methods := map[string][]string{}
	for _, r := range s.App.Echo.Routes() {
		if r.Method == echo.RouteNotFound {
			continue
		}
		methods[r.Path] = append(methods[r.Path], r.Method)
	}
	if len(methods) < 20 {
		t.Fatalf("only %d routes: %v", len(methods), methods)
	}
	probe := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	dynamic := map[string]bool{"/metrics": true, "/api/v1/ops/stats": true}
	for _, pattern := range slices.Sorted(maps.Keys(methods)) {
		path := concrete(pattern, ids)
		// The methods of every pattern that matches the path: PATCH
		// /api/v1/queue/board is /api/v1/queue/:id's.
		// A last :param may span segments, but Echo does not backtrack to
		// it from a route that matches the path segment by segment (as the
		// path's own pattern does): /api/v1/queue/q_1/recall is
		// /api/v1/queue/:id/recall's alone.
		var ms []string
		for p, m := range methods {
			spans := !strings.HasSuffix(p, "*") && strings.Count(p, "/") != strings.Count(path, "/")
			if matches(p, path) && !spans {
				ms = append(ms, m...)
			}
		}
		slices.Sort(ms)
		ms = slices.Compact(ms)
		has := func(m string) bool { return slices.Contains(ms, m) }
		if has(http.MethodGet) != has(http.MethodHead) {
			t.Errorf("%s: methods %v: GET without HEAD (or HEAD without GET)", pattern, ms)
		}
		if has(http.MethodGet) {
			head, body := send(t, s, http.MethodHead, path, tok)
			if pattern == "/api/v1/stream" {
				// The stream's headers; its handler ends a HEAD there.
				if head.StatusCode != 200 || head.Header.Get("Content-Type") != "text/event-stream" {
					t.Errorf("HEAD %s: %d %q", path, head.StatusCode, head.Header.Get("Content-Type"))
				}
			} else {
				get, getBody := send(t, s, http.MethodGet, path, tok)
				if head.StatusCode != get.StatusCode || len(body) != 0 {
					t.Errorf("HEAD %s: %d with %d bytes; GET: %d", path, head.StatusCode, len(body), get.StatusCode)
				}
				if d := headerDiff(get.Header, head.Header, dynamic[pattern]); len(d) > 0 {
					t.Errorf("HEAD %s: header fields differ from GET's: %v", path, d)
				}
				if !dynamic[pattern] && get.Header.Get("Content-Length") != "" && head.ContentLength != int64(len(getBody)) {
					t.Errorf("HEAD %s: Content-Length %d, GET body %d bytes", path, head.ContentLength, len(getBody))
				}
				if tag := get.Header.Get("ETag"); tag != "" {
					g, _ := send(t, s, http.MethodGet, path, tok, "If-None-Match", tag)
					h, _ := send(t, s, http.MethodHead, path, tok, "If-None-Match", tag)
					if g.StatusCode != h.StatusCode {
						t.Errorf("%s with If-None-Match: GET %d, HEAD %d", path, g.StatusCode, h.StatusCode)
					}
					if poll := pattern == "/api/v1/events" || models.Resources[strings.TrimPrefix(pattern, "/api/v1/")] != nil; poll && h.StatusCode != http.StatusNotModified {
						t.Errorf("HEAD %s with its ETag: %d, want 304", path, h.StatusCode)
					}
				}
			}
		}
		want := allowSet(strings.Join(append(slices.Clone(ms), http.MethodOptions), ","))
		for _, m := range probe {
			if has(m) {
				continue
			}
			res, body := send(t, s, m, path, tok)
			if res.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d, want 405 (route has %v)", m, path, res.StatusCode, ms)
				continue
			}
			if got := allowSet(res.Header.Get("Allow")); !slices.Equal(got, want) {
				t.Errorf("%s %s: Allow %v, want %v", m, path, got, want)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("%s %s: Content-Type %q", m, path, ct)
			}
			if m == http.MethodHead && len(body) != 0 {
				t.Errorf("HEAD %s: 405 with a body", path)
			}
		}
		if res, _ := send(t, s, http.MethodOptions, path, tok); res.StatusCode != http.StatusNoContent || !slices.Equal(allowSet(res.Header.Get("Allow")), want) {
			t.Errorf("OPTIONS %s: %d Allow %q, want 204 %v", path, res.StatusCode, res.Header.Get("Allow"), want)
		}
	}

	// A path no route has is 404 whatever the method.
	for _, path := range []string{"/api/v1/nothing", "/nothing", "/api/v1/nothing/x"} {
		for _, m := range probe {
			if res, _ := send(t, s, m, path, tok); res.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s: %d, want 404", m, path, res.StatusCode)
			}
		}
	}
	// A route's own 405 (a record that cannot be deleted) lists HEAD too.
	q := s.Create(t, tok, "queue", map[string]any{"patient_id": ids["patients"], "doctor_id": ids["doctors"]})
	res, body := send(t, s, http.MethodDelete, "/api/v1/queue/"+q["id"].(string), tok)
	if res.StatusCode != 405 || !slices.Equal(allowSet(res.Header.Get("Allow")), []string{"GET", "HEAD", "PATCH"}) || !bytes.Contains(body, []byte("method-not-allowed")) {
		t.Errorf("DELETE a queue entry: %d Allow %q %s", res.StatusCode, res.Header.Get("Allow"), body)
	}
}

// TestMethodsNeedNoToken: the methods of a path are no secret (the OpenAPI
// document lists them), so OPTIONS and a method the path lacks are answered
// without a token under /api/v1 as they are outside it — the public
// /api/v1/openapi.json included. A path no route has still needs a token
// to learn that it is unknown, and a route's own method still needs one.
func TestMethodsNeedNoToken(t *testing.T) {
	s := apptest.Start(t)
	for _, c := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{http.MethodOptions, "/api/v1/patients", 204, "GET, HEAD, POST, OPTIONS"},
		{http.MethodOptions, "/api/v1/queue/q_00000000000000000000/recall", 204, "POST, OPTIONS"},
		{http.MethodPut, "/api/v1/patients", 405, "GET, HEAD, POST, OPTIONS"},
		{http.MethodPost, "/api/v1/stream", 405, "GET, HEAD, OPTIONS"},
		{http.MethodOptions, "/api/v1/openapi.json", 204, "GET, HEAD, OPTIONS"},
		{http.MethodDelete, "/api/v1/openapi.json", 405, "GET, HEAD, OPTIONS"},
		{http.MethodGet, "/api/v1/patients", 401, ""},
		{http.MethodOptions, "/api/v1/nothing", 401, ""},
	} {
		res, body := send(t, s, c.method, c.path, "")
		if res.StatusCode != c.status || res.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s without a token: %d Allow %q, want %d %q", c.method, c.path, res.StatusCode, res.Header.Get("Allow"), c.status, c.allow)
		}
		if c.status == 405 && !bytes.Contains(body, []byte("method-not-allowed")) {
			t.Errorf("%s %s: %s", c.method, c.path, body)
		}
	}
}
