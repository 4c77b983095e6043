package app_test

import (
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// scrape reads one sample of the Prometheus text exposition.
func scrape(t *testing.T, s *apptest.Server, series string) float64 {
	t.Helper()
	r := s.Do(t, http.MethodGet, "/metrics", "", nil)
	if r.Status != 200 {
		t.Fatalf("/metrics: %d", r.Status)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+-]+)$`).FindSubmatch(r.Body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func TestMetricsMove(t *testing.T) {
	s := apptest.Start(t)
	tok := s.Token("m", models.RoleAdmin, "a")
	committed := scrape(t, s, "clinicpulse_events_committed_total")
	for range 3 {
		s.Create(t, tok, "doctors", map[string]any{"name": "D"})
	}
	deadline := time.Now().Add(5 * time.Second)
	for scrape(t, s, "clinicpulse_events_dispatched_total") < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := scrape(t, s, "clinicpulse_events_committed_total") - committed; got != 3 {
		t.Fatalf("committed moved by %v, want 3", got)
	}
	if got := scrape(t, s, "clinicpulse_events_dispatched_total"); got != 3 {
		t.Fatalf("dispatched = %v, want 3", got)
	}
	if got := scrape(t, s, "clinicpulse_event_dispatch_lag_seconds_count"); got != 3 {
		t.Fatalf("lag observations = %v, want 3", got)
	}
	r := s.Do(t, http.MethodGet, "/api/v1/events?since=0", tok, nil)
	if r.Status != 200 || r.Header.Get("ETag") == "" {
		t.Fatalf("poll: %d", r.Status)
	}
	r = s.Do(t, http.MethodGet, "/api/v1/events?since=0", tok, nil, "If-None-Match", r.Header.Get("ETag"))
	if r.Status != 304 {
		t.Fatalf("conditional poll: %d", r.Status)
	}
	if got := scrape(t, s, `clinicpulse_http_requests_total{method="GET",route="/api/v1/events",status="304"}`); got != 1 {
		t.Fatalf("304 count = %v, want 1", got)
	}
	s.Do(t, http.MethodGet, "/api/v1/doctors/doc_00000000000000000000", tok, nil)
	if got := scrape(t, s, `clinicpulse_http_requests_total{method="GET",route="/api/v1/doctors/:id",status="404"}`); got != 1 {
		t.Fatalf("404 count = %v, want 1", got)
	}

	// The operations view: admins and platform operators only.
	if r := s.Do(t, http.MethodGet, "/api/v1/ops/stats", s.Token("m", models.RoleCoordinator, "c"), nil); r.Status != 403 {
		t.Fatalf("ops stats as coordinator: %d", r.Status)
	}
	var ops struct {
		Instance string
		Current  struct {
			Streams          int64   `json:"streams"`
			PollsPerSecond   float64 `json:"polls_per_second"`
			NotModifiedShare float64 `json:"not_modified_share"`
		}
		History []map[string]any
	}
	r = s.Do(t, http.MethodGet, "/api/v1/ops/stats", tok, nil)
	r.JSON(t, &ops)
	if r.Status != 200 || ops.Instance == "" || len(ops.History) == 0 {
		t.Fatalf("ops stats: %d %s", r.Status, r.Body)
	}
	if ops.Current.PollsPerSecond <= 0 || ops.Current.NotModifiedShare <= 0 {
		t.Fatalf("ops stats do not count the polls: %s", r.Body)
	}
}
