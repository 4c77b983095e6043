package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/auth"
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
