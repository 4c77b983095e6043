package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/store"
)

// BenchmarkCreateQueueEntry commits one queue entry per op, with its two
// events (entry and board) in the same transaction. "tenants=8" runs 8
// writers, one per tenant; "tenants=1" runs 8 writers on one tenant (one
// doctor each), where the per-tenant counter row serialises the commits.
func BenchmarkCreateQueueEntry(b *testing.B) {
	for _, tenants := range []int{1, 8} {
		b.Run(fmt.Sprintf("tenants=%d", tenants), func(b *testing.B) {
			s := openStore(b, store.Options{})
			type target struct {
				ctx  context.Context
				docs []string
				pat  string
			}
			var targets []target
			for i := range 8 {
				tn := fmt.Sprintf("bench-%d", i%tenants)
				ctx := staff(tn)
				// 40 doctors per writer keep each day's queue at a clinic's size.
				tg := target{ctx: ctx, pat: mustCreate(b, s, ctx, &models.Patient{Name: "P"})}
				for range 40 {
					tg.docs = append(tg.docs, mustCreate(b, s, ctx, &models.Doctor{Name: "D"}))
				}
				targets = append(targets, tg)
			}
			var next atomic.Int64
			b.SetParallelism(4) // 4 × GOMAXPROCS(2) = 8 writers
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				tg := targets[next.Add(1)%8]
				pat := tg.pat
				for i := 0; pb.Next(); i++ {
					if i > 0 && i%len(tg.docs) == 0 {
						// A patient has one active entry per doctor per day:
						// after one with each of the 40 doctors, the next
						// patient (one patient write per 40 entries).
						out, err := s.Create(tg.ctx, &models.Patient{Name: "P"})
						var m struct{ ID string }
						if err == nil {
							err = json.Unmarshal(out, &m)
						}
						if err != nil {
							b.Error(err)
							return
						}
						pat = m.ID
					}
					if _, err := s.Create(tg.ctx, &models.QueueEntry{PatientID: pat, DoctorID: tg.docs[i%len(tg.docs)]}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}

// BenchmarkScopedRead reads a tenant's log as staff (admin), a patient and
// a waiting-room display, on logs of 10,000, 100,000 and 200,000 events
// (seeded in bulk: 1 % board events, 0.01 % doctor events, the rest over
// 2,000 patients; the three tenants share the table). "page" is an events
// poll from since=0 with the default limit (100); "replay" is one stream
// replay read of 1,000 events after 0 up to the head. The aim: a patient's
// or display's read costs within 2× of the admin's same read, whatever the
// log's size. Run on Postgres with DATABASE_URL=postgres://….
func BenchmarkScopedRead(b *testing.B) {
	s := openStore(b, store.Options{})
	sizes := []int{10_000, 100_000, 200_000}
	for _, n := range sizes {
		seedLog(b, s, fmt.Sprintf("log%d", n), n)
	}
	analyze(b, s)
	ctx := context.Background()
	for _, n := range sizes {
		tenant := fmt.Sprintf("log%d", n)
		for _, who := range []string{"admin", "patient", "display"} {
			scope := scopes[map[string]string{"admin": "staff"}[who]+map[bool]string{true: who}[who != "admin"]]
			b.Run(fmt.Sprintf("events=%d/page/%s", n, who), func(b *testing.B) {
				rows := 0
				defer cpuPerOp(b)()
				for b.Loop() {
					p, err := s.PollEvents(ctx, models.EventQuery{TenantID: tenant, Limit: models.DefaultLimit, Scope: scope})
					if err != nil {
						b.Fatal(err)
					}
					rows = len(p.Events)
				}
				b.ReportMetric(float64(rows), "events/op")
			})
			b.Run(fmt.Sprintf("events=%d/replay/%s", n, who), func(b *testing.B) {
				rows := 0
				defer cpuPerOp(b)()
				for b.Loop() {
					evs, err := s.ReadEvents(ctx, models.EventQuery{TenantID: tenant, Until: int64(n), Limit: 1000, Scope: scope})
					if err != nil {
						b.Fatal(err)
					}
					rows = len(evs)
				}
				b.ReportMetric(float64(rows), "events/op")
			})
		}
	}
}

// cpuPerOp reports the process's CPU time (user and system) per op beside
// the wall time: on a shared machine it moves less with the load. (On
// Postgres it leaves out the server's CPU.) Call the result when the loop
// ends.
func cpuPerOp(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
