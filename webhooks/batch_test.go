package webhooks_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// recorder is a loopback receiver that notes each request's webhook-id
// (msg_<subscription>_<seq>) per subscription, in the order received, and
// answers 204 after delay.
type recorder struct {
	*httptest.Server
	delay atomic.Int64 // ms
	mu    sync.Mutex
	got   map[string][]int64
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{got: map[string][]int64{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		id := req.Header.Get("webhook-id")
		i := strings.LastIndexByte(id, '_')
		seq, err := strconv.ParseInt(id[i+1:], 10, 64)
		if !strings.HasPrefix(id, "msg_") || err != nil {
			w.WriteHeader(400)
			return
		}
		time.Sleep(time.Duration(r.delay.Load()) * time.Millisecond)
		r.mu.Lock()
		r.got[id[4:i]] = append(r.got[id[4:i]], seq)
		r.mu.Unlock()
		w.WriteHeader(204)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) of(id string) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.got[id]...)
}

func firstReceipts(got []int64) []int64 {
	seen := map[int64]bool{}
	var out []int64
	for _, s := range got {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// TestSavesInBatches: 5 subscriptions, 4 writers × 100 changes. Each
// subscription receives every event once in seq order, while its progress
// is saved in batches: its delivery records, newest first, are ranges
// that together cover every event exactly, far fewer than the events, and
// its cursor reaches the head.
func TestSavesInBatches(t *testing.T) {
	rc := newRecorder(t)
	s := apptest.Start(t, fast)
	tok := adminToken(s)
	var ids []string
	for range 5 {
		id, _ := createHook(t, s, tok, rc.URL, "doctors")
		ids = append(ids, id)
	}
	const writers, each = 4, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				s.Create(t, tok, "doctors", map[string]any{"name": fmt.Sprintf("Dr. %d-%d", w, i)})
			}
		}()
	}
	wg.Wait()
	const first, last = 6, 5 + writers*each // seqs 1-5 are the subscriptions' creations
	for _, id := range ids {
		waitFor(t, 60*time.Second, "every event at "+id, func() bool { return len(firstReceipts(rc.of(id))) == writers*each })
		for i, seq := range firstReceipts(rc.of(id)) {
			if seq != first+int64(i) {
				t.Fatalf("%s: receipt %d is seq %d", id, i, seq)
			}
		}
		var ds struct{ Items []models.WebhookDelivery }
		waitFor(t, 10*time.Second, "the records of "+id, func() bool {
			s.Do(t, http.MethodGet, "/api/v1/webhooks/"+id+"/deliveries?limit=500", tok, nil).JSON(t, &ds)
			return len(ds.Items) > 0 && ds.Items[0].LastSeq == last
		})
		next := int64(last)
		for _, d := range ds.Items {
			if d.LastSeq != next || d.FirstSeq > d.LastSeq || d.Result != "success" {
				t.Fatalf("%s: record %+v, want one ending at %d", id, d, next)
			}
			next = d.FirstSeq - 1
		}
		if next != first-1 || len(ds.Items) > writers*each/4 {
			t.Errorf("%s: %d records down to %d for %d events", id, len(ds.Items), next+1, writers*each)
		}
		var v struct{ Cursor int64 }
		waitFor(t, 5*time.Second, "the cursor of "+id, func() bool {
			s.Do(t, http.MethodGet, "/api/v1/webhooks/"+id, tok, nil).JSON(t, &v)
			return v.Cursor == last
		})
	}
}

// TestChangesWhileDelivering: a subscription whose worker is running (its
// lease held, its cursor saved in batches) follows the API at once: a
// replay sends the events after since again, in order, with their
// webhook-ids, then goes on with new ones; disabling it stops its requests
// within the one in flight.
func TestChangesWhileDelivering(t *testing.T) {
	rc := newRecorder(t)
	s := apptest.Start(t, fast)
	tok := adminToken(s)
	id, _ := createHook(t, s, tok, rc.URL, "doctors")
	write := func(n int) {
		for i := range n {
			s.Create(t, tok, "doctors", map[string]any{"name": fmt.Sprintf("Dr. %d", i)})
		}
	}
	want := func(from, to int64) []int64 {
		var out []int64
		for s := from; s <= to; s++ {
			out = append(out, s)
		}
		return out
	}
	write(20) // seqs 2-21
	waitFor(t, 10*time.Second, "20 deliveries", func() bool { return len(rc.of(id)) == 20 })
	if r := s.Do(t, http.MethodPost, "/api/v1/webhooks/"+id+"/replay?since=11", tok, nil); r.Status != 200 {
		t.Fatalf("replay: %d %s", r.Status, r.Body)
	}
	waitFor(t, 10*time.Second, "the replay", func() bool { return len(rc.of(id)) >= 30 })
	write(5) // 22-26
	waitFor(t, 10*time.Second, "5 more", func() bool { return len(rc.of(id)) >= 35 })
	if got := rc.of(id); fmt.Sprint(got[20:]) != fmt.Sprint(append(want(12, 21), want(22, 26)...)) {
		t.Errorf("after the replay since 11: %v", got[20:])
	}

	rc.delay.Store(30)
	wrote := make(chan struct{})
	go func() { defer close(wrote); write(30) }()
	defer func() { <-wrote }()
	waitFor(t, 10*time.Second, "deliveries at 30 ms each", func() bool { return len(rc.of(id)) >= 38 })
	if r := s.Do(t, http.MethodPatch, "/api/v1/webhooks/"+id, tok, map[string]any{"enabled": false}); r.Status != 200 {
		t.Fatalf("disable: %d %s", r.Status, r.Body)
	}
	at := len(rc.of(id))
	time.Sleep(500 * time.Millisecond)
	if n := len(rc.of(id)); n > at+1 {
		t.Errorf("%d requests after the subscription was disabled", n-at)
	}
}
