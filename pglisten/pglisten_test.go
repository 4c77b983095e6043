package pglisten

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/testdb"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/jackc/pgx/v5"
)

type note struct {
	tenant string
	head   int64
}

// harness runs a listener on a channel and application name of its own:
// channels are database-wide, and tests of other packages share the database.
type harness struct {
	t       *testing.T
	l       *Listener
	app     string
	channel string
	notes   chan note
	connect chan int
	admin   *pgx.Conn
	cancel  context.CancelFunc
	done    chan struct{}
}

func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	testdb.RequirePostgres(t)
	id := strings.ToLower(models.NewID("x")[2:])
	h := &harness{t: t, app: "pglisten-test-" + id, channel: "pglisten_test_" + id,
		notes: make(chan note, 100), connect: make(chan int, 100), done: make(chan struct{})}
	cfg.URL, cfg.Channel, cfg.ApplicationName = os.Getenv("DATABASE_URL"), h.channel, h.app
	cfg.OnNotify = func(tenant string, head int64) { h.notes <- note{tenant, head} }
	var connects atomic.Int32
	next := cfg.OnConnect
	cfg.OnConnect = func(ctx context.Context) error {
		if next != nil {
			if err := next(ctx); err != nil {
				return err
			}
		}
		h.connect <- int(connects.Add(1))
		return nil
	}
	var err error
	if h.l, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	if h.admin, err = pgx.Connect(context.Background(), os.Getenv("DATABASE_URL")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { defer close(h.done); h.l.Run(ctx) }()
	t.Cleanup(func() {
		h.stop()
		h.admin.Close(context.Background())
	})
	return h
}

func (h *harness) stop() {
	h.t.Helper()
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(3 * time.Second):
		h.t.Fatal("Run did not return after its context ended")
	}
}

func (h *harness) notify(payload string) {
	h.t.Helper()
	if _, err := h.admin.Exec(context.Background(), "SELECT pg_notify($1, $2)", h.channel, payload); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) wantConnect(n int) time.Time {
	h.t.Helper()
	select {
	case got := <-h.connect:
		if got != n {
			h.t.Fatalf("connect #%d, want #%d", got, n)
		}
		at := time.Now()
		// OnConnect runs just before the listener counts the connection.
		for deadline := at.Add(2 * time.Second); h.l.Stats().Connects != int64(n); {
			if time.Now().After(deadline) {
				h.t.Fatalf("catch-up #%d ran, but stats say %+v", n, h.l.Stats())
			}
			time.Sleep(time.Millisecond)
		}
		return at
	case <-time.After(5 * time.Second):
		h.t.Fatalf("no connect #%d; stats %+v", n, h.l.Stats())
	}
	return time.Time{}
}

func (h *harness) wantNote(tenant string, head int64) {
	h.t.Helper()
	select {
	case n := <-h.notes:
		if n != (note{tenant, head}) {
			h.t.Fatalf("notification %+v, want %s %d", n, tenant, head)
		}
	case <-time.After(3 * time.Second):
		h.t.Fatalf("no notification %s %d; stats %+v", tenant, head, h.l.Stats())
	}
}

// backends counts the server processes of the listener's connection.
func (h *harness) backends() int {
	h.t.Helper()
	var n int
	if err := h.admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", h.app).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func TestListenerDeliversAndReconnects(t *testing.T) {
	before := runtime.NumGoroutine()
	h := start(t, Config{MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second, HealthCheck: 150 * time.Millisecond})
	h.wantConnect(1)
	st := h.l.Stats()
	if !st.Connected || st.PID == 0 || st.Connects != 1 || st.Reconnects != 0 {
		t.Fatalf("after connect: %+v", st)
	}

	h.notify("t1 5")
	h.wantNote("t1", 5)
	// A malformed payload is counted and skipped; the next one still arrives.
	h.notify("t1 five")
	h.notify("t1 6")
	h.wantNote("t1", 6)
	if st := h.l.Stats(); st.BadPayloads != 1 || st.Notifications != 2 || st.LastNotification.IsZero() {
		t.Fatalf("stats after a bad payload: %+v", st)
	}

	// Idle for several health checks: pings keep the same connection.
	time.Sleep(500 * time.Millisecond)
	if st2 := h.l.Stats(); !st2.Connected || st2.PID != st.PID || st2.Failures != 0 {
		t.Fatalf("after idle health checks: %+v (was pid %d)", st2, st.PID)
	}
	h.notify("t2 1")
	h.wantNote("t2", 1)

	// The database ends the listener's backend (as on a restart): it comes
	// back by itself, catches up (OnConnect), and receives again.
	killed := time.Now()
	var ok bool
	if err := h.admin.QueryRow(context.Background(), "SELECT pg_terminate_backend($1)", int(st.PID)).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend: %v %v", ok, err)
	}
	back := h.wantConnect(2)
	t.Logf("reconnected and caught up %v after pg_terminate_backend", back.Sub(killed).Round(time.Millisecond))
	st = h.l.Stats()
	if !st.Connected || st.Reconnects != 1 || st.Failures != 1 || st.LastError == "" || !st.DownSince.IsZero() {
		t.Fatalf("after reconnect: %+v", st)
	}
	h.notify("t1 7")
	h.wantNote("t1", 7)

	h.stop()
	if st := h.l.Stats(); st.Connected || st.PID != 0 {
		t.Fatalf("after stop: %+v", st)
	}
	// The server ends the backend shortly after the connection closes.
	for deadline := time.Now().Add(2 * time.Second); h.backends() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d backends of the listener remain after Run returned", h.backends())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// No goroutine of the listener outlives Run (the admin connection has none).
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after Run, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// A failed catch-up is never skipped: the listener drops the connection and
// tries the whole connect again.
func TestListenerRetriesFailedCatchUp(t *testing.T) {
	var calls atomic.Int32
	h := start(t, Config{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		OnConnect: func(ctx context.Context) error {
			if calls.Add(1) < 3 {
				return errors.New("database busy")
			}
			return nil
		}})
	h.wantConnect(1)
	st := h.l.Stats()
	if calls.Load() != 3 || st.Failures != 2 || !st.Connected || !strings.Contains(st.LastError, "database busy") {
		t.Fatalf("after two failed catch-ups: calls %d, %+v", calls.Load(), st)
	}
	h.notify("t1 1")
	h.wantNote("t1", 1)
}

// While the database is unreachable the listener keeps trying, backing off,
// and still stops at once when its context ends.
func TestListenerUnreachable(t *testing.T) {
	l, err := New(Config{URL: "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1", Channel: "x",
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 80 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	time.Sleep(400 * time.Millisecond)
	st := l.Stats()
	if st.Connected || st.Connects != 0 || st.Failures < 3 || st.LastError == "" {
		t.Fatalf("unreachable: %+v", st)
	}
	// Waits of 10, 20, 40, then 80ms at most (halved at worst by jitter):
	// far fewer attempts than a loop without backoff would make.
	if st.Failures > 20 {
		t.Fatalf("%d attempts in 400ms: the backoff does not hold", st.Failures)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := New(Config{URL: "postgres://127.0.0.1/x"}); err == nil {
		t.Error("no channel: want an error")
	}
	if _, err := New(Config{URL: "postgres://%zz", Channel: "c"}); err == nil {
		t.Error("bad URL: want an error")
	}
}
