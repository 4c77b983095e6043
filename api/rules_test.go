package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// The clinic's rules (issue 12), through real HTTP on the test's database
// (SQLite, or Postgres when DATABASE_URL names it): for each rule the legal
// case, the refusal (status, problem+json naming the field and the
// conflicting records), the events emitted, and nothing written on refusal.

// clock is a settable clock for the server.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func withClock(c *clock) apptest.Option { return func(cfg *app.Config) { cfg.Now = c.Now } }

type problem struct {
	Type      string
	Status    int
	Detail    string
	Errors    []struct{ Field, Message string }
	Conflicts []string
}

// expectConflict checks a 409 problem naming field (when not "") and
// exactly the conflicting ids.
func expectConflict(t *testing.T, r *apptest.Response, field string, ids ...string) problem {
	t.Helper()
	expectProblem(t, r, http.StatusConflict, field)
	var p problem
	r.JSON(t, &p)
	if field != "" && (len(p.Errors) != 1 || p.Errors[0].Field != field) {
		t.Fatalf("409 names %+v, want field %s: %s", p.Errors, field, r.Body)
	}
	if !slices.Equal(p.Conflicts, ids) {
		t.Fatalf("conflicts %v, want %v: %s", p.Conflicts, ids, r.Body)
	}
	for _, id := range ids[:min(len(ids), 1)] {
		if !strings.Contains(p.Detail, id) && field != "" {
			t.Fatalf("detail does not name %s: %s", id, p.Detail)
		}
	}
	return p
}

// refused sends a request that must be refused with status and checks that
// it wrote no row and no event.
func (c *clinic) refused(t *testing.T, status int, method, path string, body any, headers ...string) *apptest.Response {
	t.Helper()
	before, head := counts(t, c.s), c.head(t)
	r := c.do(t, method, path, body, headers...)
	if r.Status != status {
		t.Fatalf("%s %s %v: %d %s, want %d", method, path, body, r.Status, r.Body, status)
	}
	if after := counts(t, c.s); !maps(before, after) || c.head(t) != head {
		t.Fatalf("%s %s refused with %d but wrote: %v → %v", method, path, status, before, after)
	}
	return r
}

func eventQuery(tenant string, after int64) models.EventQuery {
	return models.EventQuery{TenantID: tenant, After: after, Limit: 1000}
}

func slot(start time.Time, minutes int) (time.Time, time.Time) {
	return start, start.Add(time.Duration(minutes) * time.Minute)
}

func (c *clinic) book(patient, doctor string, start time.Time, minutes int) map[string]any {
	t0, t1 := slot(start, minutes)
	return map[string]any{"patient_id": patient, "doctor_id": doctor, "starts_at": t0, "ends_at": t1}
}

func id(m map[string]any) string { return m["id"].(string) }

