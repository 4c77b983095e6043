package webhooks_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
)

// TestExactlyOnceEffect: 4 concurrent writers × 500 changes while the
// receiver answers 500 to 20 % of requests at random and stops listening
// for 3 s in the middle. Deduplicating by webhook-id, the receiver ends
// with every event once, in seq order (first receipts are already in
// order: the cursor moves only after a 2xx). On SQLite, and on Postgres
// with DATABASE_URL.
func TestExactlyOnceEffect(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	rc := startReceiver(t, 0)
	s := apptest.Start(t, fast)
	tok := adminToken(s)
	_, secret := createHook(t, s, tok, rc.URL)
	rc.do("ok", map[string]any{"cmd": "secrets", "secrets": []string{secret}})
	rc.do("ok", map[string]any{"cmd": "fail", "rate": 0.2})

	const writers, each = 4, 500
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	var written sync.WaitGroup
	written.Add(writers * each / 2)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				b, _ := json.Marshal(map[string]any{"name": fmt.Sprintf("Dr. %d-%d", w, i)})
				req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/v1/doctors", bytes.NewReader(b))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					return
				}
				res.Body.Close()
				if res.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("create: %d", res.StatusCode)
					return
				}
				if i < each/2 {
					written.Done()
				}
			}
		}()
	}
	written.Wait() // half written: stop the receiver for 3 s
	rc.do("paused", map[string]any{"cmd": "pause", "ms": 3000})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	writeTime := time.Since(start)
	const total = writers*each + 1 // and the subscription's own creation
	waitFor(t, 150*time.Second, fmt.Sprintf("%d unique deliveries", total), func() bool { return len(rc.unique()) >= total })
	got := rc.unique()
	for i, l := range got {
		if l.Seq != int64(i+1) {
			t.Fatalf("delivery %d has seq %d: not every event once in order", i, l.Seq)
		}
	}
	rc.mu.Lock()
	dups, requests, rejected := len(rc.deliveries)-len(got), rc.requests, len(rc.rejected)
	rc.mu.Unlock()
	if rejected > 0 {
		t.Errorf("%d deliveries failed verification", rejected)
	}
	t.Logf("[%s] %d events written in %s, all delivered after %s; %d requests (%d induced failures or refused), %d duplicates",
		s.Dialect, total, writeTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), requests, requests-len(rc.deliveries), dups)
}
