package sse_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/sse"
)

// position reads items up to the stream's position frame (id: N and a
// blank line: WHATWG sets the last event ID, dispatches nothing) and
// returns N and the events before it.
func position(t *testing.T, c *conn) (int64, []item) {
	t.Helper()
	var evs []item
	deadline := time.Now().Add(5 * time.Second)
	for {
		it, ok := c.next(time.Until(deadline))
		if !ok {
			t.Fatalf("no position frame (after %d events; stream ended: %v)", len(evs), c.endErr())
		}
		switch it.Kind {
		case "event":
			evs = append(evs, it)
		case "id":
			n := seqOf(it.ID)
			if n < 0 {
				t.Fatalf("position %q", it.ID)
			}
			return n, evs
		}
	}
}

// TestPositionFrame (issue 11, item 2): every stream tells its client
// where it stands before anything else happens: a fresh stream at once
// (after retry:), a replay after its last event when the scope filtered
// out the events after it, a client already at the head again; a replay
// that ends on the head needs no frame (its last id says it).
func TestPositionFrame(t *testing.T) {
	s := apptest.Start(t)
	staff := s.Token(tenant, models.RoleCoordinator, "c")
	alice := s.Create(t, staff, "patients", map[string]any{"name": "Alice"})["id"].(string) // 1
	s.Create(t, staff, "patients", map[string]any{"name": "Bob"})                           // 2: not Alice's
	h := head(t, s, tenant)

	fresh := connect(t, s, staff, "")
	if it, ok := fresh.next(5 * time.Second); !ok || it.Kind != "retry" {
		t.Fatalf("first item %+v", it)
	}
	if it, ok := fresh.next(5 * time.Second); !ok || it.Kind != "id" || seqOf(it.ID) != h {
		t.Fatalf("second item %+v, want the position %d", it, h)
	}

	patient := connect(t, s, s.Token(tenant, models.RolePatient, alice), "since=0")
	at, evs := position(t, patient)
	if len(evs) != 1 || evs[0].envelope(t).Seq != 1 || at != h {
		t.Fatalf("patient replay: %d events (%+v), then position %d; want 1, then %d", len(evs), evs, at, h)
	}

	again := connect(t, s, staff, "", "Last-Event-ID", strconv.FormatInt(h, 10))
	if at, evs := position(t, again); at != h || len(evs) != 0 {
		t.Fatalf("at the head: position %d after %d events", at, len(evs))
	}

	replay := connect(t, s, staff, "since=0")
	got := replay.events(int(h), 5*time.Second)
	doctor(t, s, staff, "Dr. Two")
	got = append(got, replay.event(5*time.Second))
	if !equalSeqs(ids(t, got), seqRange(1, h+1)) {
		t.Fatalf("replay %v", ids(t, got))
	}
	if raw := string(replay.rawBytes()); regexpPosition.MatchString(raw) {
		t.Errorf("a replay that ended on the head sent a position frame: %q", raw)
	}
}

