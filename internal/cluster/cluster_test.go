package cluster_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/internal/testdb"
	"github.com/clinicpulse/clinicpulse/models"
)

// follower follows a tenant's stream like a resuming client: on any cut it
// reconnects (to the next instance it is given) with Last-Event-ID.
type follower struct {
	mu     sync.Mutex
	seqs   []int64
	resets int
	conns  int
}

func (f *follower) last() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.seqs) == 0 {
		return 0
	}
	return f.seqs[len(f.seqs)-1]
}

func (f *follower) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seqs)
}

// follow reads streams from the servers in turn (round robin on each cut)
// until ctx ends. since is the cursor of the first connection.
func (f *follower) follow(ctx context.Context, servers func() []string, token string, since int64, connected chan<- struct{}) {
	i := 0
	first := true
	for ctx.Err() == nil {
		list := servers()
		base := list[i%len(list)]
		i++
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/stream?since="+strconv.FormatInt(since, 10), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if l := f.last(); l > 0 {
			req.Header.Set("Last-Event-ID", strconv.FormatInt(l, 10))
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if res.StatusCode != 200 {
			res.Body.Close()
			time.Sleep(50 * time.Millisecond)
			continue
		}
		f.mu.Lock()
		f.conns++
		f.mu.Unlock()
		if first && connected != nil {
			connected <- struct{}{}
			first = false
		}
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event:"):
				event = strings.TrimSpace(line[6:])
			case strings.HasPrefix(line, "data:"):
				if event == "reset" {
					f.mu.Lock()
					f.resets++
					f.mu.Unlock()
					continue
				}
				var env models.Event
				if json.Unmarshal([]byte(strings.TrimSpace(line[5:])), &env) == nil {
					f.mu.Lock()
					f.seqs = append(f.seqs, env.Seq)
					f.mu.Unlock()
				}
			case line == "":
				event = ""
			}
		}
		res.Body.Close()
	}
}

// followers starts one follower per server list and returns once each has
// its first stream open.
func followers(ctx context.Context, token string, lists ...func() []string) []*follower {
	connected := make(chan struct{}, len(lists))
	fs := make([]*follower, len(lists))
	for i, l := range lists {
		fs[i] = &follower{}
		go fs[i].follow(ctx, l, token, 0, connected)
	}
	for range fs {
		<-connected
	}
	return fs
}

// pinned returns server lists of one instance each.
func pinned(servers ...*apptest.Server) []func() []string {
	out := make([]func() []string, len(servers))
	for i, s := range servers {
		base := s.URL
		out[i] = func() []string { return []string{base} }
	}
	return out
}

func (f *follower) check(t *testing.T, name string, from, to int64) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.resets > 0 {
		t.Errorf("%s: %d resets", name, f.resets)
	}
	if int64(len(f.seqs)) != to-from {
		t.Errorf("%s: %d events, want %d", name, len(f.seqs), to-from)
	}
	for i, s := range f.seqs {
		if s != from+int64(i)+1 {
			t.Errorf("%s: position %d has seq %d, want %d (gap, duplicate or disorder)", name, i, s, from+int64(i)+1)
			return
		}
	}
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// three starts three instances on one fresh Postgres schema; urlSuffix is
// appended to its URL.
func three(t *testing.T, urlSuffix string) (a, b, c *apptest.Server) {
	t.Helper()
	url, dialect := testdb.URL(t)
	url += urlSuffix
	return apptest.StartURL(t, url, dialect, noScan), apptest.StartURL(t, url, dialect, noScan), apptest.StartURL(t, url, dialect, noScan)
}

// noScan proves delivery comes from LISTEN/NOTIFY, not the relay's safety net.
func noScan(c *app.Config) { c.RelayScan = time.Hour; c.Heartbeat = time.Second }

