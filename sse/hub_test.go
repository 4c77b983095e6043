package sse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/store"
	"github.com/labstack/echo/v4"
)

// memLog is an in-memory change log with the relay's hand-off, for tests
// that need no database: Append publishes to the hub in seq order under
// the same lock Sync takes.
type memLog struct {
	mu     sync.Mutex
	events []models.Event
	hub    *Hub
	reads  int // ReadEvents and LogHead calls
}

func (l *memLog) ReadEvents(_ context.Context, q models.EventQuery) ([]models.Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	var out []models.Event
	for _, e := range l.events {
		if e.Seq > q.After && (q.Until == 0 || e.Seq <= q.Until) && q.Scope.Visible(&e, q.Topics) {
			out = append(out, e)
			if len(out) == q.Limit {
				break
			}
		}
	}
	return out, nil
}

func (l *memLog) LogHead(context.Context, string) (store.Head, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	return store.Head{Seq: int64(len(l.events))}, nil
}

// seqOfID returns the seq of an event id ("8" or "8.k3f9a2q1"), -1 when it
// is not one.
func seqOfID(id string) int64 {
	p, err := models.ParsePosition("id", id)
	if err != nil || id == "" {
		return -1
	}
	return p.Seq
}

func (l *memLog) CheckPosition(_ context.Context, _ string, p models.Position) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	if p.Tag == "" || p.Seq == 0 {
		return nil
	}
	if p.Seq > int64(len(l.events)) || models.EventTag(&l.events[p.Seq-1]) != p.Tag {
		return store.ErrOtherHistory
	}
	return nil
}

func (l *memLog) PositionAt(_ context.Context, _ string, seq int64) (models.Position, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	if seq <= 0 || seq > int64(len(l.events)) {
		return models.Position{Seq: seq}, nil
	}
	return models.EventPosition(&l.events[seq-1]), nil
}

func (l *memLog) Sync(_ string, fn func(int64)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn(int64(len(l.events)))
}

// Append adds events with the next seqs and publishes them.
func (l *memLog) Append(evs ...models.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range evs {
		evs[i].Seq = int64(len(l.events) + 1)
		evs[i].TenantID = "t"
		if evs[i].Type == "" {
			evs[i].Type = models.EventType(evs[i].Entity, models.OpUpdated)
		}
		if evs[i].Data == nil {
			evs[i].Data = json.RawMessage(`{}`)
		}
		l.events = append(l.events, evs[i])
	}
	l.hub.Publish("t", evs)
}

// noLimits removes every bound of Limits.
var noLimits = Limits{PerIdentityStaff: -1, PerIdentityPublic: -1, PerTenant: -1, OpenRate: -1}

// newTestHandler returns a handler on a memLog; without Limits in cfg, it
// has none.
func newTestHandler(cfg Config) (*Handler, *memLog) {
	l := &memLog{}
	cfg.Log, cfg.Relay = l, l
	if cfg.Limits == (Limits{}) {
		cfg.Limits = noLimits
	}
	h := NewHandler(cfg)
	l.hub = h.Hub()
	return h, l
}

func staffEcho(h *Handler, actor models.Actor) *echo.Echo {
	e := echo.New()
	e.GET("/stream", h.Stream, func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			c.SetRequest(r.WithContext(models.NewContextWithActor(r.Context(), actor)))
			return next(c)
		}
	})
	return e
}

