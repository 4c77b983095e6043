package sse

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/api"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/labstack/echo/v4"
)

// actorEcho serves GET and HEAD /stream as the actor that actorOf names
// for each request (the app's authentication stands in front of it).
func actorEcho(h *Handler, actorOf func(*http.Request) models.Actor) *echo.Echo {
	e := echo.New()
	e.HTTPErrorHandler = api.ErrorHandler(discard)
	mw := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			c.SetRequest(r.WithContext(models.NewContextWithActor(r.Context(), actorOf(r))))
			return next(c)
		}
	}
	e.GET("/stream", h.Stream, mw)
	e.HEAD("/stream", h.Stream, mw)
	return e
}

// openPosition opens a stream over a raw connection and reads until its
// position frame (id: N, a blank line) has arrived: the stream is
// registered and started. The caller closes the connection.
func openPosition(addr, query, lastEventID string) (net.Conn, int64, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, 0, err
	}
	req := "GET /stream" + query + " HTTP/1.1\r\nHost: x\r\n"
	if lastEventID != "" {
		req += "Last-Event-ID: " + lastEventID + "\r\n"
	}
	if _, err := c.Write([]byte(req + "\r\n")); err != nil {
		c.Close()
		return nil, 0, err
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, 0, err
	}
	p := NewWireParser()
	buf := make([]byte, 512)
	for len(p.Positions) == 0 {
		n, err := res.Body.Read(buf)
		p.Feed(buf[:n])
		if err != nil {
			c.Close()
			return nil, 0, fmt.Errorf("before the position: %w", err)
		}
	}
	at := seqOfID(p.Positions[0].LastEventID)
	if at < 0 {
		return c, at, fmt.Errorf("position %q", p.Positions[0].LastEventID)
	}
	return c, at, nil
}

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	var m runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestEvictIdleTenants: a platform operator opens and closes a stream for
// each of 10,000 made-up tenants (issue 10, item 6). The hub keeps nothing
// of them once their streams are gone and the idle period (200 ms here)
// has passed: the clock's sweep brings its tenant count back to 0 and the
// heap to where it was.
func TestEvictIdleTenants(t *testing.T) {
	const n = 10000
	h, _ := newTestHandler(Config{Heartbeat: 100 * time.Millisecond})
	h.hub.forgetAfter = 200 * time.Millisecond
	srv := httptest.NewServer(actorEcho(h, func(r *http.Request) models.Actor {
		return models.Actor{Subject: "op", TenantID: r.URL.Query().Get("tenant_id"), Role: models.RolePlatform}
	}))
	defer srv.Close()
	defer h.Shutdown(context.Background())
	addr := srv.Listener.Addr().String()

	waitIdle := func() {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for st := h.hub.Stats(); st.Tenants != 0 || st.Streams != 0; st = h.hub.Stats() {
			if time.Now().After(deadline) {
				t.Fatalf("hub still holds %d tenants, %d streams", st.Tenants, st.Streams)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	open := func(from, to int) {
		t.Helper()
		var wg sync.WaitGroup
		var failed atomic.Value
		next := atomic.Int64{}
		next.Store(int64(from))
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1) - 1; i < int64(to); i = next.Add(1) - 1 {
					c, at, err := openPosition(addr, fmt.Sprintf("?tenant_id=made-up-%d", i), "")
					if err != nil {
						failed.CompareAndSwap(nil, err)
						return
					}
					if at != 0 {
						failed.CompareAndSwap(nil, fmt.Errorf("tenant %d: position %d", i, at))
					}
					c.Close()
				}
			}()
		}
		wg.Wait()
		if err := failed.Load(); err != nil {
			t.Fatal(err)
		}
	}
	open(0, 200) // warm up: pools, the writers, the clock
	waitIdle()
	before := heapInUse()
	start := time.Now()
	open(200, 200+n)
	opened := time.Since(start)
	waitIdle()
	after := heapInUse()
	st := h.hub.Stats()
	t.Logf("%d made-up tenants opened and closed in %v; heap %d → %d KiB; %d evictions", n, opened.Round(time.Millisecond),
		before>>10, after>>10, st.Evictions)
	if st.Evictions < int64(n) {
		t.Errorf("%d evictions for %d tenants", st.Evictions, n)
	}
	// Kept, each tenant's audience, tail and map entry were ~0.7 KiB.
	if after > before+uint64(n)*64 {
		t.Errorf("the heap grew by %d KiB for %d tenants nobody follows", (after-before)>>10, n)
	}
}

