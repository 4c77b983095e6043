package relay_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/testdb"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/relay"
	"github.com/clinicpulse/clinicpulse/store"
)

// TestAwaitDispatched: AwaitDispatched returns once every sink holds the
// write's last seq (never before), and with ctx's error while it is not
// dispatched.
func TestAwaitDispatched(t *testing.T) {
	url, _ := testdb.URL(t)
	var rl *relay.Relay
	st, err := store.Open(context.Background(), url, store.Options{
		OnCommit: func(tenant string, head int64, _ int) { rl.Nudge(tenant, head) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec := newRecorder()
	rl = relay.New(st, 0, nil) // no scan: only nudges dispatch
	rl.AddSink(rec)
	if err := rl.Start(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Not running yet: a committed write is not dispatched, and the wait
	// ends with its context.
	actor := models.NewContextWithActor(context.Background(), models.Actor{Subject: "w", TenantID: "await", Role: models.RoleAdmin})
	pos := &models.WritePosition{}
	if _, err := st.Create(models.NewContextWithWritePosition(actor, pos), &models.Doctor{Name: "d"}); err != nil {
		t.Fatal(err)
	}
	if pos.Seq != 1 {
		t.Fatalf("write position %d, want 1", pos.Seq)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := rl.AwaitDispatched(ctx, "await", pos.Seq); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("await before the relay runs: %v", err)
	}

	run, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rl.Run(run); close(done) }()
	defer func() { stop(); <-done }()
	rl.Nudge("await", pos.Seq)
	for range 50 {
		if _, err := st.Create(models.NewContextWithWritePosition(actor, pos), &models.Doctor{Name: "d"}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := rl.AwaitDispatched(ctx, "await", pos.Seq)
		cancel()
		if err != nil {
			t.Fatalf("await seq %d: %v", pos.Seq, err)
		}
		if n := rec.len("await"); int64(n) < pos.Seq {
			t.Fatalf("await returned at seq %d, the sink holds %d events", pos.Seq, n)
		}
	}
}
