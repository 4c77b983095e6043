package app_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// BenchmarkPatchVisibility measures what read-your-writes costs a writer:
// one client PATCHes a patient over loopback, one request at a time, with
// the wait for dispatch (the default) and without it
// (WriteVisibilityTimeout < 0). Reports the median and p99 latency.
//
//	go test -run '^$' -bench BenchmarkPatchVisibility -benchtime 2000x ./internal/app/
func BenchmarkPatchVisibility(b *testing.B) {
	for _, mode := range []struct {
		name    string
		timeout time.Duration
	}{{"wait", 0}, {"nowait", -1}} {
		b.Run(mode.name, func(b *testing.B) {
			s := apptest.Start(b, func(c *app.Config) { c.WriteVisibilityTimeout = mode.timeout })
			tok := s.Token("bench-ryw", models.RoleCoordinator, "desk-1")
			id := s.Create(b, tok, "patients", map[string]any{"name": "P"})["id"].(string)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			url := s.URL + "/api/v1/patients/" + id
			lat := make([]time.Duration, 0, b.N)
			for i := 0; b.Loop(); i++ {
				req, _ := http.NewRequest(http.MethodPatch, url, bytes.NewBufferString(fmt.Sprintf(`{"name":"P %d"}`, i)))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				res, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				lat = append(lat, time.Since(start))
				if res.StatusCode != http.StatusOK {
					b.Fatalf("patch: %d", res.StatusCode)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			if n := len(lat); n > 0 {
				b.ReportMetric(float64(lat[n/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[n*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}
