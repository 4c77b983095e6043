package abuse

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// BenchmarkTenantIsolation measures another tenant's write latency (a queue
// entry and its board event per write, one writer) on a quiet server, and
// again while one patient identity of a busy tenant holds its maximum of
// streams and long-polls and floods polls and stream opens as fast as it
// can (answered 429 beyond its limits). Both runs are in one process, one
// after the other; compare their p50/p99.
//
//	go test -run '^$' -bench TenantIsolation -benchtime 400x ./internal/abuse/
func BenchmarkTenantIsolation(b *testing.B) {
	for _, abused := range []bool{false, true} {
		name := "quiet"
		if abused {
			name = "abused"
		}
		b.Run(name, func(b *testing.B) {
			s := apptest.Start(b, func(c *app.Config) {
				c.Streams.PerIdentityPublic = 4
				c.Polling.LongPollsPerPatient = 4
			})
			// The busy tenant: a log of a few thousand events, a patient in it.
			busy := s.Token("busy", models.RoleAdmin, "admin")
			doc := s.Create(b, busy, "doctors", map[string]any{"name": "Dr. Busy"})["id"].(string)
			pat := s.Create(b, busy, "patients", map[string]any{"name": "Pat"})["id"].(string)
			for i := range 300 {
				s.Create(b, busy, "patients", map[string]any{"name": fmt.Sprintf("Other %d", i)})
			}
			_ = doc
			patient := s.Token("busy", models.RolePatient, pat)

			// The quiet tenant's writer.
			calm := s.Token("calm", models.RoleCoordinator, "desk")
			cdoc := s.Create(b, calm, "doctors", map[string]any{"name": "Dr. Calm"})["id"].(string)
			var pats []string
			for i := range b.N {
				pats = append(pats, s.Create(b, calm, "patients", map[string]any{"name": fmt.Sprintf("Calm %d", i)})["id"].(string))
			}

			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			counts := struct {
				sync.Mutex
				status map[int]int
			}{status: map[int]int{}}
			count := func(code int) {
				counts.Lock()
				counts.status[code]++
				counts.Unlock()
			}
			if abused {
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
				get := func(path string) {
					req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
					req.Header.Set("Authorization", "Bearer "+patient)
					res, err := client.Do(req)
					if err != nil {
						return
					}
					count(res.StatusCode)
					if res.Header.Get("Content-Type") == "text/event-stream" {
						<-ctx.Done() // hold the stream
					} else {
						io.Copy(io.Discard, res.Body)
					}
					res.Body.Close()
				}
				// Streams and long-polls beyond the maximum, re-tried at once.
				for range 8 {
					wg.Add(2)
					go func() {
						defer wg.Done()
						for ctx.Err() == nil {
							get("/api/v1/stream?since=0")
						}
					}()
					go func() {
						defer wg.Done()
						for ctx.Err() == nil {
							get("/api/v1/events?since=0&wait=55&limit=1000")
						}
					}()
				}
				// A poll flood: scoped reads of the whole log.
				for range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for ctx.Err() == nil {
							get("/api/v1/events?since=0&limit=1000")
						}
					}()
				}
				time.Sleep(500 * time.Millisecond) // the abuse is under way
			}

			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				body, _ := json.Marshal(map[string]any{"patient_id": pats[i], "doctor_id": cdoc})
				req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/v1/queue", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+calm)
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				lat = append(lat, time.Since(start))
				if res.StatusCode != http.StatusCreated {
					b.Fatalf("write %d: %d", i, res.StatusCode)
				}
			}
			b.StopTimer()
			cancel()
			wg.Wait()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			if abused {
				counts.Lock()
				b.ReportMetric(float64(counts.status[http.StatusTooManyRequests]), "abuser-429s")
				b.ReportMetric(float64(counts.status[http.StatusOK]), "abuser-200s")
				counts.Unlock()
			}
		})
	}
}
