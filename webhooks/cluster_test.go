package webhooks_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/internal/testdb"
)

// TestThreeInstances: three instances on one Postgres deliver one
// subscription; exactly one holds its lease at a time. The holder is
// stopped in the middle of the writes: another takes the subscription over
// and the receiver ends with every event once, in order.
func TestThreeInstances(t *testing.T) {
	testdb.RequirePostgres(t)
	rc := startReceiver(t, 0)
	url, dialect := testdb.URL(t)
	var servers []*apptest.Server
	for range 3 {
		servers = append(servers, apptest.StartURL(t, url, dialect, fast))
	}
	tok := adminToken(servers[0])
	_, secret := createHook(t, servers[0], tok, rc.URL)
	rc.do("ok", map[string]any{"cmd": "secrets", "secrets": []string{secret}})
	rc.do("ok", map[string]any{"cmd": "delay", "ms": 5})

	const n = 300
	live := servers
	stopped := ""
	for i := range n {
		s := live[i%len(live)]
		s.Create(t, tok, "doctors", map[string]any{"name": fmt.Sprintf("Dr. %d", i)})
		if i == n/2 {
			// Stop whichever instance holds the lease now.
			var owner string
			waitFor(t, 10*time.Second, "a lease holder", func() bool {
				servers[0].App.Store.DB().Raw("SELECT lease_owner FROM webhooks").Scan(&owner)
				return owner != ""
			})
			for j, s := range live {
				if s.App.Webhooks.Owner() == owner {
					stopped = owner
					s.Stop()
					live = append(append([]*apptest.Server{}, live[:j]...), live[j+1:]...)
					break
				}
			}
			if stopped == "" {
				t.Fatalf("no instance holds the lease (%q)", owner)
			}
		}
	}
	waitFor(t, 60*time.Second, fmt.Sprintf("%d deliveries", n+1), func() bool { return len(rc.unique()) >= n+1 })
	for i, l := range rc.unique() {
		if l.Seq != int64(i+1) {
			t.Fatalf("delivery %d has seq %d", i, l.Seq)
		}
	}
	var owner string
	live[0].App.Store.DB().Raw("SELECT lease_owner FROM webhooks").Scan(&owner)
	if owner == stopped {
		t.Errorf("the stopped instance still holds the lease")
	}
	r := live[0].Do(t, http.MethodGet, "/api/v1/webhooks/stats", tok, nil)
	t.Logf("stats after takeover: %s", r.Body)
}