func TestBookingRules(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "booking")
	doc2 := id(c.create(t, "doctors", map[string]any{"name": "Dr. Two"}))
	at := time.Now().UTC().Truncate(time.Minute).Add(2 * time.Hour)

	// Legal: a booking, and the doctor's next slot back to back with it.
	_, mark := c.events(t, 0)
	a := c.create(t, "appointments", c.book(c.patient, c.doctor, at, 20))
	b := c.create(t, "appointments", c.book(c.patient2, c.doctor, at.Add(20*time.Minute), 20))
	if evs, m := c.events(t, mark); fmtSeq(evs) != fmtSeq([]string{"appointments.created " + id(a), "appointments.created " + id(b)}) {
		t.Fatalf("booking events %s", fmtSeq(evs))
	} else {
		mark = m
	}

	// The same booking twice; the doctor busy; the patient busy with another doctor.
	expectConflict(t, c.refused(t, 409, "POST", "/api/v1/appointments", c.book(c.patient, c.doctor, at, 20)), "doctor_id", id(a))
	p3 := id(c.create(t, "patients", map[string]any{"name": "Cleo"}))
	expectConflict(t, c.refused(t, 409, "POST", "/api/v1/appointments", c.book(p3, c.doctor, at.Add(10*time.Minute), 5)), "doctor_id", id(a))
	expectConflict(t, c.refused(t, 409, "POST", "/api/v1/appointments", c.book(c.patient, doc2, at.Add(-10*time.Minute), 15)), "patient_id", id(a))
	// Overlapping both of the doctor's: both named, earliest first.
	expectConflict(t, c.refused(t, 409, "POST", "/api/v1/appointments", c.book(p3, c.doctor, at.Add(15*time.Minute), 10)), "doctor_id", id(a), id(b))

	// ends_at after starts_at; no booking in the past beyond the grace (15 min).
	for _, bad := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"patient_id": p3, "doctor_id": doc2, "starts_at": at, "ends_at": at}, "ends_at"},
		{map[string]any{"patient_id": p3, "doctor_id": doc2, "starts_at": at, "ends_at": at.Add(-time.Minute)}, "ends_at"},
		{map[string]any{"patient_id": p3, "doctor_id": doc2, "starts_at": at, "ends_at": at.Add(500 * time.Millisecond)}, "ends_at"},
		{map[string]any{"patient_id": p3, "doctor_id": doc2, "starts_at": at, "ends_at": at.Add(59 * time.Second)}, "ends_at"},
		{c.book(p3, doc2, time.Now().UTC().Add(-20*time.Minute), 30), "starts_at"},
		{c.book(p3, doc2, time.Now().UTC().Add(-48*time.Hour), 30), "starts_at"},
		// Too far ahead, and an offset that puts the time past year 9999
		// in UTC (a 500 from the event's JSON before): 400 naming the field.
		{c.book(p3, doc2, time.Now().UTC().Add(6*365*24*time.Hour), 30), "starts_at"},
		{map[string]any{"patient_id": p3, "doctor_id": doc2, "starts_at": "9999-12-31T23:00:00-23:59", "ends_at": "9999-12-31T23:30:00-23:59"}, "starts_at"},
		{map[string]any{"patient_id": p3, "doctor_id": doc2, "starts_at": "9999-12-31T23:00:00Z", "ends_at": "9999-12-31T23:30:00Z"}, "starts_at"},
	} {
		expectProblem(t, c.refused(t, 400, "POST", "/api/v1/appointments", bad.body), 400, bad.field)
	}
	late := c.create(t, "appointments", c.book(p3, doc2, time.Now().UTC().Add(-10*time.Minute), 30))

	// Reschedule: into another's slot is refused and changes nothing; to
	// the past is refused; to a free slot is an update.
	before := c.get(t, "appointments", id(b))
	expectConflict(t, c.refused(t, 409, "PATCH", "/api/v1/appointments/"+id(b), map[string]any{"starts_at": at.Add(10 * time.Minute)}), "doctor_id", id(a))
	expectProblem(t, c.refused(t, 400, "PATCH", "/api/v1/appointments/"+id(b), map[string]any{"starts_at": at.Add(-3 * time.Hour), "ends_at": at.Add(-170 * time.Minute)}), 400, "starts_at")
	expectProblem(t, c.refused(t, 400, "PATCH", "/api/v1/appointments/"+id(b), map[string]any{"ends_at": at}), 400, "ends_at")
	expectProblem(t, c.refused(t, 400, "PATCH", "/api/v1/appointments/"+id(b), map[string]any{"starts_at": "9999-12-31T23:10:00-02:00", "ends_at": "9999-12-31T23:20:00-02:00"}), 400, "starts_at")
	if got := c.get(t, "appointments", id(b)); got["version"] != before["version"] || got["starts_at"] != before["starts_at"] {
		t.Fatalf("refused reschedule changed %v → %v", before, got)
	}
	_, mark = c.events(t, 0)
	moved := c.patch(t, "appointments", id(b), map[string]any{"starts_at": at.Add(time.Hour), "ends_at": at.Add(80 * time.Minute)}, 200)
	if evs, _ := c.events(t, mark); fmtSeq(evs) != fmtSeq([]string{"appointments.updated " + id(b)}) || moved["version"] != before["version"].(float64)+1 {
		t.Fatalf("reschedule events %s, %v", fmtSeq(evs), moved)
	}
	// A reschedule within its own slot does not collide with itself.
	c.patch(t, "appointments", id(b), map[string]any{"ends_at": at.Add(90 * time.Minute)}, 200)
	// A late appointment (started within the grace) can keep its start and
	// change its end: only a moved start is checked against the clock.
	c.patch(t, "appointments", id(late), map[string]any{"ends_at": time.Now().UTC().Add(time.Hour)}, 200)

	// Cancelled, completed and no-show appointments free their slot.
	c.patch(t, "appointments", id(a), map[string]any{"status": "cancelled"}, 200)
	a2 := c.create(t, "appointments", c.book(p3, c.doctor, at, 20))
	c.patch(t, "appointments", id(a2), map[string]any{"status": "no_show"}, 200)
	c.create(t, "appointments", c.book(c.patient, c.doctor, at, 20))

	// Archived patients and doctors: a new booking names them as not
	// found (as GET does); a reschedule of one of their appointments is 409.
	// (A patient with an appointment still to come cannot be archived:
	// this one started within the grace and is already over.)
	gone := id(c.create(t, "patients", map[string]any{"name": "Gone"}))
	pastDoc := id(c.create(t, "doctors", map[string]any{"name": "Dr. Past"}))
	ga := c.create(t, "appointments", c.book(gone, pastDoc, time.Now().UTC().Add(-14*time.Minute), 13))
	if r := c.do(t, "DELETE", "/api/v1/patients/"+gone, nil); r.Status != 204 {
		t.Fatalf("archive patient: %d %s", r.Status, r.Body)
	}
	expectProblem(t, c.refused(t, 404, "POST", "/api/v1/appointments", c.book(gone, doc2, at.Add(6*time.Hour), 20)), 404, "patient_id")
	expectConflict(t, c.refused(t, 409, "PATCH", "/api/v1/appointments/"+id(ga), map[string]any{"starts_at": at.Add(7 * time.Hour), "ends_at": at.Add(7*time.Hour + 20*time.Minute)}), "patient_id")
	expectConflict(t, c.refused(t, 409, "PATCH", "/api/v1/appointments/"+id(ga), map[string]any{"status": "checked_in"}), "patient_id")
	c.patch(t, "appointments", id(ga), map[string]any{"status": "cancelled"}, 200) // settling stays possible
	doc3 := id(c.create(t, "doctors", map[string]any{"name": "Dr. Three"}))
	if r := c.do(t, "DELETE", "/api/v1/doctors/"+doc3, nil); r.Status != 204 {
		t.Fatalf("archive doctor: %d %s", r.Status, r.Body)
	}
	expectProblem(t, c.refused(t, 404, "POST", "/api/v1/appointments", c.book(p3, doc3, at.Add(6*time.Hour), 20)), 404, "doctor_id")
}

