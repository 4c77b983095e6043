package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"

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
