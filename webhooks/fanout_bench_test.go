package webhooks_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"gorm.io/gorm"
)

// fanoutWrites is the writes of one iteration of BenchmarkFanout: a fixed
// load, so that -benchtime 1x measures something (b.N = 1 would be one
// write).
const fanoutWrites = 1000

// BenchmarkFanout measures, per iteration, fanoutWrites writes by 4
// concurrent writers with subs subscriptions (topic doctors) on a loopback
// receiver that answers 204: writes/s over the writes, the p99 of a
// write's answer time (ms), deliveries/s from the first write until every
// subscription has every event, the SQL statements the server ran
// meanwhile per write (sql/write: the writes' own, and the deliveries'),
// and the CPU time this process used per write (cpu-ms/write: the
// server's, the writers', and the deliveries' with the receiver's; not the
// Postgres server's). subs=0 is the baseline. The receiver runs in this
// process: on a small machine its CPU and the sender's compete with the
// writes.
//
//	go test -run XXX -bench BenchmarkFanout -benchtime 1x -count 3 ./webhooks/
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
			var stmts atomic.Int64
			count := func(*gorm.DB) { stmts.Add(1) }
			cb := s.App.Store.DB().Callback()
			for _, p := range []interface {
				Register(string, func(*gorm.DB)) error
			}{cb.Create().After("*"), cb.Query().After("*"), cb.Update().After("*"), cb.Delete().After("*"), cb.Row().After("*"), cb.Raw().After("*")} {
				if err := p.Register("bench:count", count); err != nil {
					b.Fatal(err)
				}
			}
			var writeTime, allTime time.Duration
			var sql int64
			var cpu float64
			var lat []time.Duration
			var mu sync.Mutex
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				base := got.Load()
				stmts.Store(0)
				cpu0 := processCPU()
				var wg sync.WaitGroup
				var next atomic.Int64
				for range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						var mine []time.Duration
						for next.Add(1) <= fanoutWrites {
							t0 := time.Now()
							s.Create(b, tok, "doctors", map[string]any{"name": "Dr. B"})
							mine = append(mine, time.Since(t0))
						}
						mu.Lock()
						lat = append(lat, mine...)
						mu.Unlock()
					}()
				}
				wg.Wait()
				writeTime += time.Since(start)
				want := base + int64(subs*fanoutWrites)
				deadline := time.Now().Add(3 * time.Minute)
				for got.Load() < want && time.Now().Before(deadline) {
					time.Sleep(2 * time.Millisecond)
				}
				if got.Load() < want {
					b.Fatalf("%d of %d deliveries after 3 min", got.Load()-base, want-base)
				}
				allTime += time.Since(start)
				sql += stmts.Load()
				cpu += processCPU() - cpu0
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(b.N*fanoutWrites)/writeTime.Seconds(), "writes/s")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "write-p99-ms")
			b.ReportMetric(float64(sql)/float64(b.N*fanoutWrites), "sql/write")
			b.ReportMetric(cpu*1000/float64(b.N*fanoutWrites), "cpu-ms/write")
			if subs > 0 {
				b.ReportMetric(float64(got.Load())/allTime.Seconds(), "deliveries/s")
			}
		})
	}
}