// result is one response of a concurrent request.
type result struct {
	status int
	body   []byte
}

// race sends n requests at once (released together) and returns their
// responses in index order. It runs outside the test goroutine, so it
// reports transport errors as status 0.
func race(t *testing.T, s *apptest.Server, token string, n int, req func(i int) (method, path string, body any)) []result {
	t.Helper()
	out := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		method, path, body := req(i)
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			rq, err := http.NewRequest(method, s.URL+path, bytes.NewReader(b))
			if err != nil {
				out[i] = result{0, []byte(err.Error())}
				return
			}
			rq.Header.Set("Authorization", "Bearer "+token)
			rq.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(rq)
			if err != nil {
				out[i] = result{0, []byte(err.Error())}
				return
			}
			defer res.Body.Close()
			rb, _ := io.ReadAll(res.Body)
			out[i] = result{res.StatusCode, rb}
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// oneWins checks that exactly one response has status win and every other
// is a 409 whose conflicts name the winner's id. It returns the winner.
func oneWins(t *testing.T, what string, rs []result, win int) map[string]any {
	t.Helper()
	var winner map[string]any
	for _, r := range rs {
		if r.status == win {
			if winner != nil {
				t.Fatalf("%s: two winners:\n%s\n%v", what, r.body, winner)
			}
			if err := json.Unmarshal(r.body, &winner); err != nil {
				t.Fatal(err)
			}
		}
	}
	if winner == nil {
		t.Fatalf("%s: no winner: %v", what, rs)
	}
	for _, r := range rs {
		if r.status == win {
			continue
		}
		var p problem
		if r.status != 409 || json.Unmarshal(r.body, &p) != nil || len(p.Conflicts) == 0 {
			t.Fatalf("%s: loser answered %d %s, want 409 with conflicts", what, r.status, r.body)
		}
		if !slices.Contains(p.Conflicts, winner["id"].(string)) && !slices.Contains(p.Conflicts, fmt.Sprint(winner["appointment_id"])) {
			t.Fatalf("%s: loser's conflicts %v do not name the winner %s", what, p.Conflicts, winner["id"])
		}
	}
	return winner
}

// TestBookingRaces: 8 requests race for one slot, in the three ways a slot
// is contended (the same booking; one doctor, eight patients; one patient,
// eight doctors — the last serialised only by the patient's row lock), and
// 8 reschedules race into one slot. Exactly one wins each time.
func TestBookingRaces(t *testing.T) {
	const n = 8
	s := apptest.Start(t)
	c := newClinic(t, s, "races")
	var docs, pats []string
	for i := range n {
		docs = append(docs, id(c.create(t, "doctors", map[string]any{"name": fmt.Sprintf("Dr. %d", i)})))
		pats = append(pats, id(c.create(t, "patients", map[string]any{"name": fmt.Sprintf("P %d", i)})))
	}
	at := time.Now().UTC().Truncate(time.Minute).Add(3 * time.Hour)
	countIn := func(where string, args ...any) int64 {
		var k int64
		if err := s.App.Store.DB().Table("appointments").Where("tenant_id = ? AND status = 'scheduled' AND "+where, append([]any{"races"}, args...)...).Count(&k).Error; err != nil {
			t.Fatal(err)
		}
		return k
	}
	for _, tc := range []struct {
		name     string
		doc, pat func(i int) string
		start    time.Time
		step     time.Duration // between the racers' starts: each overlaps the others
		where    string
		arg      string
	}{
		{"same booking", func(int) string { return docs[0] }, func(int) string { return pats[0] }, at, 0, "doctor_id = ?", docs[0]},
		{"one doctor", func(int) string { return docs[1] }, func(i int) string { return pats[i] }, at.Add(time.Hour), time.Minute, "doctor_id = ?", docs[1]},
		{"one patient", func(i int) string { return docs[i] }, func(int) string { return pats[2] }, at.Add(2 * time.Hour), time.Minute, "starts_at >= ? AND patient_id = ?", pats[2]},
	} {
		rs := race(t, s, c.staff, n, func(i int) (string, string, any) {
			return "POST", "/api/v1/appointments", c.book(tc.pat(i), tc.doc(i), tc.start.Add(time.Duration(i)*tc.step), 20)
		})
		oneWins(t, tc.name, rs, 201)
		args := []any{tc.arg}
		if strings.HasPrefix(tc.where, "starts_at") {
			args = []any{tc.start, tc.arg}
		}
		if k := countIn(tc.where, args...); k != 1 {
			t.Fatalf("%s: %d appointments stored, want 1", tc.name, k)
		}
	}
	// Eight of doctor 3's appointments, in separate slots, all moved at
	// once to the same new slot.
	var appts []string
	for i := range n {
		appts = append(appts, id(c.create(t, "appointments", c.book(pats[i], docs[3], at.Add(time.Duration(5+i)*time.Hour), 20))))
	}
	target := at.Add(20 * time.Hour)
	rs := race(t, s, c.staff, n, func(i int) (string, string, any) {
		return "PATCH", "/api/v1/appointments/" + appts[i], map[string]any{"starts_at": target, "ends_at": target.Add(20 * time.Minute)}
	})
	oneWins(t, "reschedule", rs, 200)
	if k := countIn("doctor_id = ? AND starts_at = ?", docs[3], target); k != 1 {
		t.Fatalf("reschedule: %d appointments in the slot, want 1", k)
	}
}

func (c *clinic) activeEntries(t *testing.T, patient, doctor string) []map[string]any {
	t.Helper()
	var page struct{ Items []map[string]any }
	r := c.do(t, "GET", "/api/v1/queue?patient_id="+patient+"&doctor_id="+doctor+"&date="+c.s.App.Store.Today(), nil)
	r.JSON(t, &page)
	var out []map[string]any
	for _, q := range page.Items {
		if q["status"] == "waiting" || q["status"] == "called" || q["status"] == "in_progress" {
			out = append(out, q)
		}
	}
	return out
}

func TestOneActiveQueueEntryPerPatientPerDoctorPerDay(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "oneentry")
	doc2 := id(c.create(t, "doctors", map[string]any{"name": "Dr. Two"}))
	walk := map[string]any{"patient_id": c.patient, "doctor_id": c.doctor}

	_, mark := c.events(t, 0)
	q1 := c.create(t, "queue", walk)
	if evs, _ := c.events(t, mark); fmtSeq(evs) != fmtSeq([]string{"queue.created " + id(q1), "queue.board " + c.doctor}) {
		t.Fatalf("entry events %s", fmtSeq(evs))
	}
	// Twice: 409 naming the entry, whatever its active status.
	for _, st := range []string{"", "called", "in_progress"} {
		if st != "" {
			c.patch(t, "queue", id(q1), map[string]any{"status": st}, 200)
		}
		expectConflict(t, c.refused(t, 409, "POST", "/api/v1/queue", walk), "patient_id", id(q1))
	}
	// Another doctor is another queue.
	c.create(t, "queue", map[string]any{"patient_id": c.patient, "doctor_id": doc2})
	// Once the entry is settled, the patient may queue again.
	c.patch(t, "queue", id(q1), map[string]any{"status": "completed"}, 200)
	q2 := c.create(t, "queue", walk)
	c.patch(t, "queue", id(q2), map[string]any{"status": "cancelled"}, 200)

	// Check-in of an appointment of a patient already queued as a walk-in
	// links the walk-in entry to the appointment: no second entry, the
	// same token and place.
	at := time.Now().UTC().Truncate(time.Minute).Add(time.Hour)
	w := c.create(t, "queue", walk)
	a := c.create(t, "appointments", c.book(c.patient, c.doctor, at, 20))
	_, mark = c.events(t, 0)
	c.patch(t, "appointments", id(a), map[string]any{"status": "checked_in"}, 200)
	evs, _ := c.events(t, mark)
	if fmtSeq(evs) != fmtSeq([]string{"appointments.updated " + id(a), "queue.updated " + id(w), "queue.board " + c.doctor}) {
		t.Fatalf("linking check-in events %s", fmtSeq(evs))
	}
	if got := c.activeEntries(t, c.patient, c.doctor); len(got) != 1 || got[0]["id"] != id(w) || got[0]["appointment_id"] != id(a) || got[0]["token"] != w["token"] {
		t.Fatalf("after linking check-in: %v", got)
	}
	// A second appointment that day with the same doctor cannot check in
	// while the entry serves the first: 409 naming the entry (and its
	// appointment, on the linking path).
	a2 := c.create(t, "appointments", c.book(c.patient, c.doctor, at.Add(3*time.Hour), 20))
	expectConflict(t, c.refused(t, 409, "POST", "/api/v1/queue", map[string]any{"patient_id": c.patient, "doctor_id": c.doctor, "appointment_id": id(a2)}), "patient_id", id(w))
	expectConflict(t, c.refused(t, 409, "PATCH", "/api/v1/appointments/"+id(a2), map[string]any{"status": "checked_in"}), "patient_id", id(w), id(a))
	if got := c.get(t, "appointments", id(a2))["status"]; got != "scheduled" {
		t.Fatalf("refused check-in left %v", got)
	}

	// A walk-in already in consultation whose appointment is then checked
	// in: the appointment follows (in_consultation), and closing the visit
	// completes it.
	w2 := c.create(t, "queue", map[string]any{"patient_id": c.patient2, "doctor_id": c.doctor})
	v := c.create(t, "visits", map[string]any{"queue_entry_id": id(w2)})
	b := c.create(t, "appointments", c.book(c.patient2, c.doctor, at.Add(4*time.Hour), 20))
	c.patch(t, "appointments", id(b), map[string]any{"status": "checked_in"}, 200)
	if got := c.get(t, "appointments", id(b))["status"]; got != "in_consultation" {
		t.Fatalf("appointment linked to an entry in progress: %v", got)
	}
	c.patch(t, "visits", id(v), map[string]any{"status": "closed"}, 200)
	if a, q := c.get(t, "appointments", id(b))["status"], c.get(t, "queue", id(w2))["status"]; a != "completed" || q != "completed" {
		t.Fatalf("after the visit closed: appointment %v, entry %v", a, q)
	}
}

