package sse

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/labstack/echo/v4"
)

// discardWriter is a ResponseWriter that throws the stream away, so that
// a benchmark measures the hub and the streams' own work, not the kernel's.
type discardWriter struct {
	header http.Header
	bytes  atomic.Int64
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) WriteHeader(int)     {}
func (w *discardWriter) Write(b []byte) (int, error) {
	w.bytes.Add(int64(len(b)))
	return len(b), nil
}
func (w *discardWriter) FlushError() error                { return nil }
func (w *discardWriter) SetWriteDeadline(time.Time) error { return nil }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHubFanout publishes one event per op (a ~40-byte payload, as
// the peer measurements) to N subscribers of one tenant, each
// running a real stream's live loop on its own goroutine (the request's,
// in production) into a writer that discards, and waits until every
// subscriber has written every frame. Publishing goes in bursts of 16
// batches, then waits for the streams to drain, so that no queue fills.
// Reported: ns/op (per published event), allocs, and process CPU per
// delivered frame (cpu-ns/delivery, from getrusage: publisher, scheduler,
// GC and the N streams together). The subscribers are staff, except in
// "display", whose board streams take the batches' redacted frames
// (encoded once more per batch, on first use).
func BenchmarkHubFanout(b *testing.B) {
	type run struct {
		n     int
		scope models.Scope
		name  string
	}
	var runs []run
	for _, n := range []int{1, 100, 1000, 10000} {
		runs = append(runs, run{n, models.Scope{}, fmt.Sprintf("subs=%d", n)})
	}
	runs = append(runs, run{1000, models.Scope{BoardOnly: true}, "subs=1000,display"})
	for _, r := range runs {
		n := r.n
		b.Run(r.name, func(b *testing.B) {
			h := NewHandler(Config{Heartbeat: time.Hour})
			hub := h.Hub()
			ctx, cancel := context.WithCancel(context.Background())
			e := echo.New()
			var wg sync.WaitGroup
			for range n {
				w := &discardWriter{header: http.Header{}}
				c := e.NewContext(httptest.NewRequest(http.MethodGet, "/stream", nil), w)
				st := &stream{h: h, ctx: ctx, out: responseSink{c.Response(), http.NewResponseController(c.Response())}, tenant: "t"}
				if !hub.enter() {
					b.Fatal("hub closed")
				}
				st.sub, _, _ = hub.subscribe("t", r.scope, nil, true, st.out, -1)
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer hub.leave()
					defer hub.unsubscribe(st.sub)
					st.live()
				}()
			}
			data := json.RawMessage(`{"doctor_id":"doc_1","now_serving":12}`)
			ev := models.Event{Type: "queue.board", Entity: "board", ID: "doc_1", Version: 1, At: time.Now().UTC(), Actor: "a", Data: data}
			const burst = 16
			wait := func(want int64) {
				for hub.stats.delivered.Load() < want {
					if hub.stats.overflows.Load() > 0 {
						b.Fatal("a subscriber overflowed")
					}
					time.Sleep(20 * time.Microsecond)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0, t0 := cpuTime(), time.Now()
			for i := range b.N {
				ev.Seq = int64(i + 1)
				hub.Publish("t", []models.Event{ev})
				if (i+1)%burst == 0 {
					wait(int64(i+1) * int64(n))
				}
			}
			wait(int64(b.N) * int64(n))
			b.StopTimer()
			cpu, wall := cpuTime()-cpu0, time.Since(t0)
			deliveries := float64(b.N) * float64(n)
			b.ReportMetric(float64(cpu.Nanoseconds())/deliveries, "cpu-ns/delivery")
			b.ReportMetric(deliveries/wall.Seconds(), "deliveries/s")
			cancel()
			wg.Wait()
		})
	}
}

// BenchmarkStreamLoopback is BenchmarkHubFanout over real HTTP on loopback:
// N clients in this process read the streams and count frames. Its CPU per
// delivery counts both ends (the out-of-process load generator, cmd/loadgen,
// measures the server alone); its profile shows the server's share.
func BenchmarkStreamLoopback(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			h, l := newTestHandler(Config{Heartbeat: time.Hour})
			srv := httptest.NewServer(staffEcho(h, models.Actor{Subject: "a", TenantID: "t", Role: models.RoleAdmin}))
			defer srv.Close()
			var frames atomic.Int64
			var conns []net.Conn
			for range n {
				c, err := net.Dial("tcp", srv.Listener.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				conns = append(conns, c)
				fmt.Fprintf(c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
				go func() {
					// Count "\nid: " across reads: keep the last bytes of
					// the one before.
					const carry = len("\nid: ") - 1
					buf := make([]byte, carry+32<<10)
					kept := 0
					for {
						k, err := c.Read(buf[kept:])
						k += kept
						frames.Add(int64(bytes.Count(buf[:k], []byte("\nid: "))))
						kept = copy(buf, buf[max(k-carry, 0):k])
						if err != nil {
							return
						}
					}
				}()
			}
			for h.hub.Stats().Streams < n {
				time.Sleep(time.Millisecond)
			}
			data := json.RawMessage(`{"doctor_id":"doc_1","now_serving":12}`)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0, t0 := cpuTime(), time.Now()
			for i := range b.N {
				l.Append(models.Event{Type: "queue.board", Entity: "board", ID: "doc_1", Version: 1, Actor: "a", Data: data})
				if (i+1)%16 == 0 || i == b.N-1 {
					for frames.Load() < int64(i+1)*int64(n) {
						if h.hub.stats.overflows.Load() > 0 {
							b.Fatal("a subscriber overflowed")
						}
						time.Sleep(50 * time.Microsecond)
					}
				}
			}
			b.StopTimer()
			cpu, wall := cpuTime()-cpu0, time.Since(t0)
			deliveries := float64(b.N) * float64(n)
			b.ReportMetric(float64(cpu.Nanoseconds())/deliveries, "cpu-ns/delivery")
			b.ReportMetric(deliveries/wall.Seconds(), "deliveries/s")
			h.Shutdown(context.Background())
			for _, c := range conns {
				c.Close()
			}
		})
	}
}
