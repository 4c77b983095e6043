package app_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// unlimitedPolls lifts the per-token poll limit: these tests poll in a loop.
func unlimitedPolls(c *app.Config) { c.Polling.Rate, c.Polling.Burst = 1e9, 1e9 }

// xCursor reads a write's X-Cursor: a tagged position ("57.k3f9a2q1"),
// whose seq it returns.
func xCursor(t *testing.T, what string, r *apptest.Response) int64 {
	t.Helper()
	p, err := models.ParsePosition("X-Cursor", r.Header.Get("X-Cursor"))
	if err != nil || p.Seq <= 0 || len(p.Tag) != models.TagLen {
		t.Fatalf("%s: %d, X-Cursor %q, want a tagged position", what, r.Status, r.Header.Get("X-Cursor"))
	}
	return p.Seq
}

// TestReadYourWrites: once a write is answered, every read on the instance
// reflects it — a poll or a list revalidated with the ETag from before the
// write is never 304 — and the write tells its position in X-Cursor: the
// seq of its last event (issue 11 item 5). 200 rounds; on both databases.
func TestReadYourWrites(t *testing.T) {
	s := apptest.Start(t, unlimitedPolls)
	tok := s.Token("ryw", models.RoleCoordinator, "desk-1")
	id := s.Create(t, tok, "patients", map[string]any{"name": "P 0"})["id"].(string)
	var page struct {
		Events []models.Event
		Cursor int64
	}
	r := s.Do(t, http.MethodGet, "/api/v1/events?since=0&limit=1000", tok, nil)
	r.JSON(t, &page)
	cursor := page.Cursor
	for i := range 200 {
		events := fmt.Sprintf("/api/v1/events?since=%d", cursor)
		before := s.Do(t, http.MethodGet, events, tok, nil)
		list := s.Do(t, http.MethodGet, "/api/v1/patients", tok, nil)
		if before.Status != 200 || list.Status != 200 {
			t.Fatalf("round %d: polls %d %d", i, before.Status, list.Status)
		}

		var w *apptest.Response
		switch i % 20 {
		case 7: // a create, then its Idempotency-Key replayed
			key := fmt.Sprintf("k-%d", i)
			w = s.Do(t, http.MethodPost, "/api/v1/patients", tok, map[string]any{"name": "New"}, "Idempotency-Key", key)
			if w.Status != http.StatusCreated {
				t.Fatalf("round %d: create %d %s", i, w.Status, w.Body)
			}
			first := xCursor(t, "create", w)
			w = s.Do(t, http.MethodPost, "/api/v1/patients", tok, map[string]any{"name": "New"}, "Idempotency-Key", key)
			if w.Status != http.StatusCreated || xCursor(t, "replay", w) < first {
				t.Fatalf("round %d: replay %d, X-Cursor %s < %d", i, w.Status, w.Header.Get("X-Cursor"), first)
			}
			var rec map[string]any
			w.JSON(t, &rec)
			w = s.Do(t, http.MethodDelete, "/api/v1/patients/"+rec["id"].(string), tok, nil)
			if w.Status != http.StatusNoContent {
				t.Fatalf("round %d: delete %d %s", i, w.Status, w.Body)
			}
		default:
			w = s.Do(t, http.MethodPatch, "/api/v1/patients/"+id, tok, map[string]any{"name": fmt.Sprintf("P %d", i+1)})
			if w.Status != http.StatusOK {
				t.Fatalf("round %d: patch %d %s", i, w.Status, w.Body)
			}
		}
		at := xCursor(t, "write", w)

		after := s.Do(t, http.MethodGet, events, tok, nil, "If-None-Match", before.Header.Get("ETag"))
		if after.Status != http.StatusOK {
			t.Fatalf("round %d: the events poll after a write answered (X-Cursor %d) is %d: stale", i, at, after.Status)
		}
		after.JSON(t, &page)
		if n := len(page.Events); n == 0 || page.Events[n-1].Seq != at || page.Cursor != at {
			t.Fatalf("round %d: X-Cursor %d, but the poll reads %d events to cursor %d", i, at, n, page.Cursor)
		}
		cursor = page.Cursor
		if l := s.Do(t, http.MethodGet, "/api/v1/patients", tok, nil, "If-None-Match", list.Header.Get("ETag")); l.Status != http.StatusOK {
			t.Fatalf("round %d: the list after a write answered is %d: stale", i, l.Status)
		}
	}
}

// TestWriteVisibilityTimeout: a write whose events are not dispatched
// within WriteVisibilityTimeout is answered anyway (it is committed), with
// its X-Cursor, and counted in clinicpulse_write_visibility_timeouts_total.
func TestWriteVisibilityTimeout(t *testing.T) {
	s := apptest.Start(t, func(c *app.Config) { c.WriteVisibilityTimeout = time.Nanosecond })
	tok := s.Token("ryw-timeout", models.RoleCoordinator, "desk-1")
	for i := 0; scrape(t, s, "clinicpulse_write_visibility_timeouts_total") == 0; i++ {
		if i == 200 {
			t.Fatal("200 writes, none waited past a 1 ns bound")
		}
		r := s.Do(t, http.MethodPost, "/api/v1/doctors", tok, map[string]any{"name": "D"})
		if r.Status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		xCursor(t, "create", r)
	}
}

// TestCursorExposedToBrowsers: a cross-origin page can read X-Cursor.
func TestCursorExposedToBrowsers(t *testing.T) {
	origin := "https://desk.example"
	s := apptest.Start(t, func(c *app.Config) { c.CORSOrigins = []string{origin} })
	tok := s.Token("cors", models.RoleCoordinator, "desk-1")
	r := s.Do(t, http.MethodPost, "/api/v1/doctors", tok, map[string]any{"name": "D"}, "Origin", origin)
	xCursor(t, "create", r)
	exposed := strings.Split(r.Header.Get("Access-Control-Expose-Headers"), ",")
	for i := range exposed {
		exposed[i] = http.CanonicalHeaderKey(strings.TrimSpace(exposed[i]))
	}
	if !slices.Contains(exposed, "X-Cursor") {
		t.Fatalf("Access-Control-Expose-Headers %q", r.Header.Get("Access-Control-Expose-Headers"))
	}
}

// TestOptionsWithCORS: with CORS_ORIGINS set, an OPTIONS that is not a CORS
// preflight (no Origin) is still answered 204 with Allow, as without it
// (RFC 9110 §9.3.7); a preflight gets the CORS answer.
func TestOptionsWithCORS(t *testing.T) {
	origin := "https://desk.example"
	s := apptest.Start(t, func(c *app.Config) { c.CORSOrigins = []string{origin} })
	r := s.Do(t, http.MethodOptions, "/api/v1/queue", "", nil)
	if r.Status != http.StatusNoContent || r.Header.Get("Allow") != "GET, HEAD, POST, OPTIONS" {
		t.Fatalf("OPTIONS without Origin: %d, Allow %q", r.Status, r.Header.Get("Allow"))
	}
	r = s.Do(t, http.MethodOptions, "/api/v1/queue", "", nil, "Origin", origin, "Access-Control-Request-Method", "POST")
	if r.Status != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != origin || !strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight: %d %v", r.Status, r.Header)
	}
}