// TestQueueRaces: 8 walk-ins of one patient with one doctor at once, then 7
// walk-ins racing the check-in of the patient's appointment: one active
// entry each time.
func TestQueueRaces(t *testing.T) {
	const n = 8
	s := apptest.Start(t)
	c := newClinic(t, s, "qrace")
	rs := race(t, s, c.staff, n, func(int) (string, string, any) {
		return "POST", "/api/v1/queue", map[string]any{"patient_id": c.patient, "doctor_id": c.doctor}
	})
	oneWins(t, "walk-ins", rs, 201)
	if got := c.activeEntries(t, c.patient, c.doctor); len(got) != 1 {
		t.Fatalf("%d active entries, want 1", len(got))
	}

	at := time.Now().UTC().Truncate(time.Minute).Add(time.Hour)
	a := c.create(t, "appointments", c.book(c.patient2, c.doctor, at, 20))
	rs = race(t, s, c.staff, n, func(i int) (string, string, any) {
		if i == 0 {
			return "PATCH", "/api/v1/appointments/" + id(a), map[string]any{"status": "checked_in"}
		}
		return "POST", "/api/v1/queue", map[string]any{"patient_id": c.patient2, "doctor_id": c.doctor}
	})
	if rs[0].status != 200 {
		t.Fatalf("check-in: %d %s", rs[0].status, rs[0].body)
	}
	created := 0
	for _, r := range rs[1:] {
		switch r.status {
		case 201:
			created++
		case 409:
		default:
			t.Fatalf("walk-in: %d %s", r.status, r.body)
		}
	}
	got := c.activeEntries(t, c.patient2, c.doctor)
	if len(got) != 1 || got[0]["appointment_id"] != id(a) || created > 1 {
		t.Fatalf("%d walk-ins created, active entries %v; want one, linked to %s", created, got, id(a))
	}
}

