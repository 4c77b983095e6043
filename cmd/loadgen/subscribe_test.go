package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeServer answers one stream request on a raw connection with head and
// then body (chunked when asked), and closes.
func fakeServer(t *testing.T, head string, body string, chunked bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil || req.Header.Get("Authorization") != "Bearer tok" || req.Header.Get("Accept") != "text/event-stream" {
			fmt.Fprint(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			return
		}
		fmt.Fprint(c, head)
		if chunked {
			w := httputil.NewChunkedWriter(c)
			for len(body) > 0 { // odd-sized chunks, split mid-line
				n := min(len(body), 777)
				w.Write([]byte(body[:n]))
				body = body[n:]
			}
			w.Close()
			fmt.Fprint(c, "\r\n")
		} else {
			fmt.Fprint(c, body)
		}
	}()
	return ln.Addr().String()
}

func TestSubscribe(t *testing.T) {
	pad := strings.Repeat("x", 3*subReadBuf)
	body := ": hello\n\n" +
		"event: patients.created\ndata: {\"name\":\"lg-1\"}\n\n" +
		"data: {\"pad\":\"" + pad + "\",\"name\":\"lg-2\"}\r\n\r\n" + // longer than the buffer
		": " + pad + "data: {\"name\":\"lg-99\"}\n" + // a long comment, skipped
		"data: {\"name\":\"lg-3\"}\n\n"
	for _, chunked := range []bool{false, true} {
		head := "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
		if chunked {
			head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
		}
		addr := fakeServer(t, head, body, chunked)
		var ready atomic.Int64
		var got []int
		err := subscribe(context.Background(), addr, "tok", "patients", &ready, func(n int, _ time.Time) { got = append(got, n) })
		if err != nil || ready.Load() != 1 || fmt.Sprint(got) != "[1 2 3]" {
			t.Errorf("chunked=%v: err %v, ready %d, got %v", chunked, err, ready.Load(), got)
		}
	}
}

func TestSubscribeNotReady(t *testing.T) {
	for name, head := range map[string]string{
		"401":          "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n\r\n",
		"content type": "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n",
	} {
		addr := fakeServer(t, head, "{}", false)
		var ready atomic.Int64
		err := subscribe(context.Background(), addr, "tok", "patients", &ready, func(int, time.Time) {})
		if !errors.Is(err, errNotReady) || ready.Load() != 0 {
			t.Errorf("%s: err %v, ready %d", name, err, ready.Load())
		}
	}
	// Connection refused.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	var ready atomic.Int64
	if err := subscribe(context.Background(), addr, "tok", "patients", &ready, func(int, time.Time) {}); !errors.Is(err, errNotReady) {
		t.Errorf("refused: err %v", err)
	}
}

func TestSubscribeCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		http.ReadRequest(bufio.NewReader(c))
		fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
		time.Sleep(time.Minute) // an idle stream
	}()
	ctx, cancel := context.WithCancel(context.Background())
	var ready atomic.Int64
	done := make(chan error)
	go func() { done <- subscribe(ctx, ln.Addr().String(), "tok", "patients", &ready, func(int, time.Time) {}) }()
	for ready.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("subscribe did not return after cancel")
	}
}
