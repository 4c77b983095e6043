package polling_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
	"golang.org/x/time/rate"
)

// spellings are ways to send one token that auth accepts alike: a limit
// keyed on the header's bytes would give each its own bucket.
var spellings = []string{"Bearer %s", "bearer %s", "BEARER %s", "Bearer  %s", "bEaReR %s "}

// expect429 checks a refusal: 429, problem+json of type rate-limited, and a
// Retry-After of at least a second.
func expect429(t *testing.T, what string, st int, h http.Header, body []byte) {
	t.Helper()
	ra, err := strconv.Atoi(h.Get("Retry-After"))
	if st != http.StatusTooManyRequests || err != nil || ra < 1 ||
		!strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") || !strings.Contains(string(body), "rate-limited") {
		t.Fatalf("%s: %d Retry-After %q Content-Type %q: %s", what, st, h.Get("Retry-After"), h.Get("Content-Type"), body)
	}
}

// TestRateLimitKeyedOnIdentity: once a caller's bucket is empty, the same
// token in any spelling of the Authorization header that auth accepts, and
// another token of the same identity, are refused too (429, problem+json,
// Retry-After), on the events endpoint and the lists; another identity of
// the tenant is not.
func TestRateLimitKeyedOnIdentity(t *testing.T) {
	s := apptest.Start(t, func(c *app.Config) { c.Polling.Rate, c.Polling.Burst = rate.Limit(0.01), 5 })
	ctx := context.Background()
	tok := s.Token("rli", models.RoleCoordinator, "flood")
	for i := range 5 {
		if st, _, b, err := rawGet(ctx, s.URL+"/api/v1/events", tok); err != nil || st != http.StatusOK {
			t.Fatalf("request %d of the burst: %d %v %s", i, st, err, b)
		}
	}
	for _, sp := range spellings {
		for _, path := range []string{"/api/v1/events", "/api/v1/patients"} {
			st, h, b, err := rawGet(ctx, s.URL+path, tok, "Authorization", fmt.Sprintf(sp, tok))
			if err != nil {
				t.Fatal(err)
			}
			expect429(t, fmt.Sprintf("%q %s", sp, path), st, h, b)
		}
	}
	// A second token of the same identity (minted later: other bytes).
	other, err := s.App.Auth.Sign(models.Actor{Subject: "flood", TenantID: "rli", Role: models.RoleCoordinator}, 2*time.Hour)
	if err != nil || other == tok {
		t.Fatal("could not mint a second token", err)
	}
	st, h, b, _ := rawGet(ctx, s.URL+"/api/v1/events", other)
	expect429(t, "another token of the identity", st, h, b)
	if st, _, b, _ := rawGet(ctx, s.URL+"/api/v1/events", s.Token("rli", models.RoleCoordinator, "calm")); st != http.StatusOK {
		t.Fatalf("another identity: %d %s", st, b)
	}
}