// TestHubPublishNeverBlocks: a subscriber that never takes what is
// published is dropped once it is more than Buffer batches behind (its
// write deadline pulled into the past); the others get every batch;
// Publish stays fast.
func TestHubPublishNeverBlocks(t *testing.T) {
	const buffer = 64
	h := NewHub(buffer, time.Second, nil)
	var subs []*subscriber
	var deadlines []*deadlineRecorder
	for range 4 {
		d := &deadlineRecorder{}
		s, _, _ := h.subscribe("t", models.Scope{}, nil, true, d, -1)
		subs = append(subs, s)
		deadlines = append(deadlines, d)
	}
	stuck := subs[0]
	var wg sync.WaitGroup
	got := make([]int, len(subs))
	for i, s := range subs[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range s.wake {
				_ = s.take(func(b *batch) error { got[i+1] += len(b.events); return nil })
			}
		}()
	}
	var slowest time.Duration
	for i := range 1000 {
		start := time.Now()
		h.Publish("t", []models.Event{{Seq: int64(i + 1), Entity: "queue", Type: "queue.updated"}})
		slowest = max(slowest, time.Since(start))
		// The healthy ones keep up (a loaded machine may lag them a little).
		for _, s := range subs[1:] {
			for int64(i+1)-s.taken.Load() > buffer/2 {
				time.Sleep(time.Millisecond)
			}
		}
		if dropped := stuck.dead.Load() && stuck.idx == -1; dropped != (i >= buffer) {
			t.Fatalf("after %d batches: stuck subscriber dropped: %v", i+1, dropped)
		}
	}
	if stuck.taken.Load() != 0 || !deadlines[0].past() {
		t.Fatalf("the stuck subscriber took %d batches; its deadline in the past: %v", stuck.taken.Load(), deadlines[0].past())
	}
	for i, s := range subs[1:] {
		if s.dead.Load() || deadlines[i+1].past() {
			t.Fatal("a healthy subscriber was dropped")
		}
		h.unsubscribe(s)
		close(s.wake) // ends its reader
	}
	wg.Wait()
	for i, n := range got[1:] {
		if n != 1000 {
			t.Errorf("subscriber %d got %d events", i+1, n)
		}
	}
	if st := h.Stats(); st.SlowDisconnects != 1 || st.Batches != 1000 {
		t.Errorf("stats %+v", st)
	}
	t.Logf("slowest Publish to 4 subscribers (one stuck): %v", slowest)
}

type deadlineRecorder struct {
	mu sync.Mutex
	t  time.Time
}

func (d *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.t = t
	return nil
}

func (d *deadlineRecorder) past() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.t.IsZero() && d.t.Before(time.Now())
}

// TestBatchWanted checks the publisher's quick "anything for this
// subscriber?" against Scope.Visible, event by event, on random batches
// (small ones scan, large ones use the patient index).
func TestBatchWanted(t *testing.T) {
	entities := append([]string{models.EntityBoard, "future"}, models.Entities...)
	patients := []string{"", "p1", "p2", "p3"}
	topicSets := []models.Topics{nil, {"queue": true, "board": true}, {"doctors": true}, {"patients": true, "visits": true}, {"board": true}}
	scopes := []models.Scope{{}, {PatientID: "p1"}, {PatientID: "p2"}, {BoardOnly: true}}
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		n := 1 + r.IntN(20)
		evs := make([]models.Event, n)
		for i := range evs {
			evs[i] = models.Event{Seq: int64(i + 1), Entity: entities[r.IntN(len(entities))], PatientID: patients[r.IntN(len(patients))], Type: "x"}
		}
		b := newBatch(evs, discard)
		for _, sc := range scopes {
			for _, tp := range topicSets {
				s := &subscriber{scope: sc, mask: topicsMask(tp), all: tp == nil && sc == (models.Scope{})}
				want := false
				for i := range evs {
					v := sc.Visible(&evs[i], tp)
					if s.sees(b, i) != v {
						t.Fatalf("scope %+v topics %v event %+v: sees %v, Visible %v", sc, tp, evs[i], !v, v)
					}
					want = want || v
				}
				if got := b.wanted(s); got != want {
					t.Fatalf("scope %+v topics %v batch %+v: wanted %v, want %v", sc, tp, evs, got, want)
				}
			}
		}
	}
}

