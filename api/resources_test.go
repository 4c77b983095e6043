package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
)

func TestResourceLifecycle(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "life").asDoctor()
	start := time.Now().UTC().Truncate(time.Minute).Add(time.Hour)
	appt := c.create(t, "appointments", map[string]any{"patient_id": c.patient, "doctor_id": c.doctor,
		"starts_at": start, "ends_at": start.Add(20 * time.Minute), "reason": "Cough"})
	q := c.create(t, "queue", map[string]any{"patient_id": c.patient2, "doctor_id": c.doctor, "priority": "urgent"})
	visit := c.create(t, "visits", map[string]any{"queue_entry_id": q["id"]})
	rx := c.create(t, "prescriptions", map[string]any{"visit_id": visit["id"], "items": []map[string]any{
		{"drug": "Amoxicillin", "dose": "500 mg", "route": "oral", "frequency": "3x daily", "duration": "7 days"}}})
	inv := c.create(t, "invoices", map[string]any{"visit_id": visit["id"], "currency": "eur", "lines": []map[string]any{
		{"description": "Consultation", "quantity": 1, "unit_price": 4500}, {"description": "Test", "quantity": 2, "unit_price": 1250}}})

	if appt["status"] != "scheduled" || q["status"] != "waiting" || q["token"] != 1.0 || q["position"] != 1.0 {
		t.Fatalf("created: %v %v", appt, q)
	}
	if visit["patient_id"] != c.patient2 || visit["doctor_id"] != c.doctor || visit["status"] != "open" {
		t.Fatalf("visit derived wrong patient/doctor: %v", visit)
	}
	if rx["patient_id"] != c.patient2 {
		t.Fatalf("prescription patient: %v", rx)
	}
	if inv["total"] != 7000.0 || inv["currency"] != "EUR" || inv["status"] != "draft" || inv["patient_id"] != c.patient2 {
		t.Fatalf("invoice: %v", inv)
	}

	for _, rec := range []struct {
		resource string
		m        map[string]any
		patch    map[string]any
		field    string
	}{
		{"patients", map[string]any{"id": c.patient}, map[string]any{"phone": "+1 555 0100"}, "phone"},
		{"doctors", map[string]any{"id": c.doctor}, map[string]any{"specialty": "ENT"}, "specialty"},
		{"appointments", appt, map[string]any{"reason": "Cough, fever"}, "reason"},
		{"queue", c.create(t, "queue", map[string]any{"patient_id": c.patient, "doctor_id": c.doctor}), map[string]any{"priority": "emergency"}, "priority"},
		{"visits", visit, map[string]any{"notes": "Chest clear."}, "notes"},
		{"prescriptions", rx, map[string]any{"items": []map[string]any{{"drug": "Ibuprofen", "dose": "200 mg"}}}, "items"},
		{"invoices", inv, map[string]any{"lines": []map[string]any{{"description": "Consultation", "quantity": 1, "unit_price": 5000}}}, "total"},
	} {
		id := rec.m["id"].(string)
		before := c.get(t, rec.resource, id)
		after := c.patch(t, rec.resource, id, rec.patch, http.StatusOK)
		if after["version"].(float64) != before["version"].(float64)+1 {
			t.Errorf("%s: version %v → %v, want +1", rec.resource, before["version"], after["version"])
		}
		if got := c.get(t, rec.resource, id); got["version"] != after["version"] || got[rec.field] == nil {
			t.Errorf("%s: read after patch %v", rec.resource, got)
		}
		var list struct {
			Items  []map[string]any
			Cursor int64
		}
		r := c.do(t, http.MethodGet, "/api/v1/"+rec.resource, nil)
		r.JSON(t, &list)
		if r.Status != 200 || list.Cursor != c.head(t) || !slices.ContainsFunc(list.Items, func(m map[string]any) bool { return m["id"] == id }) {
			t.Errorf("%s: list %d misses %s or cursor %d != head", rec.resource, r.Status, id, list.Cursor)
		}
	}
	if got := c.get(t, "invoices", inv["id"].(string)); got["total"] != 5000.0 {
		t.Errorf("invoice total after patch = %v, want 5000", got["total"])
	}

	// Deletes: where the domain allows it (a patient once their queue entry
	// and visit are settled).
	for _, d := range []struct {
		resource, id string
		want         int
	}{
		{"prescriptions", rx["id"].(string), http.StatusNoContent},
		{"invoices", inv["id"].(string), http.StatusNoContent},
		{"appointments", appt["id"].(string), http.StatusNoContent},
		{"queue", q["id"].(string), http.StatusMethodNotAllowed},
		{"visits", visit["id"].(string), http.StatusMethodNotAllowed},
		{"patients", c.patient, http.StatusNoContent},
	} {
		if d.resource == "patients" {
			// The patient's queue entry (made above) is settled first.
			var entries struct{ Items []map[string]any }
			c.do(t, http.MethodGet, "/api/v1/queue?patient_id="+c.patient, nil).JSON(t, &entries)
			for _, e := range entries.Items {
				c.patch(t, "queue", e["id"].(string), map[string]any{"status": "cancelled"}, 200)
			}
		}
		r := c.do(t, http.MethodDelete, "/api/v1/"+d.resource+"/"+d.id, nil)
		if r.Status != d.want {
			t.Fatalf("DELETE %s: %d %s, want %d", d.resource, r.Status, r.Body, d.want)
		}
		if d.want == http.StatusMethodNotAllowed && r.Header.Get("Allow") != "GET, HEAD, PATCH" {
			t.Fatalf("DELETE %s: 405 with Allow %q", d.resource, r.Header.Get("Allow"))
		}
		if d.want == http.StatusNoContent {
			if r := c.do(t, http.MethodGet, "/api/v1/"+d.resource+"/"+d.id, nil); r.Status != http.StatusNotFound {
				t.Fatalf("GET deleted %s: %d", d.resource, r.Status)
			}
		}
	}
	evs, _ := c.events(t, 0)
	if !slices.Contains(evs, "patients.deleted "+c.patient) || !slices.Contains(evs, "invoices.deleted "+inv["id"].(string)) {
		t.Fatalf("delete events missing: %s", fmtSeq(evs))
	}
	// The archived patient is kept for the audit trail.
	var n int64
	s.App.Store.DB().Table("patients").Where("id = ? AND deleted_at IS NOT NULL", c.patient).Count(&n)
	if n != 1 {
		t.Fatalf("archived patient rows = %d, want 1", n)
	}
}