// TestEvictionRace: streams that subscribe while the hub evicts their
// tenant, with batches being published all along, get every event once,
// in order, from the position they start at (a cursor, or the position
// frame of a fresh stream). Both kinds of stream; run with -race.
func TestEvictionRace(t *testing.T) {
	for _, noHijack := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoHijack=%v", noHijack), func(t *testing.T) {
			h, l := newTestHandler(Config{Heartbeat: time.Minute, NoHijack: noHijack, Writers: 2})
			h.hub.forgetAfter = 0 // evict at every last leave, recent batches or not
			srv := httptest.NewServer(staffEcho(h, models.Actor{Subject: "a", TenantID: "t", Role: models.RoleAdmin}))
			defer srv.Close()
			defer h.Shutdown(context.Background())

			stop := make(chan struct{})
			var bg sync.WaitGroup
			bg.Add(2)
			go func() { // the relay
				defer bg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					evs := make([]models.Event, 1+rand.IntN(3))
					for i := range evs {
						evs[i] = models.Event{Entity: "queue"}
					}
					l.Append(evs...)
					// (Slow enough that a replay never falls Buffer
					// batches behind: that drop is TestHubPublishNeverBlocks'.)
					time.Sleep(2 * time.Millisecond)
				}
			}()
			go func() { // the clock's sweep, as often as it can
				defer bg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					h.hub.sweep(time.Now())
					runtime.Gosched()
				}
			}()

			check := func(r *rand.Rand) error {
				head := int64(0)
				l.mu.Lock()
				head = int64(len(l.events))
				l.mu.Unlock()
				lastID := ""
				switch r.IntN(3) {
				case 0: // recent: from memory, or from the log once evicted
					lastID = strconv.FormatInt(max(0, head-int64(r.IntN(8))), 10)
				case 1:
					lastID = strconv.FormatInt(max(0, head-200-int64(r.IntN(100))), 10)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/stream", nil)
				if lastID != "" {
					req.Header.Set("Last-Event-ID", lastID)
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					return err
				}
				defer res.Body.Close()
				p := NewWireParser()
				buf := make([]byte, 4096)
				for len(p.Events) < 6 {
					n, err := res.Body.Read(buf)
					p.Feed(buf[:n])
					if err != nil {
						return fmt.Errorf("after %d events: %w", len(p.Events), err)
					}
				}
				from := lastID
				if from == "" {
					if len(p.Positions) == 0 || p.Positions[0].After != 0 {
						return fmt.Errorf("a fresh stream without its position first: %+v", p.Positions)
					}
					from = p.Positions[0].LastEventID
				}
				at := seqOfID(from)
				for i, e := range p.Events {
					if want := at + 1 + int64(i); seqOfID(e.LastEventID) != want {
						var got []string
						for _, e := range p.Events {
							got = append(got, e.LastEventID)
						}
						return fmt.Errorf("from %s (cursor %q): events %v", from, lastID, got)
					}
				}
				return nil
			}
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for w := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(w), 7))
					for range 60 {
						if err := check(r); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(stop)
			bg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			st := h.hub.Stats()
			t.Logf("%d streams, %d evictions, %d events replayed", st.Subscribed, st.Evictions, st.Replayed)
			if st.Evictions == 0 {
				t.Error("no eviction raced with the streams: the test tested nothing")
			}
			if st.SlowDisconnects != 0 {
				t.Errorf("%d streams dropped as too slow", st.SlowDisconnects)
			}
		})
	}
}

// TestHeadStream: HEAD /stream answers the headers a GET gets and no
// body (RFC 9110 §9.3.2), without taking the connection over, subscribing
// or holding a stream; a bad query is refused as GET refuses it.
func TestHeadStream(t *testing.T) {
	h, _ := newTestHandler(Config{Heartbeat: time.Minute})
	srv := httptest.NewServer(actorEcho(h, func(*http.Request) models.Actor {
		return models.Actor{Subject: "screen-1", TenantID: "t", Role: models.RoleDisplay}
	}))
	defer srv.Close()
	defer h.Shutdown(context.Background())
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	get, err := client.Get(srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	get.Body.Close()
	res, err := client.Head(srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, err = body.ReadFrom(res.Body)
	res.Body.Close()
	if err != nil || body.Len() != 0 || res.StatusCode != http.StatusOK {
		t.Fatalf("HEAD: %d, body %q, %v", res.StatusCode, body.String(), err)
	}
	for _, k := range []string{"Content-Type", "Cache-Control", "X-Accel-Buffering"} {
		if res.Header.Get(k) != get.Header.Get(k) || res.Header.Get(k) == "" {
			t.Errorf("HEAD %s %q, GET %q", k, res.Header.Get(k), get.Header.Get(k))
		}
	}
	if res.Close {
		t.Error("HEAD closed the connection: it was taken over like a stream")
	}
	// The connection is net/http's still: it serves the next request.
	reused := false
	req, _ := http.NewRequest(http.MethodHead, srv.URL+"/stream", nil)
	req = req.WithContext(httptraceReused(req.Context(), &reused))
	res, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if !reused {
		t.Error("the second HEAD did not reuse the connection")
	}
	// Only the GET subscribed; nothing is held once it is gone.
	deadline := time.Now().Add(5 * time.Second)
	for h.hub.Stats().Streams != 0 || h.holds.Entries() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, %d identities holding", h.hub.Stats(), h.holds.Entries())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := h.hub.Stats(); st.Subscribed != 1 {
		t.Errorf("%d subscriptions for one GET and two HEADs", st.Subscribed)
	}
	res, err = client.Head(srv.URL + "/stream?topics=bogus")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("HEAD with a bad topic: %d", res.StatusCode)
	}
}

// httptraceReused returns ctx with a trace that records whether the
// request went out on a connection used before.
func httptraceReused(ctx context.Context, reused *bool) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { *reused = i.Reused }})
}
