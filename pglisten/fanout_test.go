package pglisten_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/internal/testdb"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/jackc/pgx/v5"
)

// cluster is three instances on one database, whose listeners carry an
// application name of their own so the test terminates only them.
type cluster struct {
	a, b, c  *apptest.Server
	tenant   string
	token    string
	listener string // the listeners' application_name
	admin    *pgx.Conn
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	testdb.RequirePostgres(t)
	base, dialect := testdb.URL(t)
	id := strings.ToLower(models.NewID("x")[2:])
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", "cpfan-"+id)
	u.RawQuery = q.Encode()
	// No safety-net scan within the test: what B and C receive comes
	// through LISTEN/NOTIFY and the listener's catch-up.
	noScan := func(c *app.Config) { c.RelayScan = time.Hour }
	cl := &cluster{tenant: "fan-" + id, listener: "cpfan-" + id + "-listener"}
	cl.a = apptest.StartURL(t, u.String(), dialect, noScan)
	cl.b = apptest.StartURL(t, u.String(), dialect, noScan)
	cl.c = apptest.StartURL(t, u.String(), dialect, noScan)
	cl.token = cl.a.Token(cl.tenant, models.RoleCoordinator, "coordinator-1")
	if cl.admin, err = pgx.Connect(context.Background(), os.Getenv("DATABASE_URL")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.admin.Close(context.Background()) })
	cl.waitListening(t, nil)
	return cl
}

// listeners returns the backend pids of the cluster's listeners that have
// run LISTEN.
func (cl *cluster) listeners(t *testing.T) []int {
	t.Helper()
	rows, err := cl.admin.Query(context.Background(),
		"SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%' ORDER BY pid", cl.listener)
	if err != nil {
		t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

// waitListening waits until three listeners listen, none of them in old.
func (cl *cluster) waitListening(t *testing.T, old []int) time.Time {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := cl.listeners(t)
		if len(pids) == 3 && !slices.ContainsFunc(pids, func(p int) bool { return slices.Contains(old, p) }) {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("listeners %v (old %v): want three new ones", pids, old)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// terminate ends the cluster's listener backends, as a database restart would.
func (cl *cluster) terminate(t *testing.T) []int {
	t.Helper()
	pids := cl.listeners(t)
	var n int
	if err := cl.admin.QueryRow(context.Background(),
		"SELECT count(*) FROM (SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1) k WHERE ok",
		cl.listener).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("terminated %d listener backends, want 3", n)
	}
	return pids
}

// gone waits until the backends pids have exited.
func (cl *cluster) gone(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := cl.admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", pids).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("terminated backends %v still there", pids)
		}
		time.Sleep(time.Millisecond)
	}
}

// write commits one change through A (safe from any goroutine).
func (cl *cluster) write(i int) error {
	req, err := http.NewRequest(http.MethodPost, cl.a.URL+"/api/v1/patients", bytes.NewBufferString(fmt.Sprintf(`{"name":"Patient %d"}`, i)))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cl.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("write %d: status %d", i, res.StatusCode)
	}
	return nil
}

func (cl *cluster) head(t *testing.T) int64 {
	t.Helper()
	h, err := cl.a.App.Store.LogHead(context.Background(), cl.tenant)
	if err != nil {
		t.Fatal(err)
	}
	return h.Seq
}

// reach waits until B's and C's relays have dispatched through head. While
// no write is in flight they must not go beyond it.
func (cl *cluster) reach(t *testing.T, head int64, within time.Duration, quiet bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		b, c := cl.b.App.Relay.Head(cl.tenant), cl.c.App.Relay.Head(cl.tenant)
		if b >= head && c >= head {
			if quiet && (b > head || c > head) {
				t.Fatalf("relay heads B %d, C %d beyond the log's head %d", b, c, head)
			}
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v relay heads B %d, C %d; want %d", within, b, c, head)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// A write through A reaches the relays of B and C through LISTEN/NOTIFY.
func TestFanOutAcrossInstances(t *testing.T) {
	cl := startCluster(t)
	const n = 40
	lat := make([]time.Duration, 0, n)
	for i := range n {
		if err := cl.write(i); err != nil {
			t.Fatal(err)
		}
		committed := time.Now() // the response follows the commit
		head := cl.head(t)
		if head != int64(i+1) {
			t.Fatalf("log head %d after %d writes", head, i+1)
		}
		lat = append(lat, cl.reach(t, head, 2*time.Second, true).Sub(committed))
	}
	slices.Sort(lat)
	t.Logf("write through A → relay head on B and C, %d writes: p50 %v, p90 %v, max %v (from A's response; the relay head is polled every 200µs)",
		n, lat[n/2].Round(10*time.Microsecond), lat[n*9/10].Round(10*time.Microsecond), lat[n-1].Round(10*time.Microsecond))
	if lat[n/2] > 100*time.Millisecond {
		t.Errorf("median cross-instance delivery %v: too slow for a LISTEN path", lat[n/2])
	}
}

// The listeners' backends are terminated while writes continue through A:
// they reconnect, catch up from the log, and B and C reach A's head.
func TestFanOutSurvivesListenerLoss(t *testing.T) {
	cl := startCluster(t)
	for i := range 5 {
		if err := cl.write(i); err != nil {
			t.Fatal(err)
		}
	}
	cl.reach(t, cl.head(t), 2*time.Second, true)

	// Writes keep coming through A, across the loss.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 100; ctx.Err() == nil; i++ {
			if werr = cl.write(i); werr != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	killed := time.Now()
	old := cl.terminate(t)
	atKill := cl.head(t)
	relisten := cl.waitListening(t, old)
	caught := cl.reach(t, atKill, 5*time.Second, false)
	time.Sleep(300 * time.Millisecond)
	stop()
	wg.Wait()
	stopped := time.Now()
	if werr != nil {
		t.Fatal(werr)
	}
	final := cl.head(t)
	done := cl.reach(t, final, 5*time.Second, true)
	t.Logf("listeners terminated under writes: LISTEN again after %v; B and C had every event of the kill moment (head %d) after %v; final head %d reached %v after the last write",
		relisten.Sub(killed).Round(time.Millisecond), atKill, caught.Sub(killed).Round(time.Millisecond), final, done.Sub(stopped).Round(time.Millisecond))

	// Now a write lands while nobody listens and nothing follows it: only
	// the catch-up after the reconnect can deliver it (the scan is 1h).
	old = cl.terminate(t)
	killed = time.Now()
	cl.gone(t, old)
	if err := cl.write(1000); err != nil {
		t.Fatal(err)
	}
	wrote := time.Now().Sub(killed)
	if pids := cl.listeners(t); len(pids) > 0 {
		// The backoff is at least 50ms; under heavy load a listener may be
		// back already and the NOTIFY may have delivered the write.
		t.Logf("listeners %v were back before the write committed: this run did not isolate the catch-up", pids)
	}
	final = cl.head(t)
	done = cl.reach(t, final, 5*time.Second, true)
	t.Logf("a write %v after the kill, with no write after it: B and C at head %d %v after the kill", wrote.Round(time.Millisecond), final, done.Sub(killed).Round(time.Millisecond))
	cl.waitListening(t, old)
}
