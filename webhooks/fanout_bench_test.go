package webhooks_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
)

// BenchmarkFanout measures b.N writes (4 concurrent writers) with subs
// subscriptions on a loopback receiver: writes/s, and the time until every
// subscription has every event (deliveries/s). subs=0 is the baseline.
func BenchmarkFanout(b *testing.B) {
	for _, subs := range []int{0, 50} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			var got atomic.Int64
			rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1); w.WriteHeader(204) }))
			defer rcv.Close()
			s := apptest.Start(b, fast)
			tok := adminToken(s)
			for range subs {
				r := s.Do(b, http.MethodPost, "/api/v1/webhooks", tok, map[string]any{"url": rcv.URL, "topics": []string{"doctors"}})
				if r.Status != 201 {
					b.Fatal(r.Status)
				}
			}
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			var next atomic.Int64
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						s.Create(b, tok, "doctors", map[string]any{"name": "Dr. B"})
					}
				}()
			}
			wg.Wait()
			writes := time.Since(start)
			want := int64(subs * b.N)
			deadline := time.Now().Add(2 * time.Minute)
			for got.Load() < want && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			all := time.Since(start)
			b.ReportMetric(float64(b.N)/writes.Seconds(), "writes/s")
			if subs > 0 {
				b.ReportMetric(float64(got.Load())/all.Seconds(), "deliveries/s")
			}
		})
	}
}