func TestListPagingAndFilters(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "pages")
	doc2 := c.create(t, "doctors", map[string]any{"name": "Dr. Two"})["id"].(string)
	for i := range 5 {
		d := c.doctor
		if i%2 == 1 {
			d = doc2
		}
		// One active entry per patient per doctor per day: a patient each.
		p := c.create(t, "patients", map[string]any{"name": "Pat " + strings.Repeat("i", i+1)})["id"]
		c.create(t, "queue", map[string]any{"patient_id": p, "doctor_id": d})
	}
	var ids []string
	after := ""
	for range 10 {
		var page struct {
			Items []map[string]any
			Next  string
		}
		r := c.do(t, http.MethodGet, "/api/v1/queue?limit=2&after="+after, nil)
		r.JSON(t, &page)
		for _, it := range page.Items {
			ids = append(ids, it["id"].(string))
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if len(ids) != 5 || !slices.IsSorted(ids) {
		t.Fatalf("paged ids = %v", ids)
	}
	var page struct{ Items []map[string]any }
	c.do(t, http.MethodGet, "/api/v1/queue?doctor_id="+doc2+"&status=waiting", nil).JSON(t, &page)
	if len(page.Items) != 2 {
		t.Fatalf("filtered = %d items, want 2", len(page.Items))
	}
	for _, it := range page.Items {
		if it["doctor_id"] != doc2 {
			t.Fatalf("filter leaked %v", it)
		}
	}
	today := time.Now().UTC().Format("2006-01-02")
	c.do(t, http.MethodGet, "/api/v1/queue?date="+today, nil).JSON(t, &page)
	if len(page.Items) != 5 {
		t.Fatalf("date filter = %d items, want 5", len(page.Items))
	}
}

func TestQueueTransitions(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "moves")
	newEntry := func() string {
		// A patient each: the previous path may have left one active.
		p := c.create(t, "patients", map[string]any{"name": "Walk-in"})["id"]
		return c.create(t, "queue", map[string]any{"patient_id": p, "doctor_id": c.doctor})["id"].(string)
	}
	type step struct {
		to   string
		want int
	}
	for _, path := range [][]step{
		{{"called", 200}, {"in_progress", 200}, {"completed", 200}, {"waiting", 409}, {"no_show", 409}},
		{{"no_show", 200}, {"called", 409}},
		{{"called", 200}, {"no_show", 200}},
		{{"cancelled", 200}, {"completed", 409}, {"waiting", 409}},
		{{"completed", 409}, {"in_progress", 409}, {"called", 200}, {"cancelled", 409}, {"waiting", 409}},
		{{"bogus", 400}},
	} {
		id := newEntry()
		for _, st := range path {
			before := counts(t, s)
			c.patch(t, "queue", id, map[string]any{"status": st.to}, st.want)
			if st.want != 200 && !maps(before, counts(t, s)) {
				t.Fatalf("rejected move to %s wrote rows", st.to)
			}
		}
	}
	start := time.Now().UTC().Add(time.Hour)
	apptPath := func() string {
		return c.create(t, "appointments", map[string]any{"patient_id": c.patient, "doctor_id": c.doctor, "starts_at": start, "ends_at": start.Add(time.Hour)})["id"].(string)
	}
	for _, path := range [][]step{
		{{"checked_in", 200}, {"in_consultation", 200}, {"completed", 200}, {"cancelled", 409}},
		{{"cancelled", 200}, {"checked_in", 409}},
		{{"no_show", 200}, {"scheduled", 409}},
		{{"in_consultation", 409}, {"completed", 409}},
	} {
		id := apptPath()
		for _, st := range path {
			c.patch(t, "appointments", id, map[string]any{"status": st.to}, st.want)
		}
	}
	inv := c.create(t, "invoices", map[string]any{"patient_id": c.patient, "currency": "USD", "lines": []map[string]any{{"description": "x", "quantity": 1, "unit_price": 1}}})["id"].(string)
	for _, st := range []step{{"paid", 409}, {"issued", 200}, {"draft", 409}, {"paid", 200}, {"void", 409}} {
		c.patch(t, "invoices", inv, map[string]any{"status": st.to}, st.want)
	}
	if r := c.do(t, http.MethodPatch, "/api/v1/invoices/"+inv, map[string]any{"lines": []map[string]any{}}); r.Status != 409 {
		t.Fatalf("editing a paid invoice: %d", r.Status)
	}
}

