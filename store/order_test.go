package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/testdb"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/store"
)

func openStore(t testing.TB, opts store.Options) *store.Store {
	t.Helper()
	url, _ := testdb.URL(t)
	s, err := store.Open(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func staff(tenant string) context.Context {
	return models.NewContextWithActor(context.Background(), models.Actor{Subject: "tester", TenantID: tenant, Role: models.RoleAdmin})
}

func mustCreate(t testing.TB, s *store.Store, ctx context.Context, rec models.Record) string {
	t.Helper()
	b, err := s.Create(ctx, rec)
	if err != nil {
		t.Fatalf("create %s: %v", rec.Entity(), err)
	}
	var m struct{ ID string }
	if err := json.Unmarshal(b, &m); err != nil || m.ID == "" {
		t.Fatalf("create %s: bad body %s", rec.Entity(), b)
	}
	return m.ID
}

// TestCommitOrderIsSeqOrder: 8 writers commit 200 changes each to one tenant
// while a reader keeps reading the log after its cursor. Were seqs allocated
// outside the commit order (a plain sequence), the reader would at some point
// see seq n+1 before seq n had committed, advance past n and never see it.
func TestCommitOrderIsSeqOrder(t *testing.T) {
	const writers, perWriter = 8, 200
	s := openStore(t, store.Options{})
	ctx := staff("order")
	doc := mustCreate(t, s, ctx, &models.Doctor{Name: "Dr. Order"})
	mustCreate(t, s, ctx, &models.Patient{Name: "P"})

	var done atomic.Bool
	var seen []models.Event
	var readErr error
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		var cursor int64
		for {
			finished := done.Load()
			evs, err := s.ReadEvents(context.Background(), models.EventQuery{TenantID: "order", After: cursor, Limit: 1000})
			if err != nil {
				readErr = err
				return
			}
			for _, e := range evs {
				seen = append(seen, e)
				cursor = e.Seq
			}
			if finished && len(evs) == 0 {
				return
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var pat string
			for i := range perWriter {
				var err error
				var b json.RawMessage
				if i%2 == 0 {
					b, err = s.Create(ctx, &models.Patient{Name: fmt.Sprintf("w%d-%d", w, i)})
					var m struct{ ID string }
					_ = json.Unmarshal(b, &m)
					pat = m.ID
				} else {
					// The patient just created: one active entry per
					// patient per doctor per day.
					_, err = s.Create(ctx, &models.QueueEntry{PatientID: pat, DoctorID: doc})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	done.Store(true)
	<-readerDone
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if readErr != nil {
		t.Fatal(readErr)
	}
	head, err := s.LogHead(context.Background(), "order")
	if err != nil {
		t.Fatal(err)
	}
	// 2 setup events; each patient create 1 event; each queue create 2 (entry + board).
	want := int64(2 + writers*perWriter/2*1 + writers*perWriter/2*2)
	if head.Seq != want {
		t.Fatalf("head = %d, want %d", head.Seq, want)
	}
	if int64(len(seen)) != want {
		t.Fatalf("reader saw %d events, want %d", len(seen), want)
	}
	for i, e := range seen {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d: gap or duplicate", i, e.Seq)
		}
	}
}

func TestPruneMarksExpiredCursor(t *testing.T) {
	now := time.Now()
	s := openStore(t, store.Options{Now: func() time.Time { return now }})
	ctx := staff("prune")
	for range 3 {
		mustCreate(t, s, ctx, &models.Doctor{Name: "D"})
	}
	now = now.Add(2 * time.Hour)
	n, err := s.Prune(context.Background(), time.Hour)
	if err != nil || n != 3 {
		t.Fatalf("prune = %d, %v; want 3", n, err)
	}
	mustCreate(t, s, ctx, &models.Doctor{Name: "D4"})
	_, err = s.PollEvents(ctx, models.EventQuery{TenantID: "prune", After: 1, Limit: 10})
	if models.ErrorCode(err) != models.EGONE {
		t.Fatalf("poll after pruned cursor: %v, want EGONE", err)
	}
	page, err := s.PollEvents(ctx, models.EventQuery{TenantID: "prune", After: 3, Limit: 10})
	if err != nil || len(page.Events) != 1 || page.Events[0].Seq != 4 || page.Cursor != 4 {
		t.Fatalf("poll from pruned head: %+v, %v", page, err)
	}
	if _, err = s.PollEvents(ctx, models.EventQuery{TenantID: "prune", After: 99, Limit: 10}); models.ErrorCode(err) != models.EGONE {
		t.Fatalf("cursor ahead of head: %v, want EGONE", err)
	}
}