// TestRecent: the hub keeps recent batches within its bounds, and answers
// "everything after cursor" only when it still holds all of it.
func TestRecent(t *testing.T) {
	a := newAudience("t")
	seq := int64(0)
	add := func(n, size int) {
		evs := make([]models.Event, n)
		for i := range evs {
			seq++
			evs[i] = models.Event{Seq: seq, Type: "doctors.updated", Data: json.RawMessage(`"` + strings.Repeat("x", size) + `"`)}
		}
		a.add(newBatch(evs, discard))
	}
	// count returns the batches from b to the tail.
	count := func(b *batch) int {
		n := 0
		for ; b != nil; b = b.next.Load() {
			n++
		}
		return n
	}
	if _, ok := a.since(0); ok {
		t.Fatal("empty: since(0) ok")
	}
	add(3, 10) // 1..3
	add(2, 10) // 4..5
	for cursor, want := range map[int64]int{0: 2, 1: 2, 2: 2, 3: 1, 4: 1, 5: 0} {
		b, ok := a.since(cursor)
		if !ok || count(b) != want {
			t.Errorf("since(%d) = %d batches, %v; want %d", cursor, count(b), ok, want)
		}
	}
	for range recentMaxEvents {
		add(1, 10)
	}
	if a.recentEvents > recentMaxEvents || a.oldest.events[0].Seq != seq-recentMaxEvents+1 {
		t.Fatalf("kept %d events from %d", a.recentEvents, a.oldest.events[0].Seq)
	}
	if _, ok := a.since(seq - recentMaxEvents - 1); ok {
		t.Error("since before the oldest kept: ok")
	}
	if b, ok := a.since(seq - recentMaxEvents); !ok || count(b) != recentMaxEvents {
		t.Errorf("since the oldest kept: %d, %v", count(b), ok)
	}
	add(2, 600<<10) // over the byte bound: older batches go, this one stays
	if a.recentBytes > recentMaxBytes+2*(600<<10) || count(a.oldest) > 2 || a.tail.lastSeq() != seq {
		t.Fatalf("kept %d batches, %d bytes", count(a.oldest), a.recentBytes)
	}
	if a.published.Load() != a.tail.n || a.tail.n != recentMaxEvents+3 {
		t.Fatalf("published %d, tail %d", a.published.Load(), a.tail.n)
	}
}

var discard = slog.New(slog.DiscardHandler)

// respRecorder is a ResponseWriter for synctest bubbles: it records what
// is flushed and when (on the bubble's clock).
type respRecorder struct {
	mu      sync.Mutex
	header  http.Header
	buf     bytes.Buffer
	flushes []flushAt
}

type flushAt struct {
	at   time.Time
	text string
}

func (r *respRecorder) Header() http.Header { return r.header }
func (r *respRecorder) WriteHeader(int)     {}
func (r *respRecorder) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(b)
}
func (r *respRecorder) FlushError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushes = append(r.flushes, flushAt{time.Now(), r.buf.String()})
	r.buf.Reset()
	return nil
}
func (r *respRecorder) SetWriteDeadline(time.Time) error { return nil }

func (r *respRecorder) snapshot() []flushAt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]flushAt(nil), r.flushes...)
}

