package polling

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
)

func TestETag(t *testing.T) {
	staff := models.Actor{Subject: "u1", TenantID: "a", Role: models.RoleAdmin}
	base := newTagger(staff, "events", "since=0").at(5)
	if len(base) != 24 || base[0] != '"' || base[23] != '"' {
		t.Fatalf("tag %q", base)
	}
	if newTagger(staff, "events", "since=0").at(5) != base {
		t.Fatal("not deterministic")
	}
	// Everything that decides the body changes the tag.
	for name, other := range map[string]string{
		"head":     newTagger(staff, "events", "since=0").at(6),
		"has_more": newTagger(staff, "events", "since=0").more(5),
		"tenant":   newTagger(models.Actor{Subject: "u1", TenantID: "b", Role: models.RoleAdmin}, "events", "since=0").at(5),
		"endpoint": newTagger(staff, "patients", "since=0").at(5),
		"query":    newTagger(staff, "events", "since=1").at(5),
		"role":     newTagger(models.Actor{Subject: "u1", TenantID: "a", Role: models.RoleDoctor}, "events", "since=0").at(5),
		"patient":  newTagger(models.Actor{Subject: "p1", TenantID: "a", Role: models.RolePatient}, "events", "since=0").at(5),
		"patient2": newTagger(models.Actor{Subject: "p2", TenantID: "a", Role: models.RolePatient}, "events", "since=0").at(5),
		"display":  newTagger(models.Actor{Subject: "s", TenantID: "a", Role: models.RoleDisplay}, "events", "since=0").at(5),
		// A separator inside a value cannot forge another field.
		"split": newTagger(models.Actor{Subject: "u1", TenantID: "a\x00events", Role: models.RoleAdmin}, "", "since=0").at(5),
	} {
		if other == base {
			t.Errorf("%s does not change the tag", name)
		}
	}
	// Staff of one tenant share a view: another staff subject, same tag.
	if newTagger(models.Actor{Subject: "u2", TenantID: "a", Role: models.RoleAdmin}, "events", "since=0").at(5) != base {
		t.Error("two admins of one tenant get different tags for one body")
	}
}

func TestIfNoneMatch(t *testing.T) {
	tag := `"abc"`
	for field, want := range map[string]bool{
		`"abc"`: true, `W/"abc"`: true, `"x", "abc"`: true, `"x",W/"abc"`: true, `*`: true, ` "abc" `: true,
		``: false, `"ab"`: false, `abc`: false, `"abc`: false, `"x"`: false, `W/`: false, `"a,bc"`: false, `garbage, "abc"`: false,
	} {
		if got := ifNoneMatch(field, tag); got != want {
			t.Errorf("%q: %v, want %v", field, got, want)
		}
	}
}

func TestIntervals(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	p := New(nil, nil, Config{OverloadRate: 100, MaxStretch: 4, Now: clock})
	for h, want := range map[Health]time.Duration{HealthLive: 30 * time.Second, HealthUnknown: 15 * time.Second, HealthDown: 5 * time.Second} {
		if got := p.interval(h, now); got != want {
			t.Errorf("health %d: %v, want %v", h, got, want)
		}
	}
	// The mapping is configuration.
	q := New(nil, nil, Config{Intervals: Intervals{Live: time.Minute, Default: 20 * time.Second, Down: 2 * time.Second}})
	if q.interval(HealthLive, now) != time.Minute || q.interval(HealthUnknown, now) != 20*time.Second || q.interval(HealthDown, now) != 2*time.Second {
		t.Error("configured intervals are not used")
	}
	// Under overload: longer, in proportion, capped; never shorter.
	for range 200 {
		p.load.hit(now)
	}
	if got := p.interval(HealthDown, now); got != 10*time.Second {
		t.Errorf("at 2× the overload rate: %v, want 10s", got)
	}
	now = now.Add(time.Second)
	for range 1000 {
		p.load.hit(now)
	}
	if got := p.interval(HealthLive, now); got != 120*time.Second {
		t.Errorf("at 10× the overload rate: %v, want the 4× cap, 120s", got)
	}
	now = now.Add(10 * time.Second)
	if got := p.interval(HealthDown, now); got != 5*time.Second {
		t.Errorf("after the load: %v, want 5s", got)
	}
	if intervalHeader(15*time.Second) != "15" || intervalHeader(1500*time.Millisecond) != "2" {
		t.Error("intervalHeader")
	}
}

// fakeRelay stands in for the relay: a head per tenant and its dispatch lock.
type fakeRelay struct {
	mu    sync.Mutex
	heads map[string]int64
}

func (r *fakeRelay) Head(t string) int64 { r.mu.Lock(); defer r.mu.Unlock(); return r.heads[t] }
func (r *fakeRelay) Sync(t string, fn func(int64)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(r.heads[t])
}
func (r *fakeRelay) publish(h *hub, t string, evs ...models.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h.publish(t, evs)
	r.heads[t] = evs[len(evs)-1].Seq
}