func TestArchivingADoctor(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "archive")
	other := id(c.create(t, "doctors", map[string]any{"name": "Dr. Other"}))
	at := time.Now().UTC().Truncate(time.Minute).Add(time.Hour)
	e := c.create(t, "queue", map[string]any{"patient_id": c.patient, "doctor_id": c.doctor})
	a := c.create(t, "appointments", c.book(c.patient2, c.doctor, at, 20))
	// Started within the grace and already over: it does not hold the doctor.
	past := c.create(t, "appointments", c.book(c.patient2, c.doctor, time.Now().UTC().Add(-14*time.Minute), 13))

	// Work left: 409 with the counts and the ids, nothing written.
	p := expectConflict(t, c.refused(t, 409, "DELETE", "/api/v1/doctors/"+c.doctor, nil), "", id(e), id(a))
	if !strings.Contains(p.Detail, "1 active queue entry") || !strings.Contains(p.Detail, "1 upcoming appointment") {
		t.Fatalf("detail: %s", p.Detail)
	}
	c.get(t, "doctors", c.doctor)
	c.patch(t, "queue", id(e), map[string]any{"status": "cancelled"}, 200)
	expectConflict(t, c.refused(t, 409, "DELETE", "/api/v1/doctors/"+c.doctor, nil), "", id(a))
	c.patch(t, "appointments", id(a), map[string]any{"status": "cancelled"}, 200)
	// An open visit is work too (its doctor prescribes and invoices on it).
	v := c.create(t, "visits", map[string]any{"patient_id": c.patient2, "doctor_id": c.doctor})
	p = expectConflict(t, c.refused(t, 409, "DELETE", "/api/v1/doctors/"+c.doctor, nil), "", id(v))
	if !strings.Contains(p.Detail, "1 open visit") {
		t.Fatalf("detail: %s", p.Detail)
	}
	c.patch(t, "visits", id(v), map[string]any{"status": "closed"}, 200)

	// Settled: archived, with a board event that takes the doctor off the displays.
	_, mark := c.events(t, 0)
	if r := c.do(t, "DELETE", "/api/v1/doctors/"+c.doctor, nil); r.Status != 204 {
		t.Fatalf("archive: %d %s", r.Status, r.Body)
	}
	evs, err := s.App.Store.ReadEvents(t.Context(), eventQuery("archive", mark))
	if err != nil || len(evs) != 2 || evs[0].Type != "doctors.deleted" || evs[1].Type != "queue.board" || !strings.Contains(string(evs[1].Data), `"archived":true`) {
		t.Fatalf("archive events %v %v", evs, err)
	}

	// An archived doctor is not found to a new record, as to GET; a record
	// that still names them cannot give them work (409).
	expectProblem(t, c.refused(t, 404, "GET", "/api/v1/doctors/"+c.doctor, nil), 404, "")
	expectProblem(t, c.refused(t, 404, "POST", "/api/v1/queue", map[string]any{"patient_id": c.patient, "doctor_id": c.doctor}), 404, "doctor_id")
	expectProblem(t, c.refused(t, 404, "POST", "/api/v1/appointments", c.book(c.patient, c.doctor, at.Add(time.Hour), 20)), 404, "doctor_id")
	expectConflict(t, c.refused(t, 409, "PATCH", "/api/v1/appointments/"+id(past), map[string]any{"status": "checked_in"}), "doctor_id")
	expectConflict(t, c.refused(t, 409, "PATCH", "/api/v1/appointments/"+id(past), map[string]any{"starts_at": at.Add(2 * time.Hour), "ends_at": at.Add(130 * time.Minute)}), "doctor_id")
	expectConflict(t, c.refused(t, 409, "POST", "/api/v1/visits", map[string]any{"appointment_id": id(past)}), "doctor_id")
	// Settling what is left stays possible.
	c.patch(t, "appointments", id(past), map[string]any{"status": "no_show"}, 200)

	var boards struct {
		Boards []struct {
			DoctorID string `json:"doctor_id"`
		}
	}
	c.do(t, "GET", "/api/v1/queue/board", nil).JSON(t, &boards)
	if len(boards.Boards) != 1 || boards.Boards[0].DoctorID != other {
		t.Fatalf("boards after archive: %+v", boards)
	}
}