// TestClock runs streams on the bubble's fake clock: heartbeats every
// HEARTBEAT (the first within 1.5 of it), the response ended after 85–100%
// of STREAM_MAX_DURATION with a last comment, and nothing left running.
func TestClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const hb, maxd = 15 * time.Second, 10 * time.Minute
		h, l := newTestHandler(Config{Heartbeat: hb, MaxDuration: maxd})
		e := staffEcho(h, models.Actor{Subject: "a", TenantID: "t", Role: models.RoleAdmin})
		start := time.Now()
		const n = 20
		recs := make([]*respRecorder, n)
		var wg sync.WaitGroup
		for i := range recs {
			recs[i] = &respRecorder{header: http.Header{}}
			req := httptest.NewRequest(http.MethodGet, "/stream", nil)
			wg.Add(1)
			go func() { defer wg.Done(); e.ServeHTTP(recs[i], req) }()
		}
		time.Sleep(time.Minute)
		l.Append(models.Event{Entity: "queue"})
		wg.Wait()
		for i, r := range recs {
			fl := r.snapshot()
			if !strings.HasPrefix(fl[0].text, "retry: ") || !fl[0].at.Equal(start) {
				t.Fatalf("stream %d: first flush %+v", i, fl[0])
			}
			last := fl[len(fl)-1]
			if last.text != ": stream time limit; reconnect\n\n" {
				t.Fatalf("stream %d: last flush %q", i, last.text)
			}
			if d := last.at.Sub(start); d < maxd*85/100 || d > maxd {
				t.Errorf("stream %d ended after %v", i, d)
			}
			var beats []time.Duration
			events := 0
			for _, f := range fl[1 : len(fl)-1] {
				switch f.text {
				case ": heartbeat\n\n":
					beats = append(beats, f.at.Sub(start))
				default:
					if !strings.HasPrefix(f.text, "id: 1.") || !strings.Contains(f.text, "\nevent: queue.updated\n") || f.at.Sub(start) != time.Minute {
						t.Errorf("stream %d: flush %+v", i, f)
					}
					events++
				}
			}
			if events != 1 {
				t.Errorf("stream %d: %d events", i, events)
			}
			if beats[0] > hb*3/2 {
				t.Errorf("stream %d: first heartbeat after %v", i, beats[0])
			}
			for j := 1; j < len(beats); j++ {
				if d := beats[j] - beats[j-1]; d < hb-h.hub.period || d > hb+h.hub.period {
					t.Errorf("stream %d: heartbeat interval %v", i, d)
				}
			}
		}
		h.Shutdown(context.Background())
		synctest.Wait()
	})
}

// TestShutdownSynctest: Shutdown ends idle streams at once, each with a
// last comment, and stops the hub's clock.
func TestShutdownSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _ := newTestHandler(Config{Heartbeat: time.Second})
		e := staffEcho(h, models.Actor{Subject: "a", TenantID: "t", Role: models.RoleAdmin})
		var wg sync.WaitGroup
		recs := make([]*respRecorder, 5)
		for i := range recs {
			recs[i] = &respRecorder{header: http.Header{}}
			wg.Add(1)
			go func() { defer wg.Done(); e.ServeHTTP(recs[i], httptest.NewRequest(http.MethodGet, "/stream", nil)) }()
		}
		time.Sleep(5 * time.Second)
		start := time.Now()
		h.Shutdown(context.Background())
		wg.Wait()
		if d := time.Since(start); d != 0 {
			t.Errorf("shutdown took %v", d)
		}
		for _, r := range recs {
			fl := r.snapshot()
			if last := fl[len(fl)-1]; last.text != ": server shutting down; reconnect\n\n" {
				t.Errorf("last flush %q", last.text)
			}
		}
		// A stream that starts now is told to go elsewhere.
		r := &respRecorder{header: http.Header{}}
		e.ServeHTTP(r, httptest.NewRequest(http.MethodGet, "/stream", nil))
		if fl := r.snapshot(); len(fl) != 1 || !strings.HasSuffix(fl[0].text, ": server shutting down\n\n") {
			t.Errorf("late stream: %+v", fl)
		}
		synctest.Wait()
	})
}

