package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/internal/doctest"
	"github.com/clinicpulse/clinicpulse/internal/testdb"
	"github.com/clinicpulse/clinicpulse/models"
)

// TestBehindLoadBalancer runs the load balancer docs/deploy.md shows for
// several instances (its "balanced" nginx block, read from the document)
// in front of two instances on one Postgres: writes through it land on both
// instances, and a stream through it sees every event once and in order —
// also after the instance holding the stream is stopped, when the stream
// resumes through the balancer, on the other instance, with Last-Event-ID.
func TestBehindLoadBalancer(t *testing.T) {
	testdb.RequirePostgres(t)
	url, dialect := testdb.URL(t)
	a := apptest.StartURL(t, url, dialect, noScan)
	b := apptest.StartURL(t, url, dialect, noScan)
	proxy := doctest.Nginx(t, doctest.DocBlock(t, "deploy.md", "nginx", "balanced"), a.URL, b.URL)
	tok := a.Token("balanced", models.RoleAdmin, "w")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := followers(ctx, tok, func() []string { return []string{proxy} })[0]

	write := func(n int, name string) {
		t.Helper()
		for i := range n {
			req, _ := http.NewRequest(http.MethodPost, proxy+"/api/v1/doctors", strings.NewReader(fmt.Sprintf(`{"name":"Dr. %s %d"}`, name, i)))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("write %d through the balancer: %v", i, err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusCreated {
				t.Fatalf("write %d through the balancer: %d", i, res.StatusCode)
			}
		}
	}
	committed := func(s *apptest.Server) float64 {
		v, err := s.App.Metrics.Gather()
		if err != nil {
			t.Fatal(err)
		}
		return v["clinicpulse_events_committed_total"]
	}
	streaming := func(s *apptest.Server) bool {
		v, err := s.App.Metrics.Gather()
		if err != nil {
			t.Fatal(err)
		}
		return v["clinicpulse_streams_open"] > 0
	}

	write(20, "Before")
	onA, onB := committed(a), committed(b)
	if onA == 0 || onB == 0 {
		t.Errorf("the balancer sent every write to one instance: %v on A, %v on B", onA, onB)
	}
	h := head(t, a, "balanced")
	waitFor(t, "the stream through the balancer", 10*time.Second, func() bool { return f.count() >= int(h) })
	f.check(t, "before", 0, h)

	holder, other := a, b
	if !streaming(a) {
		holder, other = b, a
	}
	holder.Stop()
	write(20, "After")
	h = head(t, other, "balanced")
	waitFor(t, "the stream after an instance stopped", 20*time.Second, func() bool { return f.count() >= int(h) })
	time.Sleep(100 * time.Millisecond)
	f.check(t, "after", 0, h)
	f.mu.Lock()
	conns := f.conns
	f.mu.Unlock()
	if conns < 2 {
		t.Errorf("the stream never reconnected (%d connections)", conns)
	}
	t.Logf("%d events through the balancer on %d connections; the first 20 writes: %v on A, %v on B", h, conns, onA, onB)
}
