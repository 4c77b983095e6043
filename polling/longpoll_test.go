package polling_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

type held struct {
	status int
	header http.Header
	body   []byte
	err    error
	at     time.Time
}

// hold starts a long-poll and returns its result on a channel.
func hold(s *apptest.Server, path, token string, headers ...string) <-chan held {
	ch := make(chan held, 1)
	go func() {
		st, h, b, err := rawGet(context.Background(), s.URL+path, token, headers...)
		ch <- held{st, h, b, err, time.Now()}
	}()
	return ch
}

func (h held) page(t testing.TB) page {
	t.Helper()
	if h.err != nil || h.status != http.StatusOK {
		t.Fatalf("long-poll: %d %v %s", h.status, h.err, h.body)
	}
	var p page
	if err := json.Unmarshal(h.body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLongPollWakeUp: a poll with wait=30 gets a write committed 1 s later
// at once; then 20 more samples give the wake-up latency after the commit.
func TestLongPollWakeUp(t *testing.T) {
	s := apptest.Start(t)
	admin := s.Token("lp", models.RoleAdmin, "u")
	newPatient(t, s, admin, "First")
	h := head(t, s, admin)
	waitHead(t, s, admin, h)

	start := time.Now()
	ch := hold(s, fmt.Sprintf("/api/v1/events?since=%d&wait=30", h), admin)
	time.Sleep(time.Second)
	sent := time.Now()
	id := newPatient(t, s, admin, "Second")
	answered := time.Now()
	res := <-ch
	p := res.page(t)
	if len(p.Events) != 1 || p.Events[0].ID != id || p.Cursor != h+1 {
		t.Fatalf("woken with %+v", p)
	}
	if d := res.at.Sub(start); d > 3*time.Second {
		t.Fatalf("the long-poll took %v (the write was at 1 s, the wait 30 s)", d)
	}
	t.Logf("wait=30, write at 1 s: answered after %v; %v after the POST was sent, %v after its 201 arrived",
		res.at.Sub(start).Round(time.Millisecond), res.at.Sub(sent).Round(100*time.Microsecond), res.at.Sub(answered).Round(100*time.Microsecond))

	// Latency samples: the poll is held, a write commits, the poll answers.
	// Commit lies between the POST being sent and its 201 arriving, so
	// "after sent" bounds the latency from above.
	var lat []time.Duration
	cursor := p.Cursor
	for i := range 20 {
		ch := hold(s, fmt.Sprintf("/api/v1/events?since=%d&wait=30", cursor), admin)
		time.Sleep(50 * time.Millisecond)
		sent := time.Now()
		newPatient(t, s, admin, fmt.Sprint("L", i))
		res := <-ch
		p := res.page(t)
		if len(p.Events) != 1 {
			t.Fatalf("sample %d: %+v", i, p)
		}
		cursor = p.Cursor
		lat = append(lat, res.at.Sub(sent))
	}
	slices.Sort(lat)
	t.Logf("long-poll wake-up, POST sent → poll answered (upper bound on commit → answer), %d samples on %s: p50 %v, p90 %v, max %v",
		len(lat), s.Dialect, lat[len(lat)/2].Round(100*time.Microsecond), lat[len(lat)*9/10].Round(100*time.Microsecond), lat[len(lat)-1].Round(100*time.Microsecond))
	if lat[len(lat)/2] > 250*time.Millisecond {
		t.Errorf("median wake-up %v", lat[len(lat)/2])
	}
}

// TestLongPollScope: a held poll is not woken by events the caller does not
// see, and answers with only what it sees.
func TestLongPollScope(t *testing.T) {
	s := apptest.Start(t)
	admin := s.Token("lps", models.RoleAdmin, "u")
	p1 := newPatient(t, s, admin, "Mine")
	doc := s.Create(t, admin, "doctors", map[string]any{"name": "Dr. Who"})["id"].(string)
	h := head(t, s, admin)
	waitHead(t, s, admin, h)
	pat := s.Token("lps", models.RolePatient, p1)

	start := time.Now()
	ch := hold(s, fmt.Sprintf("/api/v1/events?since=%d&wait=30", h), pat)
	list := hold(s, fmt.Sprintf("/api/v1/patients?since=%d&wait=30", h), admin)
	time.Sleep(300 * time.Millisecond)
	other := newPatient(t, s, admin, "Someone else") // the patient does not see it
	at := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	s.Create(t, admin, "appointments", map[string]any{"patient_id": other, "doctor_id": doc, "starts_at": at, "ends_at": at.Add(time.Hour)}) // nor does the patients list
	time.Sleep(500 * time.Millisecond)
	select {
	case r := <-ch:
		t.Fatalf("woken by another patient's event after %v: %s", r.at.Sub(start), r.body)
	default:
	}
	r := s.Do(t, http.MethodPatch, "/api/v1/patients/"+p1, admin, map[string]any{"phone": "555"})
	if r.Status != http.StatusOK {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	res := <-ch
	p := res.page(t)
	if len(p.Events) != 1 || p.Events[0].ID != p1 || p.Events[0].Type != "patients.updated" || p.Cursor < p.Events[0].Seq {
		t.Fatalf("patient woken with %s", res.body)
	}
	if d := res.at.Sub(start); d < 800*time.Millisecond || d > 5*time.Second {
		t.Fatalf("patient answered after %v", d)
	}
	// The list delta long-poll woke on the first patient write, not the appointment.
	lr := <-list
	var delta struct {
		Items  []map[string]any `json:"items"`
		Cursor int64            `json:"cursor"`
	}
	if err := json.Unmarshal(lr.body, &delta); err != nil || lr.status != http.StatusOK || len(delta.Items) < 1 || lr.header.Get("ETag") == "" {
		t.Fatalf("list long-poll: %d %s", lr.status, lr.body)
	}
	if d := lr.at.Sub(start); d > 800*time.Millisecond {
		t.Fatalf("list long-poll answered after %v", d)
	}
}

// TestLongPollTimeout: a held poll with nothing new answers when the wait
// ends: 200 empty at the same cursor, or 304 when If-None-Match matched.
// No database statement runs while it waits; a tagged since costs one
// primary-key read before it (its check), a plain one a read at the end
// (the page's position).
func TestLongPollTimeout(t *testing.T) {
	s, queries := startCounted(t)
	admin := s.Token("lpt", models.RoleAdmin, "u")
	newPatient(t, s, admin, "P")
	h := head(t, s, admin)
	waitHead(t, s, admin, h)
	var at models.EventPage
	s.Do(t, http.MethodGet, "/api/v1/events?since=0", admin, nil).JSON(t, &at)
	if at.Cursor != h || !strings.HasPrefix(at.Position, fmt.Sprintf("%d.", h)) {
		t.Fatalf("page at the head: %+v", at)
	}
	r := s.Do(t, http.MethodGet, "/api/v1/events?since="+at.Position, admin, nil)
	tag := r.Header.Get("ETag")
	lr := s.Do(t, http.MethodGet, "/api/v1/patients", admin, nil)
	queries.Store(0)

	start := time.Now()
	a := hold(s, "/api/v1/events?wait=1&since="+at.Position, admin)
	b := hold(s, "/api/v1/events?wait=1&since="+at.Position, admin, "If-None-Match", tag)
	c := hold(s, "/api/v1/patients?wait=1", admin, "If-None-Match", lr.Header.Get("ETag"))
	ra, rb, rc := <-a, <-b, <-c
	if p := ra.page(t); len(p.Events) != 0 || p.Cursor != h || p.Position != at.Position || ra.header.Get("ETag") != tag {
		t.Fatalf("timeout: %s %q", ra.body, ra.header.Get("ETag"))
	}
	if rb.status != http.StatusNotModified || len(rb.body) != 0 || rc.status != http.StatusNotModified {
		t.Fatalf("timeout with If-None-Match: %d %d", rb.status, rc.status)
	}
	for _, r := range []held{ra, rb, rc} {
		if d := r.at.Sub(start); d < 900*time.Millisecond || d > 3*time.Second {
			t.Fatalf("wait=1 answered after %v", d)
		}
	}
	// One statement: the check of a's tagged since, before its wait (b and
	// c were answered by If-None-Match).
	if n := queries.Load(); n != 1 {
		t.Fatalf("held polls ran %d database statements, want 1", n)
	}
}

// TestLongPollShutdown: held polls are released when the server stops.
func TestLongPollShutdown(t *testing.T) {
	s := apptest.Start(t)
	admin := s.Token("lpd", models.RoleAdmin, "u")
	h := head(t, s, admin)
	waitHead(t, s, admin, h)
	var chs []<-chan held
	for range 5 {
		chs = append(chs, hold(s, fmt.Sprintf("/api/v1/events?since=%d&wait=55", h), admin))
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	stopped := make(chan struct{})
	go func() { s.Stop(); close(stopped) }()
	for _, ch := range chs {
		r := <-ch
		if r.err == nil && r.status != http.StatusOK {
			t.Errorf("released with %d %s", r.status, r.body)
		}
	}
	<-stopped
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("shutdown took %v with held polls", d)
	}
}
