// Package apptest starts a whole ClinicPulse server on a loopback port for
// tests, on the test's own database (see testdb), and makes tokens. Every
// request a test sends through a Server, and every response it gets, is
// validated against the API's OpenAPI document (see contract.go for the
// rules); a mismatch fails the test when the server stops.
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/testdb"
	"github.com/clinicpulse/clinicpulse/models"
)

// Secret is the JWT secret of test servers.
const Secret = "test-secret-0123456789abcdef0123456789"

// Server is a running test server.
type Server struct {
	*httptest.Server
	App      *app.App
	Dialect  string
	t        testing.TB
	contract *contract // nil for benchmarks
}

// Option adjusts the configuration before the server starts.
type Option func(*app.Config)

// Start starts a server on a fresh database; it stops when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	url, dialect := testdb.URL(t)
	return StartURL(t, url, dialect, opts...)
}

// StartURL starts a server on the given database (for several instances
// sharing one database).
func StartURL(t testing.TB, url, dialect string, opts ...Option) *Server {
	t.Helper()
	cfg := app.Config{DatabaseURL: url, JWTSecret: []byte(Secret), RelayScan: 500 * time.Millisecond, Location: time.UTC}
	for _, o := range opts {
		o(&cfg)
	}
	ctx := context.Background()
	a, err := app.New(ctx, cfg)
	if err != nil {
		t.Fatalf("apptest: %v", err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatalf("apptest: %v", err)
	}
	return Serve(t, a, dialect)
}

// Serve serves a started app on a loopback port until the test ends (or
// Stop), each exchange validated against the OpenAPI document (benchmarks
// excepted: the validator's cost would be measured with the server's).
func Serve(t testing.TB, a *app.App, dialect string) *Server {
	t.Helper()
	s := &Server{App: a, Dialect: dialect, t: t}
	var h http.Handler = a.Echo
	if _, bench := t.(*testing.B); !bench {
		c, err := newContract(a.Echo)
		if err != nil {
			t.Fatalf("apptest: %v", err)
		}
		s.contract, h = c, c
	}
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ReadHeaderTimeout = 10 * time.Second
	ts.Start()
	s.Server = ts
	t.Cleanup(s.Stop)
	return s
}

// Stop shuts the server down (idempotent) and fails the test for each
// exchange that did not conform to the OpenAPI document.
func (s *Server) Stop() {
	if s.App == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.App.Shutdown(ctx, s.Server.Config)
	s.Server.CloseClientConnections()
	s.Server.Close() // waits for the handlers, and so for their checks
	s.App = nil
	if s.contract != nil {
		for _, f := range s.contract.Failures() {
			s.t.Errorf("%s", f)
		}
	}
}

// Token signs a token for a role in a tenant; sub names the caller (a
// patient id for the patient role).
func (s *Server) Token(tenant string, role models.Role, sub string) string {
	tok, err := s.App.Auth.Sign(models.Actor{Subject: sub, TenantID: tenant, Role: role}, time.Hour)
	if err != nil {
		s.t.Fatalf("apptest: sign: %v", err)
	}
	return tok
}

// Response is a test client's view of a response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test on error.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Do sends a request with a bearer token (if any) and a JSON body (a
// string or []byte is sent as is; anything else is marshalled).
func (s *Server) Do(t testing.TB, method, path, token string, body any, headers ...string) *Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return &Response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// Create POSTs a record and returns its decoded JSON, failing unless 201.
func (s *Server) Create(t testing.TB, token, resource string, body any) map[string]any {
	t.Helper()
	r := s.Do(t, http.MethodPost, "/api/v1/"+resource, token, body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create %s: %d %s", resource, r.Status, r.Body)
	}
	var m map[string]any
	r.JSON(t, &m)
	return m
}