// TestFollowResumesFromPosition: our Go client (sse.Follow, which
// `clinicpulse tail` runs) follows a stream without a cursor; the server
// cuts it (STREAM_MAX_DURATION); an event is committed while the client
// waits to reconnect. The client resumes from the position the first
// stream gave (Last-Event-ID) and gets that event, once.
func TestFollowResumesFromPosition(t *testing.T) {
	s := apptest.Start(t, func(c *app.Config) { c.StreamMaxDuration = 500 * time.Millisecond; c.Heartbeat = time.Minute })
	tok := s.Token(tenant, models.RoleAdmin, "a")
	doctor(t, s, tok, "Dr. Before")
	h := head(t, s, tenant)

	var mu sync.Mutex
	var sent []string // each request's Last-Event-ID
	client := &http.Client{Transport: recordLastEventID{http.DefaultTransport, func(v string) {
		mu.Lock()
		sent = append(sent, v)
		mu.Unlock()
	}}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan int64, 16)
	drops := 0
	done := make(chan error, 1)
	go func() {
		done <- sse.Follow(ctx, sse.ClientConfig{URL: s.URL + "/api/v1/stream", Token: tok, HTTPClient: client,
			MinBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
			OnDrop: func(error) {
				if drops++; drops == 1 {
					// Committed and dispatched while the client waits.
					doctor(t, s, tok, "Dr. During")
					head(t, s, tenant)
				}
			}},
			func(m sse.Message) error {
				var e models.Event
				if err := json.Unmarshal(m.Data, &e); err != nil {
					return err
				}
				got <- e.Seq
				return nil
			})
	}()
	select {
	case seq := <-got:
		if seq != h+1 {
			t.Fatalf("got seq %d, want %d", seq, h+1)
		}
	case <-time.After(10 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("the event committed during the reconnect never arrived (Last-Event-ID sent: %q)", sent)
	}
	select {
	case seq := <-got:
		t.Fatalf("then seq %d", seq)
	case <-time.After(300 * time.Millisecond):
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(sent) < 2 || sent[0] != "" || seqOf(sent[1]) != h {
		t.Fatalf("Last-Event-ID sent %q, want none then %d", sent, h)
	}
}

// recordLastEventID reports each request's Last-Event-ID.
type recordLastEventID struct {
	http.RoundTripper
	record func(string)
}

func (r recordLastEventID) RoundTrip(req *http.Request) (*http.Response, error) {
	r.record(req.Header.Get("Last-Event-ID"))
	return r.RoundTripper.RoundTrip(req)
}

// TestEventSourceResumesFromPosition: the npm eventsource package (WHATWG
// EventSource) connects without a cursor to a stream the server cuts
// (STREAM_MAX_DURATION); an event is committed while it waits its
// retry: delay. It reconnects with the position of its first stream as
// Last-Event-ID and receives the event from the replay.
func TestEventSourceResumesFromPosition(t *testing.T) {
	node := requireNodeClient(t)
	s := apptest.Start(t, func(c *app.Config) { c.StreamMaxDuration = time.Second; c.Heartbeat = time.Minute })
	tok := s.Token(tenant, models.RoleCoordinator, "c")
	doctor(t, s, tok, "Dr. Before")
	h := head(t, s, tenant)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client.mjs", s.URL+"/api/v1/stream", s.URL, tok, fmt.Sprint(h+1), "bearer")
	cmd.Dir = esDir
	cmd.Env = append(os.Environ(), "ES_TIMEOUT_MS=20000")
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

	type line struct {
		Kind        string
		Seq         int64
		N           int
		LastEventID *string
	}
	var connects []line
	var seqs []int64
	committed, done := false, false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("client printed %q", sc.Text())
		}
		switch l.Kind {
		case "connect":
			connects = append(connects, l)
		case "error":
			if !committed {
				// The first stream ended: commit during the retry: wait.
				committed = true
				doctor(t, s, tok, "Dr. During")
				head(t, s, tenant)
			}
		case "event":
			seqs = append(seqs, l.Seq)
		case "done":
			done = true
		case "timeout":
			t.Fatalf("the client timed out with %v after %d connections", seqs, len(connects))
		}
	}
	if !done || !equalSeqs(seqs, []int64{h + 1}) {
		t.Fatalf("the client got %v (done %v), want [%d]", seqs, done, h+1)
	}
	if len(connects) < 2 || connects[0].LastEventID != nil || connects[1].LastEventID == nil ||
		seqOf(*connects[1].LastEventID) != h {
		t.Fatalf("connections %+v: want the second to resume from %d", connects, h)
	}
	if st := replayed(t, s); st == 0 {
		t.Error("the event did not come from the replay")
	}
}

// replayed returns the server's count of replayed event frames.
func replayed(t *testing.T, s *apptest.Server) float64 {
	t.Helper()
	r := s.Do(t, http.MethodGet, "/metrics", "", nil)
	m := regexpReplayed.FindSubmatch(r.Body)
	if m == nil {
		t.Fatalf("no clinicpulse_events_replayed_total in /metrics")
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

var (
	regexpPosition = regexp.MustCompile(`(?m)^id: \d+\n\n`)
	regexpReplayed = regexp.MustCompile(`(?m)^clinicpulse_events_replayed_total (\S+)`)
)