// TestHubWait: the hub wakes a waiter on a matching event only, reports the
// invisible events it let pass, never loses a wake-up that races the
// registration, and releases everything on close. Timers run in a synctest
// bubble.
func TestHubWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &fakeRelay{heads: map[string]int64{"a": 10}}
		h := newHub(r, 100)
		if h.head("a") != 10 {
			t.Fatal("head not initialised from the relay")
		}
		mine := func(e *models.Event) bool { return e.PatientID == "p1" }
		ctx := context.Background()

		type res struct {
			woke bool
			seen int64
		}
		done := make(chan res, 1)
		go func() {
			w, s := h.wait(ctx, "a", 10, mine, time.Now().Add(30*time.Second))
			done <- res{w, s}
		}()
		synctest.Wait()
		r.publish(h, "a", models.Event{Seq: 11, PatientID: "p2"})
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("woken by an event it does not see")
		default:
		}
		if h.head("a") != 11 {
			t.Fatal("head not advanced")
		}
		start := time.Now()
		r.publish(h, "a", models.Event{Seq: 12, PatientID: "p2"}, models.Event{Seq: 13, PatientID: "p1"})
		if got := <-done; !got.woke || time.Since(start) != 0 {
			t.Fatalf("not woken at once: %+v", got)
		}

		// Timeout: reports the last seq seen, which it did not match.
		go func() {
			w, s := h.wait(ctx, "a", 13, mine, time.Now().Add(5*time.Second))
			done <- res{w, s}
		}()
		synctest.Wait()
		r.publish(h, "a", models.Event{Seq: 14, PatientID: "p3"})
		start = time.Now()
		got := <-done
		if got.woke || got.seen != 14 || time.Since(start) != 5*time.Second {
			t.Fatalf("timeout: %+v after %v", got, time.Since(start))
		}

		// Behind: the relay published past after before the wait began.
		if w, _ := h.wait(ctx, "a", 12, mine, time.Now().Add(time.Second)); !w {
			t.Fatal("a wait behind the head must read at once")
		}

		// Close releases the held and refuses new waits.
		go func() {
			w, s := h.wait(ctx, "a", 14, mine, time.Now().Add(time.Hour))
			done <- res{w, s}
		}()
		synctest.Wait()
		h.close()
		if got := <-done; got.woke {
			t.Fatal("close woke with woke=true")
		}
		if w, s := h.wait(ctx, "a", 14, mine, time.Now().Add(time.Hour)); w || s != 14 {
			t.Fatal("wait after close")
		}
		if h.waiters() != 0 {
			t.Fatalf("%d waiters left", h.waiters())
		}
	})
}

// TestHubKeepsNoIdleTenant: the hub keeps state for a tenant only while a
// long-poll waits on it. 10,000 made-up tenants asked about and waited on
// (each wait ending by its deadline, its context or a wake-up) leave
// nothing behind; a head asked about creates nothing.
func TestHubKeepsNoIdleTenant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &fakeRelay{heads: map[string]int64{}}
		h := newHub(r, 100000)
		all := func(*models.Event) bool { return true }
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for i := range 10000 {
			tenant := fmt.Sprintf("made-up-%d", i)
			if h.head(tenant) != 0 {
				t.Fatal("a made-up tenant has a head")
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				h.wait(ctx, tenant, 0, all, time.Now().Add(time.Duration(1+i%3)*time.Second))
			}()
		}
		synctest.Wait()
		if n := h.tenants(); n != 10000 {
			t.Fatalf("%d tenants with waiters, want 10000", n)
		}
		for i := range 100 {
			r.publish(h, fmt.Sprintf("made-up-%d", i), models.Event{Seq: 1})
		}
		time.Sleep(1500 * time.Millisecond) // a third of the waits time out
		cancel()                            // the others' requests end
		wg.Wait()
		if n, w := h.tenants(), h.waiters(); n != 0 || w != 0 {
			t.Fatalf("after the waits: %d tenants, %d waiters", n, w)
		}
	})
}

// TestHubMaxWaiters: over the bound, a wait answers at once.
func TestHubMaxWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub(&fakeRelay{heads: map[string]int64{}}, 2)
		all := func(*models.Event) bool { return true }
		for range 2 {
			go h.wait(context.Background(), "a", 0, all, time.Now().Add(time.Minute))
		}
		synctest.Wait()
		start := time.Now()
		if w, _ := h.wait(context.Background(), "a", 0, all, time.Now().Add(time.Minute)); w || time.Since(start) != 0 {
			t.Fatal("the third waiter was held")
		}
		h.close()
	})
}