// TestArchivingAPatient: a patient with work in progress (an active queue
// entry today, an appointment holding a slot, an open visit) is not
// archived — 409 with the counts and the ids, nothing written — because
// they would stay on a board, a doctor's list or a bill while gone from
// search and booking. Settled, the patient is archived.
func TestArchivingAPatient(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "archive-patient")
	at := time.Now().UTC().Truncate(time.Minute).Add(time.Hour)
	e := c.create(t, "queue", map[string]any{"patient_id": c.patient, "doctor_id": c.doctor})
	a := c.create(t, "appointments", c.book(c.patient, c.doctor, at, 20))
	// Another patient's work does not hold this one.
	c.create(t, "queue", map[string]any{"patient_id": c.patient2, "doctor_id": c.doctor})

	before := counts(t, s)
	p := expectConflict(t, c.refused(t, 409, "DELETE", "/api/v1/patients/"+c.patient, nil), "", id(e), id(a))
	if !strings.Contains(p.Detail, "1 active queue entry") || !strings.Contains(p.Detail, "1 upcoming appointment") {
		t.Fatalf("detail: %s", p.Detail)
	}
	if !maps(before, counts(t, s)) {
		t.Fatal("a refused archive changed rows")
	}
	c.patch(t, "queue", id(e), map[string]any{"status": "cancelled"}, 200)
	c.patch(t, "appointments", id(a), map[string]any{"status": "cancelled"}, 200)
	v := c.create(t, "visits", map[string]any{"patient_id": c.patient, "doctor_id": c.doctor})
	if p = expectConflict(t, c.refused(t, 409, "DELETE", "/api/v1/patients/"+c.patient, nil), "", id(v)); !strings.Contains(p.Detail, "1 open visit") {
		t.Fatalf("detail: %s", p.Detail)
	}
	c.patch(t, "visits", id(v), map[string]any{"status": "closed"}, 200)
	if r := c.do(t, "DELETE", "/api/v1/patients/"+c.patient, nil); r.Status != 204 {
		t.Fatalf("archive: %d %s", r.Status, r.Body)
	}
	expectProblem(t, c.refused(t, 404, "GET", "/api/v1/patients/"+c.patient, nil), 404, "")
}

// TestViewsCountTheSameSet compares what the board (displays, doctor
// cards) and the queue list (the front desk's counters: today's entries
// by status) count, before and after archiving a doctor.
func TestViewsCountTheSameSet(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "views")
	doc2 := id(c.create(t, "doctors", map[string]any{"name": "Dr. Two"}))
	var ents []string
	for i := range 6 {
		p := id(c.create(t, "patients", map[string]any{"name": fmt.Sprintf("P%d", i)}))
		d := c.doctor
		if i%2 == 1 {
			d = doc2
		}
		ents = append(ents, id(c.create(t, "queue", map[string]any{"patient_id": p, "doctor_id": d})))
	}
	c.patch(t, "queue", ents[0], map[string]any{"status": "called"}, 200)
	c.patch(t, "queue", ents[1], map[string]any{"status": "called"}, 200)
	c.patch(t, "queue", ents[1], map[string]any{"status": "in_progress"}, 200)
	c.patch(t, "queue", ents[3], map[string]any{"status": "no_show"}, 200)

	compare := func(when string) {
		t.Helper()
		var b struct {
			Boards []struct {
				DoctorID string `json:"doctor_id"`
				Called   []int
				Waiting  []int
				Count    int  `json:"waiting_count"`
				Serving  *int `json:"now_serving"`
			}
		}
		c.do(t, "GET", "/api/v1/queue/board", nil).JSON(t, &b)
		var q struct{ Items []map[string]any }
		c.do(t, "GET", "/api/v1/queue?date="+s.App.Store.Today(), nil).JSON(t, &q)
		var d struct{ Items []map[string]any }
		c.do(t, "GET", "/api/v1/doctors", nil).JSON(t, &d)
		var boardDocs, listDocs []string
		waiting, busy := 0, 0
		for _, x := range b.Boards {
			boardDocs = append(boardDocs, x.DoctorID)
			if x.Count != len(x.Waiting) {
				t.Fatalf("%s: waiting_count %d of %v", when, x.Count, x.Waiting)
			}
			waiting += x.Count
			busy += len(x.Called)
			if x.Serving != nil && !slices.Contains(x.Called, *x.Serving) {
				busy++
			}
		}
		for _, x := range d.Items {
			listDocs = append(listDocs, x["id"].(string))
		}
		slices.Sort(boardDocs)
		slices.Sort(listDocs)
		// The front desk's counters (static/frontdesk.js): today's entries
		// waiting, and called or in progress ("with doctor").
		deskWaiting, deskBusy := 0, 0
		for _, x := range q.Items {
			switch x["status"] {
			case "waiting":
				deskWaiting++
			case "called", "in_progress":
				deskBusy++
			}
			if x["status"] == "waiting" || x["status"] == "called" || x["status"] == "in_progress" {
				if !slices.Contains(boardDocs, x["doctor_id"].(string)) {
					t.Fatalf("%s: active entry %s of a doctor without a board", when, x["id"])
				}
			}
		}
		if !slices.Equal(boardDocs, listDocs) || waiting != deskWaiting || busy != deskBusy {
			t.Fatalf("%s: boards %v vs doctors %v; waiting %d vs %d; with doctor %d vs %d", when, boardDocs, listDocs, waiting, deskWaiting, busy, deskBusy)
		}
	}
	compare("before")
	if r := c.do(t, "DELETE", "/api/v1/doctors/"+doc2, nil); r.Status != 409 {
		t.Fatalf("archive with entries: %d", r.Status)
	}
	compare("after the refused archive")
	c.patch(t, "queue", ents[1], map[string]any{"status": "completed"}, 200)
	c.patch(t, "queue", ents[5], map[string]any{"status": "cancelled"}, 200)
	if r := c.do(t, "DELETE", "/api/v1/doctors/"+doc2, nil); r.Status != 204 {
		t.Fatalf("archive: %d %s", r.Status, r.Body)
	}
	compare("after the archive")
}