func head(t *testing.T, s *apptest.Server, tenant string) int64 {
	h, err := s.App.Store.LogHead(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	return h.Seq
}

// TestCrossInstanceFanOut: writes through A reach stream subscribers and
// long-polls on B and C, complete and in order.
func TestCrossInstanceFanOut(t *testing.T) {
	testdb.RequirePostgres(t)
	a, b, c := three(t, "")
	tok := a.Token("fan", models.RoleAdmin, "w")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fs := followers(ctx, tok, pinned(b, c, b, c)...)
	// A long-poll on C, waiting before the first write.
	type pollResult struct {
		status int
		at     time.Time
		events int
	}
	lp := make(chan pollResult, 1)
	go func() {
		r := c.Do(t, http.MethodGet, "/api/v1/events?since=0&wait=20", tok, nil)
		var page struct{ Events []any }
		json.Unmarshal(r.Body, &page)
		lp <- pollResult{r.Status, time.Now(), len(page.Events)}
	}()
	time.Sleep(200 * time.Millisecond)
	sent := time.Now()
	const writes = 100
	for i := range writes {
		a.Create(t, tok, "patients", map[string]any{"name": fmt.Sprintf("p%d", i)})
	}
	res := <-lp
	if res.status != 200 || res.events == 0 {
		t.Fatalf("long-poll on C: %d with %d events", res.status, res.events)
	}
	t.Logf("long-poll on C answered %v after the first write through A", res.at.Sub(sent).Round(time.Millisecond))
	waitFor(t, "all followers", 15*time.Second, func() bool {
		for _, f := range fs {
			if f.count() < writes {
				return false
			}
		}
		return true
	})
	for i, f := range fs {
		f.check(t, fmt.Sprintf("follower %d", i), 0, writes)
	}
}

// TestInstanceDiesMidStream: the clients of an instance that stops resume
// on another from their cursor, with nothing lost or doubled.
func TestInstanceDiesMidStream(t *testing.T) {
	testdb.RequirePostgres(t)
	a, b, c := three(t, "")
	tok := a.Token("die", models.RoleAdmin, "w")
	var mu sync.Mutex
	alive := []string{b.URL, c.URL}
	servers := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), alive...) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first connection of each goes to B.
	fs := followers(ctx, tok, servers, servers, servers, servers, servers, servers)
	const writes = 300
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range writes {
			a.Create(t, tok, "patients", map[string]any{"name": fmt.Sprintf("p%d", i)})
			if i == writes/3 {
				mu.Lock()
				alive = []string{c.URL}
				mu.Unlock()
				go b.Stop() // B dies mid-stream
			}
		}
	}()
	<-done
	waitFor(t, "all followers", 20*time.Second, func() bool {
		for _, f := range fs {
			if f.count() < writes {
				return false
			}
		}
		return true
	})
	time.Sleep(100 * time.Millisecond)
	for i, f := range fs {
		f.check(t, fmt.Sprintf("follower %d", i), 0, writes)
		if f.conns < 2 {
			t.Errorf("follower %d never moved to another instance (%d connections)", i, f.conns)
		}
	}
}

// TestListenerCut: the listeners of B and C lose their connection (their
// backends are terminated) while writes go on through A; after they
// reconnect, every subscriber on every instance has every event.
func TestListenerCut(t *testing.T) {
	testdb.RequirePostgres(t)
	app := "cut" + strings.ToLower(models.NewID("x")[2:10])
	a, b, c := three(t, "&application_name="+app)
	tok := a.Token("cut", models.RoleAdmin, "w")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fs := followers(ctx, tok, pinned(a, b, c)...)
	const writes = 200
	for i := range writes {
		a.Create(t, tok, "patients", map[string]any{"name": fmt.Sprintf("p%d", i)})
		if i%50 == 25 {
			res := a.App.Store.DB().Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ?", app+"-listener")
			if res.Error != nil {
				t.Fatal(res.Error)
			}
		}
	}
	want := head(t, a, "cut")
	waitFor(t, "all followers after the cuts", 20*time.Second, func() bool {
		for _, f := range fs {
			if f.count() < int(want) {
				return false
			}
		}
		return true
	})
	for i, f := range fs {
		f.check(t, fmt.Sprintf("follower on instance %d", i), 0, want)
	}
	for _, s := range []*apptest.Server{b, c} {
		if st := s.App.Listener.Stats(); st.Reconnects == 0 {
			t.Errorf("listener never reconnected: %+v", st)
		}
	}
}