func maps(a, b map[string]int64) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return len(a) == len(b)
}

func TestCrossEntityRules(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "rules").asDoctor()
	start := time.Now().UTC().Add(time.Hour)
	newAppt := func() string {
		return c.create(t, "appointments", map[string]any{"patient_id": c.patient, "doctor_id": c.doctor, "starts_at": start, "ends_at": start.Add(15 * time.Minute)})["id"].(string)
	}
	entryOf := func(appt string) map[string]any {
		var page struct{ Items []map[string]any }
		c.do(t, http.MethodGet, "/api/v1/queue?patient_id="+c.patient, nil).JSON(t, &page)
		for _, it := range page.Items {
			if it["appointment_id"] == appt {
				return it
			}
		}
		t.Fatalf("no queue entry for appointment %s", appt)
		return nil
	}

	// Checking in creates the queue entry, in the same transaction.
	a1 := newAppt()
	_, mark := c.events(t, 0)
	c.patch(t, "appointments", a1, map[string]any{"status": "checked_in"}, 200)
	q1 := entryOf(a1)
	evs, mark := c.events(t, mark)
	want := []string{"appointments.updated " + a1, "queue.created " + q1["id"].(string), "queue.board " + c.doctor}
	if fmtSeq(evs) != fmtSeq(want) {
		t.Fatalf("check-in events %s, want %s", fmtSeq(evs), fmtSeq(want))
	}
	// Calling the entry calls the patient; the appointment stays checked
	// in (the patient may not come).
	c.patch(t, "queue", q1["id"].(string), map[string]any{"status": "called"}, 200)
	if got := c.get(t, "appointments", a1)["status"]; got != "checked_in" {
		t.Fatalf("appointment after call: %v", got)
	}
	evs, mark = c.events(t, mark)
	want = []string{"queue.updated " + q1["id"].(string), "queue.board " + c.doctor}
	if fmtSeq(evs) != fmtSeq(want) {
		t.Fatalf("call events %s, want %s", fmtSeq(evs), fmtSeq(want))
	}
	// The consultation starts when the entry goes in progress: the
	// appointment moves to in_consultation.
	c.patch(t, "queue", q1["id"].(string), map[string]any{"status": "in_progress"}, 200)
	if got := c.get(t, "appointments", a1)["status"]; got != "in_consultation" {
		t.Fatalf("appointment after start: %v", got)
	}
	evs, mark = c.events(t, mark)
	want = []string{"queue.updated " + q1["id"].(string), "appointments.updated " + a1, "queue.board " + c.doctor}
	if fmtSeq(evs) != fmtSeq(want) {
		t.Fatalf("start events %s, want %s", fmtSeq(evs), fmtSeq(want))
	}
	// Completing the appointment completes the queue entry.
	c.patch(t, "appointments", a1, map[string]any{"status": "completed"}, 200)
	if got := c.get(t, "queue", q1["id"].(string)); got["status"] != "completed" || got["completed_at"] == nil {
		t.Fatalf("queue after appointment completed: %v", got)
	}
	evs, mark = c.events(t, mark)
	want = []string{"appointments.updated " + a1, "queue.updated " + q1["id"].(string), "queue.board " + c.doctor}
	if fmtSeq(evs) != fmtSeq(want) {
		t.Fatalf("complete events %s, want %s", fmtSeq(evs), fmtSeq(want))
	}

	// Opening a visit from a queue entry starts it; closing it completes both.
	a2 := newAppt()
	c.patch(t, "appointments", a2, map[string]any{"status": "checked_in"}, 200)
	q2 := entryOf(a2)["id"].(string)
	v := c.create(t, "visits", map[string]any{"queue_entry_id": q2})
	if v["appointment_id"] != a2 {
		t.Fatalf("visit appointment = %v, want %s", v["appointment_id"], a2)
	}
	if r := c.do(t, http.MethodPost, "/api/v1/visits", map[string]any{"queue_entry_id": q2}); r.Status != 409 {
		t.Fatalf("second open visit: %d", r.Status)
	}
	if got := c.get(t, "queue", q2)["status"]; got != "in_progress" {
		t.Fatalf("queue after visit opened: %v", got)
	}
	_, mark = c.events(t, 0)
	c.patch(t, "visits", v["id"].(string), map[string]any{"status": "closed"}, 200)
	if c.get(t, "queue", q2)["status"] != "completed" || c.get(t, "appointments", a2)["status"] != "completed" {
		t.Fatal("closing the visit did not complete queue entry and appointment")
	}
	evs, _ = c.events(t, mark)
	want = []string{"visits.updated " + v["id"].(string), "queue.updated " + q2, "appointments.updated " + a2, "queue.board " + c.doctor}
	if fmtSeq(evs) != fmtSeq(want) {
		t.Fatalf("close events %s, want %s", fmtSeq(evs), fmtSeq(want))
	}
	// A closed visit takes no new prescriptions.
	if r := c.do(t, http.MethodPost, "/api/v1/prescriptions", map[string]any{"visit_id": v["id"], "items": []map[string]any{{"drug": "x", "dose": "y"}}}); r.Status != 409 {
		t.Fatalf("prescription on closed visit: %d %s", r.Status, r.Body)
	}
}