// TestWriteDeadline: a client that stops reading is disconnected by the
// per-write deadline even when its queue never fills (one huge batch).
func TestWriteDeadline(t *testing.T) {
	h, l := newTestHandler(Config{Heartbeat: time.Minute, WriteTimeout: 300 * time.Millisecond})
	srv := httptest.NewServer(staffEcho(h, models.Actor{Subject: "a", TenantID: "t", Role: models.RoleAdmin}))
	defer srv.Close()
	defer h.Shutdown(context.Background())

	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(res.Body).ReadString('\n') // retry: …, then stop reading
	if !strings.HasPrefix(line, "retry: ") {
		t.Fatalf("first line %q", line)
	}
	big := json.RawMessage(`"` + strings.Repeat("x", 256<<10) + `"`)
	evs := make([]models.Event, 64) // 16 MiB in one batch: more than the socket buffers
	for i := range evs {
		evs[i] = models.Event{Entity: "doctors", Data: big}
	}
	start := time.Now()
	l.Append(evs...)
	for h.hub.Stats().Streams > 0 {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the stalled stream is still open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := h.hub.Stats()
	t.Logf("stalled stream dropped %v after the batch, by its write deadline (stats %+v)", time.Since(start).Round(time.Millisecond), st)
	if st.SlowDisconnects != 0 {
		t.Errorf("dropped by overflow, not by the deadline")
	}
	_, _ = io.Copy(io.Discard, br)
}

// readStream reads a stream's frames until it holds n events.
func readStream(t *testing.T, url, lastEventID string, n int) []WireEvent {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	p := NewWireParser()
	buf := make([]byte, 4096)
	for len(p.Events) < n {
		k, err := res.Body.Read(buf)
		p.Feed(buf[:k])
		if err != nil {
			t.Fatalf("after %d events: %v", len(p.Events), err)
		}
	}
	return p.Events
}

// TestReplayFromMemory: a cursor the hub still holds replays from its
// recent batches without touching the log, and gives what the log gives.
func TestReplayFromMemory(t *testing.T) {
	h, l := newTestHandler(Config{Heartbeat: time.Minute})
	srv := httptest.NewServer(staffEcho(h, models.Actor{Subject: "a", TenantID: "t", Role: models.RoleAdmin}))
	defer srv.Close()
	defer h.Shutdown(context.Background())
	for range 5 {
		l.Append(models.Event{Entity: "queue"}) // 1..5: before any stream
	}
	first := readStream(t, srv.URL+"/stream", "0", 5) // the hub learns of the tenant
	for range 5 {
		l.Append(models.Event{Entity: "queue"}) // 6..10: remembered
	}
	l.mu.Lock()
	l.reads = 0
	l.mu.Unlock()
	fromMemory := readStream(t, srv.URL+"/stream", "6", 4)
	l.mu.Lock()
	reads := l.reads
	l.mu.Unlock()
	if reads != 0 {
		t.Errorf("a replay from 6 read the log %d times", reads)
	}
	fromLog := readStream(t, srv.URL+"/stream", "2", 8)
	l.mu.Lock()
	reads = l.reads
	l.mu.Unlock()
	if reads == 0 {
		t.Error("a replay from 2 did not read the log")
	}
	if fmt.Sprint(fromMemory) != fmt.Sprint(fromLog[4:]) || seqOfID(first[0].LastEventID) != 1 || seqOfID(fromLog[0].LastEventID) != 3 {
		t.Fatalf("memory %v\nlog %v", fromMemory, fromLog)
	}
}

// TestSkipEndsStreams: when the relay jumps a pruned hole, the tenant's
// streams end (writer-driven and on their own goroutine alike) and the hub
// no longer replays from memory across the hole.
func TestSkipEndsStreams(t *testing.T) {
	for _, noHijack := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoHijack=%v", noHijack), func(t *testing.T) {
			h, l := newTestHandler(Config{Heartbeat: time.Minute, NoHijack: noHijack, Writers: 3})
			srv := httptest.NewServer(staffEcho(h, models.Actor{Subject: "a", TenantID: "t", Role: models.RoleAdmin}))
			defer srv.Close()
			defer h.Shutdown(context.Background())
			l.Append(models.Event{Entity: "queue"})
			res, err := http.Get(srv.URL + "/stream?since=0")
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			p := NewWireParser()
			buf := make([]byte, 4096)
			for len(p.Events) < 1 {
				k, err := res.Body.Read(buf)
				p.Feed(buf[:k])
				if err != nil {
					t.Fatal(err)
				}
			}
			l.Append(models.Event{Entity: "queue"}) // 2: remembered
			for len(p.Events) < 2 {
				k, err := res.Body.Read(buf)
				p.Feed(buf[:k])
				if err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			h.hub.Skip("t", 2, 5)
			done := make(chan error, 1)
			go func() { _, err := io.Copy(io.Discard, res.Body); done <- err }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("the stream did not end after Skip")
			}
			t.Logf("stream ended %v after Skip", time.Since(start).Round(time.Microsecond))
			// (The audience may be gone already: after the hole it
			// remembered nothing, and its last stream left.)
			h.hub.mu.RLock()
			a := h.hub.tenants["t"]
			h.hub.mu.RUnlock()
			if a != nil {
				a.mu.Lock()
				_, ok := a.since(1)
				a.mu.Unlock()
				if ok {
					t.Error("the hub still replays from memory across the hole")
				}
			}
			for h.hub.Stats().Streams > 0 {
				if time.Since(start) > 5*time.Second {
					t.Fatalf("%d streams still counted", h.hub.Stats().Streams)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}

// TestSlowReader: a client that reads slowly through a small socket buffer
// fills it again and again; each time a goroutine finishes the write and
// hands the stream back to its writer. It gets every event once, in
// order, and is never dropped.
func TestSlowReader(t *testing.T) {
	h, l := newTestHandler(Config{Heartbeat: time.Minute, Writers: 3})
	srv := httptest.NewUnstartedServer(staffEcho(h, models.Actor{Subject: "a", TenantID: "t", Role: models.RoleAdmin}))
	srv.Listener = smallSendBuffers{srv.Listener}
	srv.Start()
	defer srv.Close()
	defer h.Shutdown(context.Background())
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return err
	}}
	c, err := d.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
	for h.hub.Stats().Streams < 1 {
		time.Sleep(time.Millisecond)
	}
	const events = 200
	big := json.RawMessage(`"` + strings.Repeat("x", 16<<10) + `"`)
	// The writer stays within Buffer batches of the reader (further
	// behind, the stream is dropped: TestStalledClient).
	var got atomic.Int64
	go func() {
		for i := range events {
			for int64(i)-got.Load() > DefaultBuffer/2 {
				time.Sleep(100 * time.Microsecond)
			}
			l.Append(models.Event{Entity: "doctors", Data: big}) // 3.2 MiB in all
		}
	}()
	p := NewWireParser()
	buf := make([]byte, 4096)
	start := time.Now()
	for len(p.Events) < events {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		k, err := c.Read(buf)
		p.Feed(buf[:k])
		got.Store(int64(len(p.Events)))
		if err != nil {
			t.Fatalf("after %d events: %v", len(p.Events), err)
		}
		time.Sleep(50 * time.Microsecond)
	}
	for i, e := range p.Events {
		if seqOfID(e.LastEventID) != int64(i+1) {
			t.Fatalf("event %d has id %q", i, e.LastEventID)
		}
	}
	st := h.hub.Stats()
	backlogs := h.hub.stats.backlogs.Load()
	t.Logf("%d events of 16 KiB in %v; the socket's buffer was full %d times", events, time.Since(start).Round(time.Millisecond), backlogs)
	if backlogs == 0 {
		t.Error("the socket's buffer never filled: the test did not test the backlog")
	}
	if st.SlowDisconnects != 0 || st.Streams != 1 {
		t.Errorf("stats %+v", st)
	}
}

// smallSendBuffers gives accepted connections an 8 KiB send buffer, so
// that a client that reads slowly fills it.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(8 << 10)
	}
	return c, err
}

