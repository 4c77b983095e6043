package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/testdb"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/relay"
	"github.com/clinicpulse/clinicpulse/store"
)

// recorder is a sink that keeps what it was handed, per tenant: the seqs,
// and a trace of seqs and skipped holes in the order they came.
type recorder struct {
	mu    sync.Mutex
	seqs  map[string][]int64
	trace map[string][]string
}

func newRecorder() *recorder {
	return &recorder{seqs: map[string][]int64{}, trace: map[string][]string{}}
}

func (r *recorder) Publish(tenant string, evs []models.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range evs {
		r.seqs[tenant] = append(r.seqs[tenant], e.Seq)
		r.trace[tenant] = append(r.trace[tenant], fmt.Sprint(e.Seq))
	}
}

// Skip implements relay.Skipper.
func (r *recorder) Skip(tenant string, after, through int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trace[tenant] = append(r.trace[tenant], fmt.Sprintf("skip %d-%d", after, through))
}

// runRelay starts a relay over log publishing to sink, and returns it with
// the function that stops it.
func runRelay(t *testing.T, log relay.Log, interval time.Duration, sink relay.Sink) (*relay.Relay, func()) {
	t.Helper()
	rl := relay.New(log, interval, nil)
	rl.AddSink(sink)
	if err := rl.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rl.Run(ctx); close(done) }()
	return rl, func() { cancel(); <-done }
}

func (r *recorder) seqsOf(tenant string) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seqs[tenant])
}

func (r *recorder) traceOf(tenant string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.trace[tenant])
}

// countingLog is the store, counting the relay's LogHead queries.
type countingLog struct {
	*store.Store
	logHeads atomic.Int64
}

