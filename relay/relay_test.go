package relay_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/testdb"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/relay"
	"github.com/clinicpulse/clinicpulse/store"
)

// recorder is a sink that keeps what it was handed, per tenant.
type recorder struct {
	mu   sync.Mutex
	seqs map[string][]int64
}

func (r *recorder) Publish(tenant string, evs []models.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range evs {
		r.seqs[tenant] = append(r.seqs[tenant], e.Seq)
	}
}

func (r *recorder) len(tenant string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seqs[tenant])
}

// TestDispatchGapFreeInOrder: 8 writers on 2 tenants commit concurrently;
// their after-commit nudges race each other, yet every sink sees every
// event exactly once, in seq order, per tenant. Events committed before the
// relay started are history and are not dispatched.
func TestDispatchGapFreeInOrder(t *testing.T) {
	url, _ := testdb.URL(t)
	var rl *relay.Relay
	st, err := store.Open(context.Background(), url, store.Options{OnCommit: func(tenant string, head int64, _ int) {
		if rl != nil {
			rl.Nudge(tenant, head)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tenants := []string{"r1", "r2"}
	ctxOf := func(tenant string) context.Context {
		return models.NewContextWithActor(context.Background(), models.Actor{Subject: "w", TenantID: tenant, Role: models.RoleAdmin})
	}
	// History before the relay starts.
	for _, tn := range tenants {
		if _, err := st.Create(ctxOf(tn), &models.Doctor{Name: "before"}); err != nil {
			t.Fatal(err)
		}
	}
	rec := &recorder{seqs: map[string][]int64{}}
	rl = relay.New(st, time.Hour, nil) // no safety net: nudges alone must do it
	rl.AddSink(rec)
	if err := rl.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rl.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	const writers, per = 8, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tn := tenants[w%2]
			for i := range per {
				if _, err := st.Create(ctxOf(tn), &models.Patient{Name: fmt.Sprintf("%d-%d", w, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	want := writers / 2 * per
	deadline := time.Now().Add(10 * time.Second)
	for _, tn := range tenants {
		for rec.len(tn) < want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	time.Sleep(50 * time.Millisecond) // anything extra would show up now
	for _, tn := range tenants {
		got := rec.seqs[tn]
		if len(got) != want {
			t.Fatalf("%s: %d events dispatched, want %d", tn, len(got), want)
		}
		for i, s := range got {
			if s != int64(i+2) { // seq 1 was history
				t.Fatalf("%s: position %d has seq %d, want %d", tn, i, s, i+2)
			}
		}
		if h := rl.Head(tn); h != int64(want+1) {
			t.Fatalf("%s: relay head %d, want %d", tn, h, want+1)
		}
	}
}

// TestSafetyNetScan: a commit whose nudge was lost is dispatched by the scan.
func TestSafetyNetScan(t *testing.T) {
	url, _ := testdb.URL(t)
	st, err := store.Open(context.Background(), url, store.Options{}) // no OnCommit: every nudge is lost
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec := &recorder{seqs: map[string][]int64{}}
	rl := relay.New(st, 50*time.Millisecond, nil)
	rl.AddSink(rec)
	if err := rl.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rl.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	actor := models.NewContextWithActor(context.Background(), models.Actor{Subject: "w", TenantID: "lost", Role: models.RoleAdmin})
	for range 3 {
		if _, err := st.Create(actor, &models.Doctor{Name: "d"}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for rec.len("lost") < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := rec.seqs["lost"]; len(got) != 3 || got[0] != 1 || got[2] != 3 {
		t.Fatalf("scan dispatched %v, want [1 2 3]", got)
	}
}