// waitWaiting waits until the poller holds n long-polls.
func waitWaiting(t *testing.T, s *apptest.Server, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.App.Poller.Waiting() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d long-polls held, want %d", s.App.Poller.Waiting(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLongPollBounds: a verified identity holds at most its role's number
// of long-polls (events and lists alike, whatever the spelling of its
// header), a tenant at most its bound; over either the poll is refused
// with 429, problem+json and Retry-After, at once. One identity at its
// maximum does not keep another from being held under the instance's cap
// (MaxWaiters), which then answers at once as it always did.
func TestLongPollBounds(t *testing.T) {
	s := apptest.Start(t, func(c *app.Config) {
		c.Polling.LongPollsPerPatient, c.Polling.LongPollsPerTenant, c.Polling.MaxWaiters = 2, 3, 4
	})
	ctx := context.Background()
	const wait = "/api/v1/events?since=0&wait=30" // the tenants have no log: held until the wait ends
	a := s.Token("lpb", models.RolePatient, "pat_a")
	hold(s, wait, a)
	hold(s, wait, a, "Authorization", "bearer  "+a)
	waitWaiting(t, s, 2)
	for _, sp := range spellings {
		start := time.Now()
		st, h, b, err := rawGet(ctx, s.URL+wait, a, "Authorization", fmt.Sprintf(sp, a))
		if err != nil || time.Since(start) > 5*time.Second {
			t.Fatalf("%q: %v after %v", sp, err, time.Since(start))
		}
		expect429(t, fmt.Sprintf("a third long-poll spelled %q", sp), st, h, b)
	}
	st, h, b, _ := rawGet(ctx, s.URL+"/api/v1/appointments?since=0&wait=30", a)
	expect429(t, "a third long-poll on a list", st, h, b)
	// A poll without wait is not a long-poll.
	if st, _, b, _ := rawGet(ctx, s.URL+"/api/v1/events?since=0", a); st != http.StatusOK {
		t.Fatalf("a plain poll at the long-poll bound: %d %s", st, b)
	}

	// Another identity of the tenant is held beside it; a third reaches the
	// tenant's bound.
	hold(s, wait, s.Token("lpb", models.RolePatient, "pat_b"))
	waitWaiting(t, s, 3)
	st, h, b, _ = rawGet(ctx, s.URL+wait, s.Token("lpb", models.RolePatient, "pat_c"))
	expect429(t, "over the tenant's bound", st, h, b)

	// Another tenant's caller is held: the instance's cap (4) is reached,
	// and over it a long-poll answers at once, not 429.
	hold(s, wait, s.Token("lpb-2", models.RolePatient, "pat_d"))
	waitWaiting(t, s, 4)
	start := time.Now()
	if st, _, b, _ := rawGet(ctx, s.URL+wait, s.Token("lpb-3", models.RolePatient, "pat_e")); st != http.StatusOK || time.Since(start) > 5*time.Second {
		t.Fatalf("over the instance's cap: %d after %v: %s", st, time.Since(start), b)
	}
	if n := s.App.Poller.Waiting(); n != 4 {
		t.Fatalf("%d held, want 4", n)
	}
}

// TestMadeUpTenantsCostNothing: a platform token polls 10,000 tenant ids
// (2,000 under the race detector) that have no log and long-polls some of
// them briefly: each answers an empty page, and afterwards neither the
// poller nor the relay keeps an entry for any of them.
func TestMadeUpTenantsCostNothing(t *testing.T) {
	s := apptest.Start(t, func(c *app.Config) { c.Polling.Rate, c.Polling.Burst = 1e6, 1e6 })
	admin := s.Token("real", models.RoleAdmin, "u")
	newPatient(t, s, admin, "Real")
	waitHead(t, s, admin, head(t, s, admin))
	op := s.Token("", models.RolePlatform, "operator")
	ctx := context.Background()

	tenants, workers := 10000, 8
	if raceEnabled {
		tenants = 2000
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < tenants; i += workers {
				st, _, b, err := rawGet(ctx, fmt.Sprintf("%s/api/v1/events?since=0&tenant_id=made-up-%d", s.URL, i), op)
				if err != nil || st != http.StatusOK || !strings.Contains(string(b), `"cursor":0`) {
					errs <- fmt.Errorf("made-up-%d: %d %v %s", i, st, err, b)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Long-polls, 16 at a time (the platform identity's bound), for 1 s.
	for round := range 3 {
		var held []<-chan held
		for i := range 16 {
			held = append(held, hold(s, fmt.Sprintf("/api/v1/events?since=0&wait=1&tenant_id=made-up-%d", round*16+i), op))
		}
		waitWaiting(t, s, 16)
		if n := s.App.Poller.Tenants(); n != 16 {
			t.Fatalf("%d tenants with long-polls, want 16", n)
		}
		for _, ch := range held {
			if r := <-ch; r.status != http.StatusOK {
				t.Fatalf("long-poll: %d %s", r.status, r.body)
			}
		}
	}
	waitWaiting(t, s, 0)
	if n := s.App.Poller.Tenants(); n != 0 {
		t.Fatalf("after %d made-up tenants: the poller keeps %d", tenants, n)
	}
	kept := 0
	for i := range tenants {
		if s.App.Relay.Keeps(fmt.Sprintf("made-up-%d", i)) {
			kept++
		}
	}
	if kept != 0 || !s.App.Relay.Keeps("real") {
		// (Its count is no measure on Postgres: other tests' schemas
		// share the database and its NOTIFY channel.)
		t.Fatalf("after %d made-up tenants: the relay keeps %d of them (and the real one: %v)", tenants, kept, s.App.Relay.Keeps("real"))
	}
}