// TestForgetIdleTenant: a tenant nobody follows keeps nothing in the hub:
// at once when it remembers no recent batches, after forgetAfter when it
// does (the clock's sweep); streams of both kinds count in and out of
// their audience once; a client that comes back replays from the log.
func TestForgetIdleTenant(t *testing.T) {
	h, l := newTestHandler(Config{Heartbeat: time.Minute})
	h.hub.forgetAfter = 0
	srv := httptest.NewServer(staffEcho(h, models.Actor{Subject: "a", TenantID: "t", Role: models.RoleAdmin}))
	defer srv.Close()
	defer h.Shutdown(context.Background())
	tenants := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for h.hub.Stats().Tenants != want {
			if time.Now().After(deadline) {
				t.Fatalf("the hub holds %d tenants, want %d", h.hub.Stats().Tenants, want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	recent := func(cursor int64) bool {
		h.hub.mu.RLock()
		a := h.hub.tenants["t"]
		h.hub.mu.RUnlock()
		if a == nil {
			return false
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		_, ok := a.since(cursor)
		return ok
	}
	subscribe := func() (s *subscriber) {
		l.Sync("t", func(int64) { s, _, _ = h.hub.subscribe("t", models.Scope{}, nil, true, nil, -1) })
		return s
	}

	l.Append(models.Event{Entity: "queue"}) // 1: no audience yet
	readStream(t, srv.URL+"/stream", "0", 1)
	// The client left, and the tenant remembered nothing.
	tenants(0)
	l.Append(models.Event{Entity: "queue"}) // 2: nobody follows
	tenants(0)

	s := subscribe()
	l.Append(models.Event{Entity: "queue"}) // 3: followed: remembered
	if !recent(2) {
		t.Fatal("a followed tenant forgot its recent batch")
	}
	a := s.a
	h.hub.unsubscribe(s)
	h.hub.unsubscribe(s)
	if n := a.streams.Load(); n != 0 {
		t.Fatalf("%d streams counted after unsubscribing twice", n)
	}
	tenants(0) // forgetAfter 0: gone with its last stream, memory and all

	h.hub.forgetAfter = time.Hour
	s = subscribe()
	l.Append(models.Event{Entity: "queue"}) // 4: remembered
	h.hub.unsubscribe(s)
	h.hub.sweep(time.Now())
	if tenants(1); !recent(3) {
		t.Fatal("a tenant idle for less than forgetAfter forgot its recent batch")
	}
	h.hub.sweep(time.Now().Add(2 * time.Hour))
	tenants(0)

	// A client that comes back replays 2..4 from the log, the same events.
	if evs := readStream(t, srv.URL+"/stream", "1", 3); seqOfID(evs[0].LastEventID) != 2 || seqOfID(evs[2].LastEventID) != 4 {
		t.Fatalf("replay %v", evs)
	}
}

// TestBatchForms: a batch keeps one encoding for staff; display and
// patient audiences get the same frames with actor "" (encoded on their
// first use, once, and none at all when no event names an actor).
func TestBatchForms(t *testing.T) {
	evs := []models.Event{
		{Seq: 1, Type: "queue.board", Entity: models.EntityBoard, Actor: "jane.doe@clinic-a.example", Data: json.RawMessage(`{"waiting":[1]}`)},
		{Seq: 2, Type: "queue.updated", Entity: models.EntityQueue, Data: json.RawMessage(`{}`)},
	}
	b := newBatch(evs, discard)
	if b.anon.Load() != nil {
		t.Fatal("a redacted form before anyone asked")
	}
	staff := b.form(models.Scope{})
	if staff != &b.frameSet || !bytes.Contains(staff.frames, []byte(`"actor":"jane.doe@clinic-a.example"`)) {
		t.Fatalf("staff frames %q", staff.frames)
	}
	if b.anon.Load() != nil {
		t.Fatal("a staff delivery encoded the redacted form")
	}
	display := b.form(models.Scope{BoardOnly: true})
	if patient := b.form(models.Scope{PatientID: "p1"}); patient != display {
		t.Error("the redacted form was encoded twice")
	}
	p := NewWireParser()
	p.Feed(display.frames)
	if len(p.Events) != 2 || bytes.Contains(display.frames, []byte("jane")) {
		t.Fatalf("display frames %q", display.frames)
	}
	for i, e := range p.Events {
		var env models.Event
		if err := json.Unmarshal([]byte(e.Data), &env); err != nil || env.Actor != "" || env.Seq != int64(i+1) {
			t.Fatalf("display event %d: %+v %v", i, env, err)
		}
		start, end := display.frame(i)
		if got := string(display.frames[start:end]); !strings.HasPrefix(got, fmt.Sprintf("id: %d.", i+1)) {
			t.Fatalf("frame %d: %q", i, got)
		}
	}
	// No actor in the batch: the staff frames serve everyone.
	b = newBatch([]models.Event{{Seq: 3, Type: "queue.board", Entity: models.EntityBoard, Data: json.RawMessage(`{}`)}}, discard)
	if b.form(models.Scope{BoardOnly: true}) != &b.frameSet {
		t.Error("a batch without actors was encoded again")
	}
}
