package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// slowBody opens a connection to addr and sends a request whose body never
// arrives: its headers promise 1000 bytes, 10 follow.
func slowBody(t *testing.T, addr, head string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, head+"Host: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\":\"x"); err != nil {
		t.Fatal(err)
	}
	return c
}

// answerAndClose reads c until the server closes it (or within d) and
// returns the response's status line.
func answerAndClose(t *testing.T, c net.Conn, d time.Duration) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("the connection was not closed within %v (read: %v; got %q)", d, err, b)
	}
	status, _, _ := strings.Cut(string(b), "\r\n")
	return status
}

// TestSlowBodyCut: a request whose body never arrives (issue 10, item 2:
// `POST /healthz` with Content-Length: 1000 and no body held its
// connection for ever) is answered and its connection closed once
// REQUEST_READ_TIMEOUT passes, whether or not the route reads the body.
func TestSlowBodyCut(t *testing.T) {
	s := startServer(t, map[string]string{"REQUEST_READ_TIMEOUT": "1s"})
	tok := s.token(t, "slow")
	start := time.Now()
	unread := slowBody(t, s.addr, "POST /healthz HTTP/1.1\r\n")
	read := slowBody(t, s.addr, "POST /api/v1/patients HTTP/1.1\r\nAuthorization: Bearer "+tok+"\r\n")
	for name, c := range map[string]net.Conn{"POST /healthz (body not read)": unread, "POST /api/v1/patients (body read)": read} {
		status := answerAndClose(t, c, 15*time.Second)
		t.Logf("%s: %q, closed after %v", name, status, time.Since(start).Round(10*time.Millisecond))
		if !strings.HasPrefix(status, "HTTP/1.1 4") {
			t.Errorf("%s: answered %q, want a 4xx", name, status)
		}
	}
	// Nothing was written by the cut request.
	req, _ := http.NewRequest(http.MethodGet, s.base+"/api/v1/patients", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(b), `"items":[]`) {
		t.Errorf("patients after the cut request: %s", b)
	}
}