func TestWaitEstimate(t *testing.T) {
	clk := newClock()
	s := apptest.Start(t, withClock(clk))
	c := newClinic(t, s, "estimate")
	estimate := func() int {
		t.Helper()
		var b struct {
			Boards []struct {
				Est     int `json:"estimated_wait_minutes"`
				Waiting []int
			}
		}
		c.do(t, "GET", "/api/v1/queue/board", nil).JSON(t, &b)
		if len(b.Boards) != 1 || len(b.Boards[0].Waiting) != 1 {
			t.Fatalf("boards %+v", b)
		}
		return b.Boards[0].Est // one waiting, nobody with the doctor: one consultation
	}
	consult := func(name string, d time.Duration) {
		t.Helper()
		p := id(c.create(t, "patients", map[string]any{"name": name}))
		q := id(c.create(t, "queue", map[string]any{"patient_id": p, "doctor_id": c.doctor}))
		c.patch(t, "queue", q, map[string]any{"status": "called"}, 200)
		c.patch(t, "queue", q, map[string]any{"status": "in_progress"}, 200)
		clk.Advance(d)
		c.patch(t, "queue", q, map[string]any{"status": "completed"}, 200)
	}
	c.create(t, "queue", map[string]any{"patient_id": c.patient, "doctor_id": c.doctor})
	if got := estimate(); got != 10 {
		t.Fatalf("no visits yet: %d min, want the default 10", got)
	}
	consult("Quick", 10*time.Second)
	if got := estimate(); got != 10 {
		t.Fatalf("after one 10-second visit: %d min, want 10 (it was 3)", got)
	}
	consult("Long", 25*time.Minute)
	if got := estimate(); got != 14 {
		t.Fatalf("after a 25-minute visit: %d min, want (3×10+25)/4 = 14", got)
	}
	// The doctor's own default is the prior; changing it updates the board.
	_, mark := c.events(t, 0)
	c.patch(t, "doctors", c.doctor, map[string]any{"default_consult_minutes": 20}, 200)
	if evs, _ := c.events(t, mark); fmtSeq(evs) != fmtSeq([]string{"doctors.updated " + c.doctor, "queue.board " + c.doctor}) {
		t.Fatalf("doctor update events %s", fmtSeq(evs))
	}
	if got := estimate(); got != 21 {
		t.Fatalf("default 20: %d min, want (3×20+25)/4 = 21", got)
	}
	expectProblem(t, c.refused(t, 400, "PATCH", "/api/v1/doctors/"+c.doctor, map[string]any{"default_consult_minutes": -1}), 400, "default_consult_minutes")
}

