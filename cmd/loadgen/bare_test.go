package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestBareServer(t *testing.T) { testServer(t, bareServe) }

func TestPeerServer(t *testing.T) { testServer(t, peerServe) }

// testServer checks a -baseline or -peer server as loadgen uses it.
func testServer(t *testing.T, serve func(net.Listener) error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serve(ln)
	base := "http://" + ln.Addr().String()
	if r, err := http.Get(base + "/readyz"); err != nil || r.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", r, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ready atomic.Int64
	got := make(chan int, 100)
	go subscribe(ctx, ln.Addr().String(), "tok", "patients", &ready, func(n int, _ time.Time) { got <- n })
	for ready.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	post := func(p string) {
		r, err := http.Post(base+p, "application/json", strings.NewReader(`{"name": "lg-42"}`))
		if err != nil || r.StatusCode != 201 {
			t.Fatalf("POST %s: %v %v", p, r, err)
		}
		r.Body.Close()
	}
	post("/api/v1/doctors")
	// The stream registers just after its head is written: post until it
	// has.
	for deadline := time.Now().Add(5 * time.Second); ; {
		post("/api/v1/patients")
		select {
		case n := <-got:
			if n != 42 {
				t.Fatalf("got lg-%d", n)
			}
		case <-time.After(50 * time.Millisecond):
			if time.Now().Before(deadline) {
				continue
			}
			t.Fatal("no event")
		}
		break
	}
	if r, err := http.Get(base + "/nope"); err != nil || r.StatusCode != 404 {
		t.Fatalf("GET /nope: %v %v", r, err)
	}
	if n := len(appendBareFrame(nil, 2, "lg-1")); n < 380 || n > 410 {
		t.Fatalf("frame is %d bytes, the real one about 396", n)
	}
}