// TestReadTimeoutSparesLongPollsAndStreams: REQUEST_READ_TIMEOUT bounds
// reading the request only. A long-poll and an HTTP/1.1 stream held past
// it still receive the next event, and a body sent in time is read.
func TestReadTimeoutSparesLongPollsAndStreams(t *testing.T) {
	s := startServer(t, map[string]string{"REQUEST_READ_TIMEOUT": "1s"})
	tok := s.token(t, "held")
	client := &http.Client{Timeout: 30 * time.Second}

	polled := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, s.base+"/api/v1/events?since=0&wait=20", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := client.Do(req)
		if err != nil {
			polled <- "ERROR: " + err.Error()
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		polled <- fmt.Sprintf("%d %s", res.StatusCode, b)
	}()
	req, _ := http.NewRequest(http.MethodGet, s.base+"/api/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := (&http.Client{}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	stream := lines(res.Body)
	waitLine(t, "stream", stream, 10*time.Second, func(l string) bool { return strings.HasPrefix(l, "retry:") })

	// Idle for more than twice the read timeout: a deadline left in force
	// would have ended both by now.
	time.Sleep(2500 * time.Millisecond)
	select {
	case p := <-polled:
		t.Fatalf("the long-poll ended before any event: %s", p)
	default:
	}
	if st, body := s.post(t, client, tok, "/api/v1/patients", `{"name":"after the read timeout"}`); st != http.StatusCreated {
		t.Fatalf("POST: %d %s", st, body)
	}
	waitLine(t, "stream", stream, 10*time.Second, func(l string) bool { return strings.Contains(l, "after the read timeout") })
	select {
	case p := <-polled:
		if !strings.HasPrefix(p, "200 ") || !strings.Contains(p, "after the read timeout") {
			t.Fatalf("long-poll: %s", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long-poll did not answer the event")
	}
}

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestConnectionLimit: with MAX_CONNECTIONS=50, 60 requests whose bodies
// never arrive hold at most 50 connections (the other 10 wait in the
// accept queue, costing the process no descriptor), accept never fails,
// /healthz answers once the read timeout frees the slots, and every slow
// connection is closed.
func TestConnectionLimit(t *testing.T) {
	const max, slow = 50, 60
	s := startServer(t, map[string]string{"MAX_CONNECTIONS": fmt.Sprint(max), "REQUEST_READ_TIMEOUT": "3s"})
	if s.cfg.MaxConnections != max {
		t.Fatalf("MaxConnections = %d", s.cfg.MaxConnections)
	}
	// The client and the server are this process: each accepted connection
	// costs two descriptors here, each queued one only the client's.
	before := openFDs(t)
	conns := make([]net.Conn, slow)
	for i := range conns {
		conns[i] = slowBody(t, s.addr, "POST /healthz HTTP/1.1\r\n")
	}
	deadline := time.Now().Add(3 * time.Second)
	for openFDs(t) < before+slow+max && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // would an unlimited listener accept more?
	accepted := openFDs(t) - before - slow
	t.Logf("%d slow connections: %d accepted by the server", slow, accepted)
	if accepted > max+3 { // +3: descriptors the server may open meanwhile
		t.Fatalf("the server holds %d connections, over MAX_CONNECTIONS=%d", accepted, max)
	}
	if !strings.Contains(s.logs.String(), "connection limit reached") {
		t.Error("no warning that the connection limit was reached")
	}

	start := time.Now()
	res, err := (&http.Client{Timeout: 20 * time.Second}).Get(s.base + "/healthz")
	if err != nil {
		t.Fatalf("/healthz while the slots are held: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %d", res.StatusCode)
	}
	t.Logf("/healthz answered %v after it was sent", time.Since(start).Round(10*time.Millisecond))
	for i, c := range conns {
		if status := answerAndClose(t, c, 20*time.Second); !strings.HasPrefix(status, "HTTP/1.1 4") {
			t.Errorf("slow connection %d: %q", i, status)
		}
	}
	if logs := s.logs.String(); strings.Contains(logs, "too many open files") || strings.Contains(logs, "Accept error") {
		t.Errorf("accept failed:\n%s", logs)
	}
}

// The connections the listener hands out are still TCP connections to the
// stream hub: it writes through their descriptors and resets dropped ones.
var (
	_ syscall.Conn                          = (*limitedTCPConn)(nil)
	_ interface{ SetLinger(sec int) error } = (*limitedTCPConn)(nil)
	_ interface{ CloseWrite() error }       = (*limitedTCPConn)(nil)
	_ interface {
		ReadFrom(io.Reader) (int64, error)
	} = (*limitedTCPConn)(nil)
)

// TestLimitListenerClose: a Close ends an Accept waiting for a slot, and a
// connection frees its slot once however often it is closed.
func TestLimitListenerClose(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := limitListen(tcp, 1, slog.New(slog.DiscardHandler))
	c, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	sc.Close()
	sc.Close()
	if ln.InUse() != 0 {
		t.Fatalf("in use after close: %d", ln.InUse())
	}
	c2, _ := net.Dial("tcp", tcp.Addr().String())
	defer c2.Close()
	held, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	errc := make(chan error, 1)
	go func() { _, err := ln.Accept(); errc <- err }()
	ln.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Accept after Close returned a connection")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept waiting for a slot did not end with Close")
	}
}

// TestSlowReaderCut: a client that does not read its response holds its
// connection only until REQUEST_WRITE_TIMEOUT passes, while a stream (which
// writes only now and then) and a long-poll outlive it.
func TestSlowReaderCut(t *testing.T) {
	const writeTimeout = 3 * time.Second
	s := startServerWith(t, nil, func(sc *serverConfig) {
		sc.WriteTimeout = writeTimeout
		sc.App.Polling.MaxWait = time.Second // loadConfig would refuse a write timeout under the wait
	})
	tok := s.token(t, "slow-reader")
	client := &http.Client{Timeout: 30 * time.Second}
	// A list of 12 MiB of JSON, more than the kernel buffers on loopback
	// (net.ipv4.tcp_wmem: 4 MiB at most): 32 doctors of 64 KiB of "<",
	// which JSON writes as six bytes each.
	const doctors = 32
	for i := range doctors {
		if st, body := s.post(t, client, tok, "/api/v1/doctors", fmt.Sprintf(`{"name":"Dr %d","specialty":"%s"}`, i, strings.Repeat("<", 64<<10))); st != http.StatusCreated {
			t.Fatalf("POST: %d %.200s", st, body)
		}
	}
	const full = doctors * 6 * 64 << 10

	// A stream idle past the write timeout still receives events.
	sreq, _ := http.NewRequest(http.MethodGet, s.base+"/api/v1/stream", nil)
	sreq.Header.Set("Authorization", "Bearer "+tok)
	sres, err := (&http.Client{}).Do(sreq)
	if err != nil {
		t.Fatal(err)
	}
	defer sres.Body.Close()
	stream := lines(sres.Body)
	waitLine(t, "stream", stream, 10*time.Second, func(l string) bool { return strings.HasPrefix(l, "retry:") })

	// The reader: a receive buffer of 4 KiB, set before it connects, so that
	// the kernel cannot take the response for it.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /api/v1/doctors?limit=100 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", tok)
	time.Sleep(2 * writeTimeout) // not reading, past the deadline
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	got, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the connection was not closed (read %d bytes)", len(got))
	}
	t.Logf("the slow reader got %d bytes of a body over %d bytes, then %v", len(got), full, err)
	if len(got) >= full {
		t.Fatalf("the slow reader got the whole response (%d bytes): no write deadline", len(got))
	}

	if st, body := s.post(t, client, tok, "/api/v1/doctors", `{"name":"Dr After"}`); st != http.StatusCreated {
		t.Fatalf("POST: %d %s", st, body)
	}
	waitLine(t, "stream", stream, 10*time.Second, func(l string) bool { return strings.Contains(l, "Dr After") })
}
