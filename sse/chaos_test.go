package sse_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/sse"
)

// cutProxy forwards TCP connections to a backend and cuts each one after a
// random time in [minCut, maxCut): half of the cuts close (FIN), half reset
// (RST).
type cutProxy struct {
	ln             net.Listener
	backend        string
	minCut, maxCut time.Duration
	maxCuts        int64 // cut only the first maxCuts connections (0: all)

	accepted, cut atomic.Int64
	mu            sync.Mutex
	conns         map[net.Conn]struct{}
	wg            sync.WaitGroup
}

func newCutProxy(t testing.TB, backend string, minCut, maxCut time.Duration, maxCuts int64) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, backend: backend, minCut: minCut, maxCut: maxCut, maxCuts: maxCuts, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *cutProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *cutProxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		p.wg.Add(1)
		go p.forward(c)
	}
}

func (p *cutProxy) forward(client net.Conn) {
	defer p.wg.Done()
	backend, err := net.Dial("tcp", p.backend)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client, true) || !p.track(backend, true) {
		client.Close()
		backend.Close()
		return
	}
	after := p.minCut + rand.N(p.maxCut-p.minCut)
	if n := p.accepted.Load(); p.maxCuts > 0 && n > p.maxCuts {
		after = time.Hour
	}
	var once sync.Once
	end := func(rst bool) {
		once.Do(func() {
			if rst {
				client.(*net.TCPConn).SetLinger(0)
				backend.(*net.TCPConn).SetLinger(0)
			}
			client.Close()
			backend.Close()
			p.track(client, false)
			p.track(backend, false)
		})
	}
	timer := time.AfterFunc(after, func() { p.cut.Add(1); end(rand.IntN(2) == 0) })
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); io.Copy(backend, client); end(false) }()
	go func() { defer wg.Done(); io.Copy(client, backend); end(false) }()
	wg.Wait()
	timer.Stop()
}

func (p *cutProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// post creates a record without touching t (for writer goroutines).
func post(client *http.Client, base, token, resource string, body any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/"+resource, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	rb, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("%s: %d %s", resource, res.StatusCode, rb)
	}
	return nil
}

// TestChaos: a proxy cuts every client connection after 100–500 ms while 4
// writers commit 2,000 events; 50 clients, each resuming with its last id
// (the wrapped r3labs client, as the tail command uses it), end with exactly
// the 2,000 events in order: no gap, no duplicate, no reset. -short runs
// 10 clients and 400 events.
func TestChaos(t *testing.T) {
	clients, total := 50, 2000
	if testing.Short() {
		clients, total = 10, 400
	}
	if v := os.Getenv("CHAOS_CLIENTS"); v != "" {
		clients, _ = strconv.Atoi(v)
	}
	const writers = 4
	// Every client follows with one token: no bound on its streams or
	// their opens here (TestStreamLimits tests those).
	s := apptest.Start(t, func(c *app.Config) { c.Streams = unlimited })
	tok := s.Token(tenant, models.RoleCoordinator, "c")
	proxy := newCutProxy(t, s.Listener.Addr().String(), 100*time.Millisecond, 500*time.Millisecond, 0)
	start := time.Now()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type state struct {
		last, got, conns atomic.Int64
		err              atomic.Pointer[string]
	}
	states := make([]*state, clients)
	var wg sync.WaitGroup
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	for i := range clients {
		st := &state{}
		states[i] = st
		fail := func(format string, a ...any) error {
			msg := fmt.Sprintf(format, a...)
			st.err.CompareAndSwap(nil, &msg)
			return fmt.Errorf("%s", msg)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := sse.Follow(ctx, sse.ClientConfig{
				URL: proxy.URL() + "/api/v1/stream", Token: tok, LastEventID: "0",
				HTTPClient: &http.Client{Transport: tr},
				MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
				OnConnect: func() { st.conns.Add(1) },
			}, func(m sse.Message) error {
				if m.Type == sse.ResetEvent {
					return fail("reset %s after %d", m.Data, st.last.Load())
				}
				// The id and the envelope's seq (Follow checked the
				// data is JSON).
				seq := seqOf(m.ID)
				if want := st.last.Load() + 1; seq != want || !bytes.HasPrefix(m.Data, fmt.Appendf(nil, `{"seq":%d,`, seq)) {
					return fail("got id %s (%.20s), want %d", m.ID, m.Data, want)
				}
				st.last.Store(seq)
				st.got.Add(1)
				return nil
			})
			if err != nil && ctx.Err() == nil {
				fail("follow: %v", err)
			}
		}()
	}

	// Writers go straight to the server; each commit is one event.
	werr := make(chan error, writers)
	wclient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: writers}}
	// The writes last 2 s at least, so that every client is cut several
	// times however fast the machine.
	const minPhase = 2 * time.Second
	every := minPhase / time.Duration(total/writers)
	for w := range writers {
		go func() {
			for i := range total / writers {
				if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
					time.Sleep(d)
				}
				if err := post(wclient, s.URL, tok, "doctors", map[string]any{"name": fmt.Sprintf("Dr. %d-%d", w, i)}); err != nil {
					werr <- err
					return
				}
			}
			werr <- nil
		}()
	}
	for range writers {
		if err := <-werr; err != nil {
			t.Fatal(err)
		}
	}
	wrote := time.Since(start)
	h := head(t, s, tenant)
	if h != int64(total) {
		t.Fatalf("head %d, want %d", h, total)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		behind := 0
		for _, st := range states {
			if p := st.err.Load(); p != nil {
				t.Fatalf("client: %s", *p)
			}
			if st.last.Load() < h {
				behind++
			}
		}
		if behind == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d clients behind after 30 s", behind)
		}
		time.Sleep(10 * time.Millisecond)
	}
	caughtUp := time.Since(start)
	cancel()
	wg.Wait()

	var conns, minConns int64 = 0, 1 << 62
	for i, st := range states {
		if st.got.Load() != int64(total) || st.last.Load() != int64(total) {
			t.Errorf("client %d: %d events, last %d", i, st.got.Load(), st.last.Load())
		}
		conns += st.conns.Load()
		minConns = min(minConns, st.conns.Load())
	}
	t.Logf("%d clients × %d events: written in %v, all caught up after %v; %d connections (%d cut by the proxy, at least %d per client)",
		clients, total, wrote.Round(time.Millisecond), caughtUp.Round(time.Millisecond), conns, proxy.cut.Load(), minConns)
	if minConns < 2 && clients > 0 {
		t.Errorf("a client was never cut: the test proves nothing")
	}
}
