package sse_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// item is one thing read from a stream: a retry line, a comment, an event
// (dispatched at its blank line) or a position (an id without data).
type item struct {
	Kind  string // "retry", "comment", "event", "id" (a frame with an id and no data)
	Text  string // retry value or comment text
	ID    string
	Event string
	Data  string
	At    time.Time
}

// envelope decodes an event's data.
func (it item) envelope(t testing.TB) models.Event {
	t.Helper()
	var e models.Event
	if err := json.Unmarshal([]byte(it.Data), &e); err != nil {
		t.Fatalf("event %s data %q: %v", it.ID, it.Data, err)
	}
	// An event's id is its position: its seq and its tag.
	if want := models.EventPosition(&e).String(); it.ID != want {
		t.Fatalf("event id %q, want %q (the position of %s)", it.ID, want, it.Data)
	}
	return e
}

// seqOf returns the seq of an event id ("8" or "8.k3f9a2q1"), -1 when it is
// not one.
func seqOf(id string) int64 {
	p, err := models.ParsePosition("id", id)
	if err != nil || id == "" {
		return -1
	}
	return p.Seq
}

// conn is a test client's stream: a goroutine parses the body into items.
type conn struct {
	t      testing.TB
	res    *http.Response
	items  chan item
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	raw bytes.Buffer
	err error // why the body ended: io.EOF for a clean end
}

// connect opens GET /api/v1/stream with a bearer token (if any), the query
// and headers (name, value pairs) and fails unless it answers 200.
func connect(t testing.TB, s *apptest.Server, token, query string, headers ...string) *conn {
	t.Helper()
	c, res := tryConnect(t, http.DefaultClient, s.URL, token, query, headers...)
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		t.Fatalf("stream %s: %d %s", query, res.StatusCode, b)
	}
	return c
}

func tryConnect(t testing.TB, client *http.Client, base, token, query string, headers ...string) (*conn, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	u := base + "/api/v1/stream"
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("stream %s: %v", query, err)
	}
	c := &conn{t: t, res: res, items: make(chan item, 100000), cancel: cancel, done: make(chan struct{})}
	if res.StatusCode == http.StatusOK {
		go c.read()
		t.Cleanup(c.close)
	} else {
		cancel()
	}
	return c, res
}

func (c *conn) read() {
	defer close(c.done)
	defer close(c.items)
	r := bufio.NewReader(c.res.Body)
	var cur item
	hasData := false
	for {
		line, err := r.ReadString('\n')
		c.mu.Lock()
		c.raw.WriteString(line)
		if err != nil {
			c.err = err
		}
		c.mu.Unlock()
		if err != nil {
			return
		}
		if strings.ContainsRune(line, '\r') {
			c.mu.Lock()
			c.err = fmt.Errorf("CR on the wire: %q", line)
			c.mu.Unlock()
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if hasData {
				cur.Kind, cur.At = "event", time.Now()
				c.items <- cur
			} else if cur.ID != "" {
				c.items <- item{Kind: "id", ID: cur.ID, At: time.Now()}
			}
			cur, hasData = item{}, false
		case strings.HasPrefix(line, ":"):
			c.items <- item{Kind: "comment", Text: strings.TrimPrefix(line[1:], " "), At: time.Now()}
		case strings.HasPrefix(line, "retry: "):
			c.items <- item{Kind: "retry", Text: strings.TrimPrefix(line, "retry: "), At: time.Now()}
		case strings.HasPrefix(line, "id: "):
			cur.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.Data, hasData = strings.TrimPrefix(line, "data: "), true
		default:
			c.mu.Lock()
			c.err = fmt.Errorf("unexpected line %q", line)
			c.mu.Unlock()
			return
		}
	}
}

// next returns the next item, false when the stream ended or d passed.
func (c *conn) next(d time.Duration) (item, bool) {
	select {
	case it, ok := <-c.items:
		return it, ok
	case <-time.After(d):
		return item{}, false
	}
}

// event returns the next event, skipping comments; it fails the test after d.
func (c *conn) event(d time.Duration) item {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		it, ok := c.next(time.Until(deadline))
		if !ok {
			c.t.Fatalf("no event within %v (stream ended: %v)", d, c.endErr())
		}
		if it.Kind == "event" {
			return it
		}
	}
}

// events returns the next n events.
func (c *conn) events(n int, d time.Duration) []item {
	c.t.Helper()
	out := make([]item, 0, n)
	deadline := time.Now().Add(d)
	for len(out) < n {
		out = append(out, c.event(time.Until(deadline)))
	}
	return out
}

// quiet fails if an event arrives within d.
func (c *conn) quiet(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		it, ok := c.next(time.Until(deadline))
		if !ok {
			return
		}
		if it.Kind == "event" {
			c.t.Fatalf("unexpected event %s %s %s", it.ID, it.Event, it.Data)
		}
	}
}

// waitEnd waits for the body to end and returns why (io.EOF: cleanly).
func (c *conn) waitEnd(d time.Duration) error {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(d):
		c.t.Fatalf("stream still open after %v", d)
	}
	return c.endErr()
}

func (c *conn) endErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *conn) rawBytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.raw.Bytes())
}

func (c *conn) close() {
	c.cancel()
	c.res.Body.Close()
	<-c.done
}

// ids returns the seqs of events.
func ids(t testing.TB, items []item) []int64 {
	out := make([]int64, len(items))
	for i, it := range items {
		out[i] = it.envelope(t).Seq
	}
	return out
}

func seqRange(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func equalSeqs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// doctor creates a doctor: one doctors.created event.
func doctor(t testing.TB, s *apptest.Server, token, name string) string {
	t.Helper()
	return s.Create(t, token, "doctors", map[string]any{"name": name})["id"].(string)
}

// head returns the tenant's dispatched head, waiting for the relay to
// catch up with the log.
func head(t testing.TB, s *apptest.Server, tenant string) int64 {
	t.Helper()
	h, err := s.App.Store.LogHead(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.App.Relay.Head(tenant) < h.Seq {
		if time.Now().After(deadline) {
			t.Fatalf("relay stuck at %d < %d", s.App.Relay.Head(tenant), h.Seq)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return h.Seq
}

func runtime_NumGoroutine() int { return runtime.NumGoroutine() }

func goroutineDump() string {
	b := make([]byte, 1<<20)
	return string(b[:runtime.Stack(b, true)])
}
