package sse_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/internal/nodetest"
	"github.com/clinicpulse/clinicpulse/models"
)

const esDir = "testdata/eventsource"

// requireNodeClient readies node and the locked npm packages (nodetest.Require).
func requireNodeClient(t *testing.T) string {
	t.Helper()
	return nodetest.Require(t, esDir, "eventsource", "eventsource client test")
}

// TestEventSourceClient: a client we did not write, the npm eventsource
// package (WHATWG EventSource), follows the stream through a proxy that
// cuts its first two connections (after 0.6–0.9 s each). As a browser would, it opens each
// connection with a fresh single-use ticket and the same URL (?since=0),
// reconnects after the server's retry: delay with Last-Event-ID, which wins
// over since, and ends with every event exactly once, in order.
func TestEventSourceClient(t *testing.T) {
	node := requireNodeClient(t)
	s := apptest.Start(t)
	tok := s.Token(tenant, models.RoleCoordinator, "c")
	proxy := newCutProxy(t, s.Listener.Addr().String(), 600*time.Millisecond, 900*time.Millisecond, 2)
	const n = 80

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client.mjs", proxy.URL()+"/api/v1/stream?since=0", s.URL, tok, fmt.Sprint(n), "ticket")
	cmd.Dir = esDir
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cancel()

	// Write while the client follows, across its cuts.
	werr := make(chan error, 1)
	go func() {
		for i := range n {
			if err := post(http.DefaultClient, s.URL, tok, "doctors", map[string]any{"name": fmt.Sprintf("Dr. %d", i)}); err != nil {
				werr <- err
				return
			}
			time.Sleep(40 * time.Millisecond)
		}
		werr <- nil
	}()

	type line struct {
		Kind, ID, Type, Message string
		Seq                     int64
		N, Connections          int
		LastEventID             *string
	}
	var seqs []int64
	var connects []line
	done := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("client printed %q", sc.Text())
		}
		switch l.Kind {
		case "connect":
			connects = append(connects, l)
		case "event":
			if l.Type != "doctors.created" || seqOf(l.ID) != l.Seq {
				t.Errorf("event %+v", l)
			}
			seqs = append(seqs, l.Seq)
		case "done":
			done = true
		case "timeout":
			t.Fatalf("the client timed out with %v", seqs)
		}
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !done {
		t.Fatalf("the client ended without the last event: %v", seqs)
	}
	if !equalSeqs(seqs, seqRange(1, n)) {
		t.Fatalf("the client got %v, want 1..%d once each in order", seqs, n)
	}
	var resumed []string
	for _, c := range connects[1:] {
		if c.LastEventID == nil {
			t.Errorf("reconnection %d without Last-Event-ID", c.N)
		} else {
			resumed = append(resumed, *c.LastEventID)
		}
	}
	// The server's retry: is 1–5 s, so the second cut may come after the
	// last event; one is the point.
	if len(connects) < 2 || proxy.cut.Load() < 1 {
		t.Fatalf("%d connections, %d cuts: the cuts did not happen", len(connects), proxy.cut.Load())
	}
	t.Logf("eventsource got %d events once each over %d connections (resumed after ids %s)", len(seqs), len(connects), strings.Join(resumed, ", "))
}
