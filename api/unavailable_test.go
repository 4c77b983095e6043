package api_test

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/internal/testdb"
	"github.com/clinicpulse/clinicpulse/models"
)

// switchProxy forwards TCP to a target until it is switched off, which cuts
// every open connection and refuses new ones.
type switchProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func newSwitchProxy(t *testing.T, target string) *switchProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.set(true) })
	return p
}

func (p *switchProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { io.Copy(up, c); up.Close() }()
		go func() { io.Copy(c, up); c.Close() }()
	}
}

func (p *switchProxy) set(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// TestDatabaseDown: while Postgres is unreachable, writes answer 503 and
// /readyz fails; the process keeps serving and recovers when it returns.
func TestDatabaseDown(t *testing.T) {
	testdb.RequirePostgres(t)
	dbURL, dialect := testdb.URL(t)
	u, _ := url.Parse(dbURL)
	proxy := newSwitchProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	s := apptest.StartURL(t, u.String(), dialect)
	tok := s.Token("down", models.RoleAdmin, "a")
	if r := s.Do(t, http.MethodPost, "/api/v1/doctors", tok, map[string]any{"name": "D"}); r.Status != 201 {
		t.Fatalf("before: %d", r.Status)
	}
	proxy.set(true)
	r := s.Do(t, http.MethodPost, "/api/v1/doctors", tok, map[string]any{"name": "D2"})
	expectProblem(t, r, http.StatusServiceUnavailable, "")
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	if r := s.Do(t, http.MethodGet, "/readyz", "", nil); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("readyz while down: %d", r.Status)
	}
	if r := s.Do(t, http.MethodGet, "/healthz", "", nil); r.Status != 200 {
		t.Fatalf("healthz while down: %d", r.Status)
	}
	proxy.set(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := s.Do(t, http.MethodPost, "/api/v1/doctors", tok, map[string]any{"name": "D3"})
		if r.Status == 201 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery: %d %s", r.Status, r.Body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := s.Do(t, http.MethodGet, "/readyz", "", nil); r.Status != 200 {
		t.Fatalf("readyz after recovery: %d", r.Status)
	}
	var page struct{ Items []map[string]any }
	s.Do(t, http.MethodGet, "/api/v1/doctors", tok, nil).JSON(t, &page)
	if len(page.Items) != 2 {
		t.Fatalf("doctors after recovery = %d, want 2 (the write during the outage must not exist)", len(page.Items))
	}
}