func TestRecall(t *testing.T) {
	clk := newClock()
	s := apptest.Start(t, withClock(clk))
	c := newClinic(t, s, "recall")
	q := c.create(t, "queue", map[string]any{"patient_id": c.patient, "doctor_id": c.doctor})
	path := "/api/v1/queue/" + id(q) + "/recall"
	// Only a called entry is called again.
	expectConflict(t, c.refused(t, 409, "POST", path, nil), "status")
	called := c.patch(t, "queue", id(q), map[string]any{"status": "called"}, 200)
	// PATCH status "called" on a called entry is no second call: 409.
	expectConflict(t, c.refused(t, 409, "PATCH", "/api/v1/queue/"+id(q), map[string]any{"status": "called"}), "status")

	clk.Advance(time.Minute)
	_, mark := c.events(t, 0)
	r := c.do(t, "POST", path, nil, "If-Match", fmt.Sprintf(`"%v"`, called["version"]))
	var got map[string]any
	r.JSON(t, &got)
	if r.Status != 200 || got["recalls"] != 1.0 || got["version"] != called["version"].(float64)+1 || got["called_at"] != called["called_at"] || got["recalled_at"] == nil {
		t.Fatalf("recall: %d %s", r.Status, r.Body)
	}
	evs, err := s.App.Store.ReadEvents(t.Context(), eventQuery("recall", mark))
	if err != nil || len(evs) != 2 || evs[0].Type != "queue.updated" || evs[1].Type != "queue.board" {
		t.Fatalf("recall events %v %v", evs, err)
	}
	// A write like any other: X-Cursor names its last event (the seq, alone
	// or with its tag).
	if got, want := r.Header.Get("X-Cursor"), models.EventPosition(&evs[1]).String(); got != want {
		t.Errorf("recall: X-Cursor %q, want %s, the position of its last event as the log has it", got, want)
	}
	var board struct {
		LastCall struct {
			Token int
			At    time.Time
		} `json:"last_call"`
	}
	if err := json.Unmarshal(evs[1].Data, &board); err != nil || board.LastCall.Token != int(q["token"].(float64)) || !board.LastCall.At.Equal(clk.Now()) {
		t.Fatalf("board after recall %s", evs[1].Data)
	}

	// Stale version, a body, a display token, a patient token: refused.
	expectProblem(t, c.refused(t, 412, "POST", path, nil, "If-Match", fmt.Sprintf(`"%v"`, called["version"])), 412, "")
	expectProblem(t, c.refused(t, 400, "POST", path, map[string]any{"status": "called"}), 400, "status")
	for _, tok := range []string{s.Token("recall", "display", "screen"), s.Token("recall", "patient", c.patient)} {
		if r := s.Do(t, "POST", path, tok, nil); r.Status != 403 {
			t.Fatalf("recall with a %s token: %d", tok[:8], r.Status)
		}
	}
	// An Idempotency-Key makes a repeat answer the first result.
	r1 := c.do(t, "POST", path, nil, "Idempotency-Key", "again-1")
	h := c.head(t)
	r2 := c.do(t, "POST", path, nil, "Idempotency-Key", "again-1")
	if r1.Status != 200 || r2.Status != 200 || !bytes.Equal(r1.Body, r2.Body) || c.head(t) != h {
		t.Fatalf("idempotent recall: %d %s / %d %s", r1.Status, r1.Body, r2.Status, r2.Body)
	}
	if st := c.get(t, "queue", id(q)); st["recalls"] != 2.0 {
		t.Fatalf("recalls %v, want 2", st["recalls"])
	}
}

func TestDeltaAlwaysCarriesDeleted(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "delta")
	snap := c.do(t, "GET", "/api/v1/patients", nil)
	if snap.Status != 200 || strings.Contains(string(snap.Body), `"deleted"`) {
		t.Fatalf("snapshot: %s", snap.Body)
	}
	h := c.head(t)
	for _, step := range []struct {
		do   func()
		want string
	}{
		{func() {}, `"deleted":[]`},
		{func() { c.patch(t, "patients", c.patient, map[string]any{"phone": "1"}, 200) }, `"deleted":[]`},
		{func() { c.do(t, "DELETE", "/api/v1/patients/"+c.patient2, nil) }, `"deleted":["` + c.patient2 + `"]`},
	} {
		step.do()
		r := c.do(t, "GET", fmt.Sprintf("/api/v1/patients?since=%d", h), nil)
		if r.Status != 200 || !strings.Contains(string(r.Body), step.want) {
			t.Fatalf("delta: %d %s, want %s", r.Status, r.Body, step.want)
		}
	}
}

// TestCheckInOnItsDay: an appointment is checked in on its own day (in the
// clinic's time zone), by PATCH or by a queue entry naming it; on another
// day it is 409 naming status, and nothing is queued.
func TestCheckInOnItsDay(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "checkin-day")
	tomorrow := time.Now().UTC().Truncate(time.Minute).Add(27 * time.Hour) // another day, beyond CheckInWindow
	a := c.create(t, "appointments", c.book(c.patient, c.doctor, tomorrow, 20))
	before := counts(t, s)
	expectConflict(t, c.refused(t, 409, "PATCH", "/api/v1/appointments/"+id(a), map[string]any{"status": "checked_in"}), "status", id(a))
	expectConflict(t, c.refused(t, 409, "POST", "/api/v1/queue", map[string]any{"patient_id": c.patient, "doctor_id": c.doctor, "appointment_id": id(a)}), "status", id(a))
	if !maps(before, counts(t, s)) {
		t.Fatal("a refused check-in changed rows")
	}
	// Today's appointment checks in and queues the patient.
	soon := c.create(t, "appointments", c.book(c.patient2, c.doctor, time.Now().UTC().Add(time.Minute), 20))
	c.patch(t, "appointments", id(soon), map[string]any{"status": "checked_in"}, 200)
	if got := c.activeEntries(t, c.patient2, c.doctor); len(got) != 1 {
		t.Fatalf("active entries after check-in: %v", got)
	}
}
