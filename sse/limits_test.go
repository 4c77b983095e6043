package sse_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/sse"
)

// unlimited removes every bound of sse.Limits, for tests of other things
// that open many streams with one token.
var unlimited = sse.Limits{PerIdentityStaff: -1, PerIdentityPublic: -1, PerTenant: -1, OpenRate: -1}

// spellings are one token's Authorization headers: the scheme is
// case-insensitive (RFC 9110 §11.1) and the server trims the token. Each
// is the same verified identity, so they share every bound (issue 10,
// item 4).
var spellings = []string{"Bearer ", "bearer ", "BEARER ", "Bearer  "}

// tooMany checks a 429 answered before any stream byte: problem+json
// whose detail says what, and Retry-After in whole seconds (at least
// minRetry).
func tooMany(t *testing.T, res *http.Response, what string, minRetry int64) {
	t.Helper()
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(string(b), what) {
		t.Fatalf("%d %s %s, want 429 problem+json about %q", res.StatusCode, res.Header.Get("Content-Type"), b, what)
	}
	if secs, err := strconv.ParseInt(res.Header.Get("Retry-After"), 10, 64); err != nil || secs < minRetry {
		t.Fatalf("Retry-After %q, want at least %d", res.Header.Get("Retry-After"), minRetry)
	}
	if strings.Contains(string(b), "retry:") || strings.Contains(string(b), "id:") {
		t.Fatalf("stream bytes in a refusal: %s", b)
	}
}

// TestStreamLimits (issue 10, item 3): with 8 streams per identity and 12
// per tenant, the 9th stream of one display token is 429 with
// Retry-After, whatever the spelling of its Authorization header; another
// identity of the tenant and another tenant still connect; closing a
// stream frees its slot; the tenant's bound refuses the 13th stream of
// any identity, and no other tenant's.
func TestStreamLimits(t *testing.T) {
	s := apptest.Start(t, func(c *app.Config) {
		c.Streams = sse.Limits{PerIdentityPublic: 8, PerIdentityStaff: 8, PerTenant: 12, OpenRate: -1}
	})
	screen := s.Token(tenant, models.RoleDisplay, "screen-1")
	started := func(c *conn) {
		t.Helper()
		if it, ok := c.next(5 * time.Second); !ok || it.Kind != "retry" {
			t.Fatalf("first item %+v", it)
		}
	}
	var held []*conn
	for i := range 8 {
		c := connect(t, s, "", "", "Authorization", spellings[i%len(spellings)]+screen)
		started(c)
		held = append(held, c)
	}
	for _, sp := range spellings {
		_, res := tryConnect(t, http.DefaultClient, s.URL, "", "", "Authorization", sp+screen)
		tooMany(t, res, "8 streams", 1)
	}
	// Another identity of the tenant, and another tenant's same subject.
	started(connect(t, s, s.Token(tenant, models.RoleDisplay, "screen-2"), ""))
	started(connect(t, s, s.Token("clinic-b", models.RoleDisplay, "screen-1"), ""))

	// Closing one frees a slot once the server has seen it go.
	held[0].close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, res := tryConnect(t, http.DefaultClient, s.URL, "", "", "Authorization", spellings[3]+screen)
		if res.StatusCode == http.StatusOK {
			started(c)
			break
		}
		res.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("no slot after a stream closed: %d", res.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The tenant holds 9 now (8 + screen-2): 3 more of a staff identity,
	// then the tenant's bound.
	staff := s.Token(tenant, models.RoleCoordinator, "c")
	for range 3 {
		started(connect(t, s, staff, ""))
	}
	_, res := tryConnect(t, http.DefaultClient, s.URL, staff, "")
	tooMany(t, res, "tenant", 1)
	started(connect(t, s, s.Token("clinic-b", models.RoleCoordinator, "c"), ""))
}

// TestStreamLimitDefaults: without configuration a display or patient
// identity holds 4 streams, a staff identity 16.
func TestStreamLimitDefaults(t *testing.T) {
	s := apptest.Start(t)
	staff := s.Token(tenant, models.RoleAdmin, "a")
	alice := s.Create(t, staff, "patients", map[string]any{"name": "Alice"})["id"].(string)
	for _, tc := range []struct {
		token string
		n     int
	}{
		{s.Token(tenant, models.RoleDisplay, "screen-1"), sse.DefaultStreamsPerIdentityPublic},
		{s.Token(tenant, models.RolePatient, alice), sse.DefaultStreamsPerIdentityPublic},
		{s.Token(tenant, models.RoleDoctor, "d"), sse.DefaultStreamsPerIdentityStaff},
	} {
		for range tc.n {
			connect(t, s, tc.token, "")
		}
		_, res := tryConnect(t, http.DefaultClient, s.URL, tc.token, "")
		tooMany(t, res, strconv.Itoa(tc.n)+" streams", 1)
	}
}

// TestOpenAndMintRates (issue 10, item 4): stream opens and ticket mints
// are rate-limited per verified identity, each in its own bucket; every
// spelling of the header draws from the same one; another identity has
// its own.
func TestOpenAndMintRates(t *testing.T) {
	s := apptest.Start(t, func(c *app.Config) { c.Streams = sse.Limits{OpenRate: 0.001, OpenBurst: 3} })
	screen := s.Token(tenant, models.RoleDisplay, "screen-1")
	for i := range 3 {
		c := connect(t, s, "", "", "Authorization", spellings[i]+screen)
		c.close()
	}
	_, res := tryConnect(t, http.DefaultClient, s.URL, "", "", "Authorization", spellings[3]+screen)
	tooMany(t, res, "stream opens", 100)
	connect(t, s, s.Token(tenant, models.RoleDisplay, "screen-2"), "")

	mint := func(auth string) *apptest.Response {
		return s.Do(t, http.MethodPost, "/api/v1/stream/tickets", "", nil, "Authorization", auth)
	}
	for i := range 3 { // a bucket of their own: the opens above took none of it
		if r := mint(spellings[i] + screen); r.Status != http.StatusCreated {
			t.Fatalf("mint %d: %d %s", i, r.Status, r.Body)
		}
	}
	r := mint(spellings[3] + screen)
	if r.Status != http.StatusTooManyRequests || !strings.Contains(string(r.Body), "ticket mints") {
		t.Fatalf("4th mint: %d %s", r.Status, r.Body)
	}
	if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 100 {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	if r := mint("Bearer " + s.Token(tenant, models.RoleDisplay, "screen-2")); r.Status != http.StatusCreated {
		t.Fatalf("another identity's mint: %d %s", r.Status, r.Body)
	}
}
