package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// sseServer serves body as a stream over TLS (HTTP/2 when the client
// offers it) with the certificate of ct, then holds the response open.
func sseServer(t *testing.T, ct *clientTLS, body string) *httptest.Server {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(ct.certFile, ct.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, body)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	s.EnableHTTP2 = true
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// TestSubscribeTLS: the h1-tls, h2 and h2-mux subscribers read events over
// the protocol they name, and end when their context does.
func TestSubscribeTLS(t *testing.T) {
	ct, err := newClientTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	body := ": hi\n\nevent: patients.created\ndata: {\"name\":\"lg-1\"}\n\ndata: {\"name\":\"lg-2\"}\n\n"
	s := sseServer(t, ct, body)
	addr := s.Listener.Addr().String()
	mux := &http.Client{Transport: ct.transport(false)}
	defer mux.CloseIdleConnections()
	for name, sub := range map[string]func(ctx context.Context, ready *atomic.Int64, got func(int, time.Time)) error{
		"h1-tls": func(ctx context.Context, ready *atomic.Int64, got func(int, time.Time)) error {
			return subscribeDial(ctx, ct.dial(addr), addr, "tok", "patients", ready, got)
		},
		"h2": func(ctx context.Context, ready *atomic.Int64, got func(int, time.Time)) error {
			return subscribeHTTP(ctx, &http.Client{Transport: ct.transport(false)}, s.URL, "tok", "patients", 2, ready, got)
		},
		"h2-mux": func(ctx context.Context, ready *atomic.Int64, got func(int, time.Time)) error {
			return subscribeHTTP(ctx, mux, s.URL, "tok", "patients", 2, ready, got)
		},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		var ready atomic.Int64
		gotc := make(chan int, 10)
		done := make(chan error, 1)
		go func() { done <- sub(ctx, &ready, func(n int, _ time.Time) { gotc <- n }) }()
		for _, want := range []int{1, 2} {
			select {
			case n := <-gotc:
				if n != want {
					t.Fatalf("%s: got %d, want %d", name, n, want)
				}
			case err := <-done:
				t.Fatalf("%s: ended: %v", name, err)
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: no event %d", name, want)
			}
		}
		cancel()
		if err := <-done; err != nil || ready.Load() != 1 {
			t.Errorf("%s: after cancel: %v, ready %d", name, err, ready.Load())
		}
	}
	// HTTP/1.1 where HTTP/2 was asked for is not ready.
	var ready atomic.Int64
	err = subscribeHTTP(context.Background(), &http.Client{Transport: ct.transport(true)}, s.URL, "tok", "patients", 2, &ready, func(int, time.Time) {})
	if !errors.Is(err, errNotReady) {
		t.Errorf("HTTP/1.1 for h2: %v", err)
	}
}
