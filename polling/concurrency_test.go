package polling_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// TestCursorUnderConcurrency: 4 writers commit 2,000 events while 10
// pollers follow since with a random limit (half of them long-polling when
// caught up, half sleeping); each poller ends with all 2,000 exactly once,
// in seq order. Pollers honour 429 + Retry-After like a real client. Run it
// on SQLite and, with DATABASE_URL=postgres://…, on Postgres.
func TestCursorUnderConcurrency(t *testing.T) {
	const writers, perWriter, pollers = 4, 500, 10
	const total = writers * perWriter
	s := apptest.Start(t)
	admin := s.Token("conc", models.RoleAdmin, "writer")
	start := head(t, s, admin)

	// A bound against a hang, not a speed: under the race detector, on a
	// shared 2-core machine running the whole suite, the writes alone have
	// taken over 60 s.
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()

	created := make(chan string, total)
	var wg sync.WaitGroup
	writeErr := make(chan error, writers)
	began := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/api/v1/patients", jsonBody(fmt.Sprintf(`{"name":"W%d-%d"}`, w, i)))
				req.Header.Set("Authorization", "Bearer "+admin)
				req.Header.Set("Content-Type", "application/json")
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					writeErr <- err
					return
				}
				var m struct{ ID string }
				err = json.NewDecoder(res.Body).Decode(&m)
				res.Body.Close()
				if err != nil || res.StatusCode != http.StatusCreated {
					writeErr <- fmt.Errorf("create: %d %v", res.StatusCode, err)
					return
				}
				created <- m.ID
			}
		}()
	}

	type result struct {
		seqs     []int64
		ids      []string
		requests int
		limited  int
		err      error
	}
	results := make([]result, pollers)
	var pwg sync.WaitGroup
	for p := range pollers {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			tok := s.Token("conc", models.RoleAdmin, fmt.Sprint("poller-", p))
			rng := rand.New(rand.NewPCG(uint64(p), 42))
			longPoll := p%2 == 0
			r := &results[p]
			since := start
			for len(r.seqs) < total {
				if ctx.Err() != nil {
					r.err = fmt.Errorf("timed out with %d events", len(r.seqs))
					return
				}
				q := fmt.Sprintf("/api/v1/events?since=%d&limit=%d", since, 1+rng.IntN(200))
				if longPoll {
					q += "&wait=2"
				}
				st, h, b, err := rawGet(ctx, s.URL+q, tok)
				r.requests++
				if err != nil {
					r.err = err
					return
				}
				if st == http.StatusTooManyRequests {
					r.limited++
					secs, _ := strconv.Atoi(h.Get("Retry-After"))
					time.Sleep(time.Duration(secs) * time.Second)
					continue
				}
				var pg page
				if st != http.StatusOK || json.Unmarshal(b, &pg) != nil {
					r.err = fmt.Errorf("poll %s: %d %s", q, st, b)
					return
				}
				for _, e := range pg.Events {
					r.seqs = append(r.seqs, e.Seq)
					r.ids = append(r.ids, e.ID)
				}
				if pg.Cursor < since {
					r.err = fmt.Errorf("cursor went back from %d to %d", since, pg.Cursor)
					return
				}
				since = pg.Cursor
				if !pg.HasMore && !longPoll {
					time.Sleep(time.Duration(20+rng.IntN(60)) * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	wrote := time.Since(began)
	close(created)
	close(writeErr)
	for err := range writeErr {
		t.Fatal(err)
	}
	pwg.Wait()
	want := map[string]bool{}
	for id := range created {
		want[id] = true
	}
	if len(want) != total {
		t.Fatalf("created %d", len(want))
	}
	for p, r := range results {
		if r.err != nil {
			t.Fatalf("poller %d: %v", p, r.err)
		}
		if len(r.seqs) != total {
			t.Fatalf("poller %d got %d events", p, len(r.seqs))
		}
		seen := map[string]bool{}
		for i, seq := range r.seqs {
			if seq != start+int64(i)+1 {
				t.Fatalf("poller %d: event %d has seq %d, want %d (gap, duplicate or disorder)", p, i, seq, start+int64(i)+1)
			}
			if !want[r.ids[i]] || seen[r.ids[i]] {
				t.Fatalf("poller %d: event %d is %s: not created, or twice", p, i, r.ids[i])
			}
			seen[r.ids[i]] = true
		}
		t.Logf("poller %d (long-poll %v): %d requests, %d answered 429", p, p%2 == 0, r.requests, r.limited)
	}
	t.Logf("%s: %d events written by %d writers in %v; every poller got all of them once, in order (all done after %v)",
		s.Dialect, total, writers, wrote.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}