func (l *countingLog) LogHead(ctx context.Context, tenant string) (store.Head, error) {
	l.logHeads.Add(1)
	return l.Store.LogHead(ctx, tenant)
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
	rec := newRecorder()
	cl := &countingLog{Store: st}
	var stop func()
	rl, stop = runRelay(t, cl, time.Hour, rec) // no safety net: nudges alone must do it
	defer stop()

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
	// Racing nudges make empty and partial reads, never a hole: the hot
	// path asks the log nothing but its events.
	if n := cl.logHeads.Load(); n != 0 {
		t.Fatalf("%d LogHead queries without a hole, want 0", n)
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
	rec := newRecorder()
	_, stop := runRelay(t, st, 50*time.Millisecond, rec)
	defer stop()
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

// syncBuffer is a log destination safe for the relay's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestPrunedHole: the relay stalled (here: it has not run yet and every
// nudge was lost) while its tenants' events after what it dispatched were
// pruned. Tenant "hole" has events after the pruned ones, tenant "gone" has
// none. The relay must move past each hole (one LogHead query each), tell
// the sinks that can hear it which seqs will never come, log a warning
// without patient data, and then dispatch without a gap as before.
func TestPrunedHole(t *testing.T) {
	url, dialect := testdb.URL(t)
	var offset atomic.Int64 // the store's clock runs ahead by this
	var rlp atomic.Pointer[relay.Relay]
	st, err := store.Open(context.Background(), url, store.Options{
		Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) },
		OnCommit: func(tenant string, head int64, _ int) {
			if rl := rlp.Load(); rl != nil {
				rl.Nudge(tenant, head)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const secret = "Ada Secretname"
	create := func(tenant string, n int) {
		t.Helper()
		ctx := models.NewContextWithActor(context.Background(), models.Actor{Subject: "w", TenantID: tenant, Role: models.RoleAdmin})
		for range n {
			if _, err := st.Create(ctx, &models.Patient{Name: secret}); err != nil {
				t.Fatal(err)
			}
		}
	}
	create("hole", 1) // history: seq 1 is dispatched at Start
	create("gone", 1)

	rec := newRecorder()
	cl := &countingLog{Store: st}
	logs := &syncBuffer{}
	rl := relay.New(cl, 30*time.Millisecond, slog.New(slog.NewTextHandler(logs, nil)))
	rl.AddSink(rec)
	if err := rl.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The stall: seqs 2-4 are committed, never dispatched, and pruned.
	create("hole", 3)
	create("gone", 3)
	offset.Store(int64(2 * time.Hour))
	if _, err := st.Prune(context.Background(), time.Hour); err != nil {
		t.Fatal(err)
	}
	create("hole", 2) // seqs 5 and 6, after the hole
	for _, tn := range []string{"hole", "gone"} {
		if h, err := st.LogHead(context.Background(), tn); err != nil || h.PrunedThrough != 4 {
			t.Fatalf("%s: log head %+v, %v; want pruned through 4", tn, h, err)
		}
	}
	if h := rl.Head("hole"); h != 1 {
		t.Fatalf("relay head %d before it runs, want 1", h)
	}

	rlp.Store(rl) // from here nudges reach the relay
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := time.Now()
	go func() { rl.Run(ctx); close(done) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	defer stop()

	wait := func(tenant string, head int64) time.Duration {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for rl.Head(tenant) < head && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if h := rl.Head(tenant); h != head {
			t.Fatalf("%s: relay head %d after %v, want %d (the log's head; events through 4 were pruned)",
				tenant, h, time.Since(start).Round(time.Millisecond), head)
		}
		return time.Since(start)
	}
	tHole, tGone := wait("hole", 6), wait("gone", 4)
	t.Logf("%s relay moved past the holes: tenant hole (events after it) in %v, tenant gone (none after it) in %v; scan period 30ms",
		testdb.Describe(dialect), tHole.Round(time.Millisecond), tGone.Round(time.Millisecond))

	// Past the hole, new events are dispatched as usual, from a nudge.
	create("hole", 1)
	create("gone", 1)
	wait("hole", 7)
	wait("gone", 5)
	time.Sleep(50 * time.Millisecond) // anything extra would show up now
	stop()

	for tn, want := range map[string][]string{
		"hole": {"skip 1-4", "5", "6", "7"},
		"gone": {"skip 1-4", "5"},
	} {
		if got := rec.traceOf(tn); !slices.Equal(got, want) {
			t.Errorf("%s: sink saw %q, want %q", tn, got, want)
		}
	}
	if n := cl.logHeads.Load(); n != 2 {
		t.Errorf("%d LogHead queries, want 2 (one per hole)", n)
	}
	out := logs.String()
	for _, tn := range []string{"hole", "gone"} {
		if !strings.Contains(out, "tenant="+tn+" after=1 through=4") {
			t.Errorf("no warning for %s's hole in the log:\n%s", tn, out)
		}
	}
	if n := strings.Count(out, "level=WARN"); n != 2 {
		t.Errorf("%d warnings, want 2:\n%s", n, out)
	}
	if strings.Contains(out, "Secretname") {
		t.Errorf("the log holds patient data:\n%s", out)
	}
}

// TestForgetsTenantsWithoutALog: asking the relay about tenants that have
// no log (10,000 made-up ids: a head, a registration through Sync, from
// several goroutines) leaves no entry behind, and forgetting is safe: a
// tenant asked about again and again while its first events commit gets
// every event dispatched once, in order, and every registration sees
// exactly the seq the sinks were last handed (never an earlier one, never
// one they were not handed), so a subscriber registered there misses
// nothing.
func TestForgetsTenantsWithoutALog(t *testing.T) {
	url, _ := testdb.URL(t)
	var rlp atomic.Pointer[relay.Relay]
	st, err := store.Open(context.Background(), url, store.Options{OnCommit: func(tenant string, head int64, _ int) {
		if rl := rlp.Load(); rl != nil {
			rl.Nudge(tenant, head)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctxOf := func(tenant string) context.Context {
		return models.NewContextWithActor(context.Background(), models.Actor{Subject: "w", TenantID: tenant, Role: models.RoleAdmin})
	}
	if _, err := st.Create(ctxOf("real"), &models.Doctor{Name: "history"}); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	rl, stop := runRelay(t, st, time.Hour, rec)
	rlp.Store(rl)
	defer stop()
	if n := rl.Tenants(); n != 1 {
		t.Fatalf("%d tenants after Start, want 1", n)
	}

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < 10000; i += 8 {
				id := fmt.Sprintf("made-up-%d", i)
				if rl.Head(id) != 0 {
					t.Errorf("%s has a head", id)
				}
				rl.Sync(id, func(d int64) {
					if d != 0 {
						t.Errorf("%s dispatched %d", id, d)
					}
				})
			}
		}()
	}
	wg.Wait()
	if n := rl.Tenants(); n != 1 {
		t.Fatalf("%d tenants after 10,000 made-up ones were asked about, want 1", n)
	}

	// A nudge naming a tenant without a log (a NOTIFY of another schema
	// sharing the database) costs one look at the log, and is forgotten;
	// the tenant's first real events are dispatched from 1.
	rl.Nudge("ghost", 42)
	for deadline := time.Now().Add(10 * time.Second); rl.Keeps("ghost"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the relay keeps a tenant without a log after a nudge")
		}
	}
	if _, err := st.Create(ctxOf("ghost"), &models.Doctor{Name: "first"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); rec.len("ghost") < 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the ghost tenant's first event was not dispatched")
		}
	}
	if got := rec.seqsOf("ghost"); !slices.Equal(got, []int64{1}) {
		t.Fatalf("ghost: dispatched %v, want [1]", got)
	}

	// A tenant with no log yet, asked about while its first events commit.
	const writes = 200
	done := make(chan struct{})
	var regs atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := int64(0)
			for {
				select {
				case <-done:
					return
				default:
				}
				rl.Sync("fresh", func(d int64) {
					seqs := rec.seqsOf("fresh")
					handed := int64(0)
					if len(seqs) > 0 {
						handed = seqs[len(seqs)-1]
					}
					if d != handed || d < last {
						t.Errorf("registered at %d after %d; the sinks were handed up to %d", d, last, handed)
					}
					last = d
				})
				regs.Add(1)
			}
		}()
	}
	for i := range writes {
		if _, err := st.Create(ctxOf("fresh"), &models.Patient{Name: fmt.Sprint("P", i)}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for rec.len("fresh") < writes && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(done)
	wg.Wait()
	got := rec.seqsOf("fresh")
	if len(got) != writes {
		t.Fatalf("fresh: %d events dispatched, want %d", len(got), writes)
	}
	for i, s := range got {
		if s != int64(i+1) {
			t.Fatalf("fresh: position %d has seq %d", i, s)
		}
	}
	if rl.Head("fresh") != writes || rl.Tenants() != 3 {
		t.Fatalf("fresh: head %d, %d tenants; want %d and 3 (a tenant with a log keeps its entry)", rl.Head("fresh"), rl.Tenants(), writes)
	}
	t.Logf("%d registrations raced the first %d events", regs.Load(), writes)
}
