package apptest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestContractCatchesMismatches runs the validator around handlers that
// break the document in each way it must catch, and around ones that keep
// it, over real HTTP: a validator that passes everything would pass the
// whole suite too.
func TestContractCatchesMismatches(t *testing.T) {
	const patient = `{"id":"pat_0123456789abcdefghjk","version":1,"created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05Z",` +
		`"name":"Ada","date_of_birth":"","phone":"","mrn":"MRN-1"}`
	const problem400 = `{"type":"https://clinicpulse.dev/problems/validation","title":"Invalid request","status":400,"detail":"nmae: is not a known field","errors":[{"field":"nmae","message":"is not a known field"}]}`
	const problem404 = `{"type":"https://clinicpulse.dev/problems/not-found","title":"Not found","status":404,"detail":"no such resource"}`
	answer := func(status int, ctype, body string, headers ...string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("X-Request-ID", "test-1")
			for i := 0; i+1 < len(headers); i += 2 {
				w.Header().Set(headers[i], headers[i+1])
			}
			if ctype != "" {
				w.Header().Set("Content-Type", ctype)
			}
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		}
	}
	bearer := []string{"Authorization", "Bearer x.y.z"}
	pollHeaders := []string{"ETag", `"AAAAAAAAAAAAAAAAAAAAAA"`, "Cache-Control", "private, no-cache", "Vary", "Authorization, X-Tenant-ID", "X-Poll-Interval", "15"}
	cases := []struct {
		name     string
		method   string
		path     string
		body     string
		reqHdr   []string
		handler  http.HandlerFunc
		mismatch string // "" when the exchange conforms
	}{
		{"conforming", "GET", "/healthz", "", nil, answer(200, "application/json", `{"status":"ok"}`), ""},
		{"undocumented field", "GET", "/healthz", "", nil, answer(200, "application/json", `{"status":"ok","uptime":3}`), "response"},
		{"undocumented status", "GET", "/healthz", "", nil, answer(500, "application/problem+json", `{}`), "status 500 is not documented"},
		{"wrong media type", "GET", "/healthz", "", nil, answer(200, "text/plain", `ok`), "response"},
		{"missing required header", "GET", "/api/v1/queue/board", "", bearer,
			func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"boards":[],"cursor":0}`)
			}, "X-Request-ID"},
		{"accepted invalid request", "POST", "/api/v1/patients", `{"nmae":"Ada"}`, append(bearer, "Content-Type", "application/json"),
			answer(201, "application/json", patient, "X-Cursor", "3"), "accepted a request the document calls invalid"},
		{"refused invalid request", "POST", "/api/v1/patients", `{"nmae":"Ada"}`, append(bearer, "Content-Type", "application/json"),
			answer(400, "application/problem+json", problem400), ""},
		{"accepted valid request", "POST", "/api/v1/patients", `{"name":"Ada"}`, append(bearer, "Content-Type", "application/json"),
			answer(201, "application/json", patient, "X-Cursor", "3"), ""},
		{"accepted without a token", "GET", "/api/v1/queue/board", "", nil,
			answer(200, "application/json", `{"boards":[],"cursor":0}`), "accepted a request the document calls invalid"},
		{"unknown path served", "GET", "/nothing", "", nil, answer(200, "text/plain", "hi"), "no such operation"},
		{"unknown path refused", "GET", "/nothing", "", nil, answer(404, "application/problem+json", problem404), ""},
		{"unknown method refused without Allow", "PUT", "/healthz", "", nil, answer(405, "application/problem+json", `{}`), "405 without Allow"},
		{"HEAD without a required header", "HEAD", "/api/v1/events", "", bearer,
			answer(200, "application/json", "", pollHeaders[:6]...), "X-Poll-Interval"},
		{"HEAD conforming", "HEAD", "/api/v1/events", "", bearer, answer(200, "application/json", "", pollHeaders...), ""},
		{"304 without its ETag", "GET", "/api/v1/events", "", append(bearer, "If-None-Match", `"x"`),
			answer(304, "", "", pollHeaders[2:]...), "ETag"},
		{"stream without X-Accel-Buffering", "GET", "/api/v1/stream", "", bearer,
			answer(200, "text/event-stream", "retry: 1000\n\n", "Cache-Control", "no-cache, no-transform"), "X-Accel-Buffering"},
		{"stream conforming", "GET", "/api/v1/stream?topics=queue", "", bearer,
			answer(200, "text/event-stream", "retry: 1000\n\n", "Cache-Control", "no-cache, no-transform", "X-Accel-Buffering", "no"), ""},
		{"a file in a subdirectory", "GET", "/static/vendor/x.js", "", nil,
			answer(200, "text/javascript", "export {}", "Content-Security-Policy", "default-src 'none'", "X-Content-Type-Options", "nosniff", "Referrer-Policy", "no-referrer"), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := newContract(tc.handler)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(c)
			defer srv.Close()
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i+1 < len(tc.reqHdr); i += 2 {
				req.Header.Set(tc.reqHdr[i], tc.reqHdr[i+1])
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			srv.Close() // waits for the handler and its check
			got := c.Failures()
			t.Logf("mismatches: %v", got)
			switch {
			case tc.mismatch == "" && len(got) > 0:
				t.Errorf("a conforming exchange was flagged: %v", got)
			case tc.mismatch != "" && len(got) == 0:
				t.Errorf("no mismatch found, want one about %q", tc.mismatch)
			case tc.mismatch != "" && !strings.Contains(strings.Join(got, "\n"), tc.mismatch):
				t.Errorf("mismatch %v, want one about %q", got, tc.mismatch)
			}
		})
	}
}
