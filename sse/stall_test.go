package sse_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/sse"
)

// stalledClient opens a stream over a socket with a small receive buffer
// and then reads nothing: a tablet whose app froze.
func stalledClient(t *testing.T, s *apptest.Server, token string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return err
	}}
	c, err := d.Dial("tcp", s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /api/v1/stream?since=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n", token)
	return c
}

// TestStalledClient: one client stops reading while events with large
// payloads flow. The healthy clients' latency stays low throughout (the
// publisher never waits on anyone), and the stalled one is disconnected:
// what it eventually reads is a prefix of the stream, then the end.
func TestStalledClient(t *testing.T) {
	s := apptest.Start(t)
	tok := s.Token(tenant, models.RoleCoordinator, "c")
	const healthy, writes = 5, 300
	var clients []*conn
	for range healthy {
		clients = append(clients, connect(t, s, tok, "since=0"))
	}
	for _, c := range clients {
		if it, ok := c.next(5 * time.Second); !ok || it.Kind != "retry" {
			t.Fatalf("first item %+v", it)
		}
	}
	stalled := stalledClient(t, s, tok)
	time.Sleep(100 * time.Millisecond) // registered

	big := strings.Repeat("x", 32<<10)
	sent := make([]time.Time, writes+1)
	start := time.Now()
	for i := 1; i <= writes; i++ {
		sent[i] = time.Now()
		s.Create(t, tok, "doctors", map[string]any{"name": fmt.Sprintf("Dr. %d", i), "specialty": big}) // one event: seq i
		_ = big
	}
	wrote := time.Since(start)

	var lat []time.Duration
	var stallLat []seqLatency
	for _, c := range clients {
		for _, it := range c.events(writes, 30*time.Second) {
			seq := it.envelope(t).Seq
			lat = append(lat, it.At.Sub(sent[seq]))
			stallLat = append(stallLat, seqLatency{seq, it.At.Sub(sent[seq])})
		}
	}
	slices.Sort(lat)

	// The stalled client's socket: its buffers, then the end of the stream.
	stalled.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(stalled), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	got := strings.Count(string(b), "\nevent: doctors.created\n")
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the stalled client was not disconnected (it got %d of %d events)", got, writes)
	}
	if err == nil {
		t.Fatalf("the stalled client's stream ended cleanly")
	}
	if got >= writes {
		t.Fatalf("the stalled client got all %d events: it never stalled the server", got)
	}
	// Its queue filled DefaultBuffer batches (one per write) after its
	// socket buffers did: the write that overflowed it is about this one.
	cut := min(got+sse.DefaultBuffer+1, writes)
	var during []time.Duration
	for _, l := range stallLat {
		if l.seq > int64(got) && l.seq <= int64(cut) {
			during = append(during, l.d)
		}
	}
	slices.Sort(during)
	t.Logf("%d writes of 32 KiB in %v; healthy latency over %d deliveries: p50 %v, p99 %v, max %v; while the stalled client was stalled (events %d–%d): p99 %v, max %v",
		writes, wrote.Round(time.Millisecond), len(lat), p(lat, 0.5), p(lat, 0.99), p(lat, 1), got+1, cut, p(during, 0.99), p(during, 1))
	t.Logf("the stalled client read %d events (its socket buffers), was dropped about %v after they were full, then read: %v",
		got, sent[cut].Sub(sent[got+1]).Round(time.Millisecond), err)
	// Had publishing waited on the stalled client, the healthy ones would
	// have waited with it until its write deadline (10 s) dropped it, or
	// for ever: a bound well under that proves they did not.
	bound := 2 * time.Second
	if raceEnabled {
		bound = 5 * time.Second
	}
	if p(lat, 1) > bound {
		t.Errorf("healthy clients waited up to %v", p(lat, 1))
	}
}

type seqLatency struct {
	seq int64
	d   time.Duration
}

func p(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[int(q*float64(len(ds)-1))].Round(10 * time.Microsecond)
}