func TestQueueOrderAndBoard(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "board")
	add := func(prio string) map[string]any {
		p := c.create(t, "patients", map[string]any{"name": "Ana " + prio})["id"]
		return c.create(t, "queue", map[string]any{"patient_id": p, "doctor_id": c.doctor, "priority": prio})
	}
	n1, n2, u, e := add("normal"), add("normal"), add("urgent"), add("emergency")
	pos := func(q map[string]any) float64 { return c.get(t, "queue", q["id"].(string))["position"].(float64) }
	if pos(e) != 1 || pos(u) != 2 || pos(n1) != 3 || pos(n2) != 4 {
		t.Fatalf("positions e=%v u=%v n1=%v n2=%v", pos(e), pos(u), pos(n1), pos(n2))
	}
	c.patch(t, "queue", e["id"].(string), map[string]any{"status": "called"}, 200)
	display := s.Token("board", "display", "screen-1")
	r := s.Do(t, http.MethodGet, "/api/v1/queue/board", display, nil)
	if r.Status != 200 {
		t.Fatalf("board: %d %s", r.Status, r.Body)
	}
	var b struct {
		Boards []struct {
			DoctorID   string `json:"doctor_id"`
			NowServing *int   `json:"now_serving"`
			Waiting    []int
			Count      int `json:"waiting_count"`
		}
	}
	r.JSON(t, &b)
	if len(b.Boards) != 1 || *b.Boards[0].NowServing != 4 || b.Boards[0].Count != 3 || fmtSeq(nil) == "" {
		t.Fatalf("board: %s", r.Body)
	}
	if got := b.Boards[0].Waiting; len(got) != 3 || got[0] != 3 || got[1] != 1 || got[2] != 2 {
		t.Fatalf("waiting tokens %v, want [3 1 2]", got)
	}
	if strings.Contains(string(r.Body), "Ana") {
		t.Fatalf("board leaks a patient name: %s", r.Body)
	}
}
