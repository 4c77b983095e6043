package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/auth"
	"github.com/clinicpulse/clinicpulse/internal/testdb"
	"github.com/clinicpulse/clinicpulse/models"
)

// TestSIGTERM runs the real serve() and sends the process SIGTERM: the
// stream ends with its closing comment (clients reconnect elsewhere), the
// waiting long-poll is answered, serve returns in time, and the port is
// closed.
func TestSIGTERM(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const secret = "sigterm-test-secret-0123456789abcdef"
	t.Setenv("ADDR", addr)
	t.Setenv("DATABASE_URL", "sqlite:"+filepath.Join(t.TempDir(), "db"))
	t.Setenv("JWT_SECRET", secret)
	t.Setenv("DEV", "0")
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	base := "http://" + addr
	for i := 0; ; i++ {
		if r, err := http.Get(base + "/readyz"); err == nil && r.StatusCode == 200 {
			r.Body.Close()
			break
		}
		if i > 200 {
			t.Fatal("server did not get ready")
		}
		time.Sleep(25 * time.Millisecond)
	}
	tok, _ := auth.New(auth.Config{Secret: []byte(secret)}).Sign(models.Actor{Subject: "a", TenantID: "sig", Role: models.RoleAdmin}, time.Hour)
	get := func(ctx context.Context, path string) *http.Response {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream := get(ctx, "/api/v1/stream")
	defer stream.Body.Close()
	rd := bufio.NewReader(stream.Body)
	if line, _ := rd.ReadString('\n'); !strings.HasPrefix(line, "retry:") {
		t.Fatalf("stream began with %q", line)
	}
	polled := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		r := get(ctx, "/api/v1/events?since=0&wait=30")
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		polled <- time.Since(start)
	}()
	time.Sleep(200 * time.Millisecond) // the long-poll is waiting

	start := time.Now()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(rd)
	if !strings.Contains(string(rest), ": server shutting down") {
		t.Fatalf("stream ended without its closing comment: %q", rest)
	}
	if d := <-polled; d > 10*time.Second {
		t.Fatalf("long-poll held %v through shutdown", d)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not return within 15 s of SIGTERM")
	}
	t.Logf("shut down %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the port still accepts connections after shutdown")
	}
}

const testSecret = "serve-test-secret-0123456789abcdef0123"

// testServer is the real server started by run(), configured through
// loadConfig from an environment map, as serve() is.
type testServer struct {
	base, addr string
	cfg        serverConfig
	logs       *syncBuffer // the server's log (JSON lines)
}

// startServer runs run() with env over these defaults: a loopback port,
// the test's database (testdb: Postgres when DATABASE_URL says so), a JWT
// secret, DEV=0. It stops when the test ends; run must then return nil.
func startServer(t *testing.T, env map[string]string) *testServer {
	t.Helper()
	return startServerWith(t, env, nil)
}

// startServerWith is startServer with tweak applied to the configuration
// loadConfig made (for values it would refuse, such as a write timeout
// shorter than the long-poll's wait).
func startServerWith(t *testing.T, env map[string]string, tweak func(*serverConfig)) *testServer {
	t.Helper()
	dbURL, _ := testdb.URL(t)
	full := map[string]string{"ADDR": "127.0.0.1:0", "DATABASE_URL": dbURL, "JWT_SECRET": testSecret, "DEV": "0"}
	for k, v := range env {
		full[k] = v
	}
	sc, err := loadConfig(envOf(full), openFileLimit())
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(&sc)
	}
	logs := &syncBuffer{}
	sc.App.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, sc, func(a net.Addr) { addrc <- a }) }()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-errc:
		cancel()
		t.Fatalf("run: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("run returned %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("run did not return within 20 s of its context's end")
		}
	})
	scheme := "http://"
	if sc.TLS != nil {
		scheme = "https://"
	}
	return &testServer{base: scheme + addr.String(), addr: addr.String(), cfg: sc, logs: logs}
}

// token signs an admin token of tenant.
func (s *testServer) token(t *testing.T, tenant string) string {
	t.Helper()
	tok, err := auth.New(auth.Config{Secret: []byte(testSecret)}).Sign(
		models.Actor{Subject: "admin-1", TenantID: tenant, Role: models.RoleAdmin}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// post sends a JSON body with tok and returns the status and body.
func (s *testServer) post(t *testing.T, client *http.Client, tok, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines reads r line by line into a channel, closed (after a last
// "ERROR: …" line if the read failed) when r ends.
func lines(r io.Reader) <-chan string {
	ch := make(chan string, 1024)
	go func() {
		defer close(ch)
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				ch <- strings.TrimRight(line, "\r\n")
			}
			if err != nil {
				if err != io.EOF {
					ch <- "ERROR: " + err.Error()
				}
				return
			}
		}
	}()
	return ch
}

// waitLine returns the first line of ch for which match is true, failing
// the test when ch ends or d passes first.
func waitLine(t *testing.T, name string, ch <-chan string, d time.Duration, match func(string) bool) string {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-ch:
			if !ok {
				t.Fatalf("%s: the stream ended", name)
			}
			if strings.HasPrefix(line, "ERROR: ") {
				t.Fatalf("%s: %s", name, line)
			}
			if match(line) {
				return line
			}
		case <-timer.C:
			t.Fatalf("%s: no matching line within %v", name, d)
		}
	}
}

// TestRunListenError: a port in use stops run with an error naming it,
// after closing what it opened.
func TestRunListenError(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dbURL, _ := testdb.URL(t)
	sc, err := loadConfig(envOf(map[string]string{"ADDR": busy.Addr().String(), "DATABASE_URL": dbURL, "JWT_SECRET": testSecret}), openFileLimit())
	if err != nil {
		t.Fatal(err)
	}
	sc.App.Logger = slog.New(slog.DiscardHandler)
	err = run(context.Background(), sc, func(net.Addr) { t.Error("ready called") })
	if err == nil || !strings.Contains(err.Error(), "listen "+busy.Addr().String()) {
		t.Fatalf("run: %v", err)
	}
}
