package models

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

var t9 = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

// visit is a completed entry that started at t9+startMin and lasted d.
func visit(startMin int, d time.Duration) *QueueEntry {
	s := t9.Add(time.Duration(startMin) * time.Minute)
	e := s.Add(d)
	return &QueueEntry{Status: QueueCompleted, StartedAt: &s, CompletedAt: &e}
}

func TestConsultMinutesOneShortOneLongVisit(t *testing.T) {
	// The reported defect: one 10-second visit took the estimate from 10 to
	// 3 minutes. Now it is an outlier and changes nothing.
	short := visit(0, 10*time.Second)
	if got := ConsultMinutes([]*QueueEntry{short}, 10); got != 10 {
		t.Fatalf("one 10 s visit: %d min, want 10", got)
	}
	// One long (25 min, within 3 × 10) visit pulls the estimate toward it,
	// weighted 1 against the default's 3: (3×10 + 1×25) / 4 = 13.75 → 14.
	long := visit(10, 25*time.Minute)
	if got := ConsultMinutes([]*QueueEntry{short, long}, 10); got != 14 {
		t.Fatalf("10 s + 25 min visits: %d min, want 14", got)
	}
}

func TestConsultMinutesFormulaEdges(t *testing.T) {
	n := func(k int, d time.Duration) []*QueueEntry {
		var es []*QueueEntry
		for i := range k {
			es = append(es, visit(i*60, d))
		}
		return es
	}
	open := t9
	for _, c := range []struct {
		name string
		es   []*QueueEntry
		def  int
		want int
	}{
		{"no samples: the default", nil, 12, 12},
		{"no default: the package default", nil, 0, DefaultConsultMinutes},
		{"negative default: the package default", nil, -5, DefaultConsultMinutes},
		{"not completed entries do not count", []*QueueEntry{{Status: QueueInProgress, StartedAt: &open}, {Status: QueueCompleted}}, 10, 10},
		{"59 s is under a minute: left out", n(1, 59*time.Second), 10, 10},
		{"exactly 1 min counts: (30+1)/4 = 7.75", n(1, time.Minute), 10, 8},
		{"exactly 3 × default counts: (30+30)/4 = 15", n(1, 30*time.Minute), 10, 15},
		{"over 3 × default: left out", n(1, 30*time.Minute+time.Second), 10, 10},
		{"20 visits of 5 min: (30+100)/23 = 5.65", n(20, 5*time.Minute), 10, 6},
		{"odd count: median of 4, 6, 20 is 6: (30+18)/6 = 8", []*QueueEntry{visit(0, 4*time.Minute), visit(60, 20*time.Minute), visit(120, 6*time.Minute)}, 10, 8},
		{"even count: median of 4, 8 is 6: (30+12)/5 = 8.4", []*QueueEntry{visit(0, 4*time.Minute), visit(60, 8*time.Minute)}, 10, 8},
		{"rounds half up: (3×1 + 1×2)/4 = 1.25 → 1", n(1, 2*time.Minute), 1, 1},
		{"rounds half up: (3×2 + 1×4)/4 = 2.5 → 3", n(1, 4*time.Minute), 2, 3},
		{"never below 1 minute", n(20, time.Minute), 1, 1},
		{"per-doctor default 20, 40 min visit counts: (60+40)/4 = 25", n(1, 40*time.Minute), 20, 25},
	} {
		if got := ConsultMinutes(c.es, c.def); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	// Only the latest ConsultSamples visits count: 10 old 30-min visits
	// then 20 recent 5-min ones estimate as 20 of 5 min.
	var es []*QueueEntry
	for i := range 10 {
		es = append(es, visit(i*60, 30*time.Minute))
	}
	for i := range 20 {
		es = append(es, visit(1000+i*10, 5*time.Minute))
	}
	slices.Reverse(es) // order of the input does not matter
	if got := ConsultMinutes(es, 10); got != 6 {
		t.Fatalf("latest 20 of 30: %d, want 6", got)
	}
}

func TestDoctorConsultDefault(t *testing.T) {
	if got := (&Doctor{DefaultConsultMinutes: 25}).ConsultDefault(12); got != 25 {
		t.Fatalf("doctor's own: %d", got)
	}
	if got := (&Doctor{}).ConsultDefault(12); got != 12 {
		t.Fatalf("clinic's: %d", got)
	}
	if got := (&Doctor{}).ConsultDefault(0); got != DefaultConsultMinutes {
		t.Fatalf("package default: %d", got)
	}
	for _, m := range []int{-1, MaxConsultMinutes + 1} {
		if err := (&Doctor{Name: "D", DefaultConsultMinutes: m}).Validate(); ErrorCode(err) != EINVALID || !strings.Contains(err.Error(), "default_consult_minutes") {
			t.Fatalf("default_consult_minutes %d: %v", m, err)
		}
	}
}

func appt(id, doctor, patient string, fromMin, toMin int, st AppointmentStatus) *Appointment {
	return &Appointment{Meta: Meta{ID: id}, DoctorID: doctor, PatientID: patient,
		StartsAt: t9.Add(time.Duration(fromMin) * time.Minute), EndsAt: t9.Add(time.Duration(toMin) * time.Minute), Status: st}
}

func TestCheckOverlap(t *testing.T) {
	a := appt("", "doc_a", "pat_a", 20, 40, AppointmentScheduled)
	deleted := appt("apt_del", "doc_a", "pat_a", 20, 40, AppointmentScheduled)
	deleted.DeletedAt = &t9
	for _, c := range []struct {
		name      string
		others    []*Appointment
		field     string
		conflicts []string
	}{
		{"back to back before", []*Appointment{appt("apt_1", "doc_a", "pat_b", 0, 20, AppointmentScheduled)}, "", nil},
		{"back to back after", []*Appointment{appt("apt_1", "doc_a", "pat_b", 40, 60, AppointmentScheduled)}, "", nil},
		{"one minute into it", []*Appointment{appt("apt_1", "doc_a", "pat_b", 0, 21, AppointmentCheckedIn)}, "doctor_id", []string{"apt_1"}},
		{"inside it", []*Appointment{appt("apt_1", "doc_a", "pat_b", 25, 30, AppointmentInConsultation)}, "doctor_id", []string{"apt_1"}},
		{"around it, the patient's", []*Appointment{appt("apt_2", "doc_b", "pat_a", 0, 60, AppointmentScheduled)}, "patient_id", []string{"apt_2"}},
		{"cancelled, completed, no-show and deleted free the slot", []*Appointment{
			appt("apt_1", "doc_a", "pat_a", 20, 40, AppointmentCancelled), appt("apt_2", "doc_a", "pat_b", 20, 40, AppointmentCompleted),
			appt("apt_3", "doc_b", "pat_a", 20, 40, AppointmentNoShow), deleted}, "", nil},
		{"other doctors and patients do not count", []*Appointment{appt("apt_1", "doc_b", "pat_b", 20, 40, AppointmentScheduled)}, "", nil},
		{"the doctor is named first, every id listed", []*Appointment{
			appt("apt_2", "doc_b", "pat_a", 30, 50, AppointmentScheduled), appt("apt_1", "doc_a", "pat_b", 10, 30, AppointmentScheduled)}, "doctor_id", []string{"apt_1", "apt_2"}},
	} {
		err := CheckOverlap(a, c.others)
		if c.field == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var e *Error
		if ErrorCode(err) != ECONFLICT || !errorsAs(err, &e) || len(e.Fields) != 1 || e.Fields[0].Field != c.field || !slices.Equal(e.Conflicts, c.conflicts) {
			t.Errorf("%s: %#v", c.name, err)
			continue
		}
		if !strings.Contains(e.Message, c.conflicts[0]) {
			t.Errorf("%s: message does not name %s: %s", c.name, c.conflicts[0], e.Message)
		}
	}
	// Rescheduling an appointment does not collide with itself.
	self := appt("apt_self", "doc_a", "pat_a", 0, 30, AppointmentScheduled)
	if err := CheckOverlap(appt("apt_self", "doc_a", "pat_a", 20, 40, AppointmentScheduled), []*Appointment{self}); err != nil {
		t.Fatalf("self: %v", err)
	}
}

func errorsAs(err error, e **Error) bool {
	x, ok := err.(*Error)
	*e = x
	return ok
}

func TestCheckStart(t *testing.T) {
	now := t9.Add(time.Hour)
	for _, c := range []struct {
		start time.Time
		grace time.Duration
		ok    bool
	}{
		{now, 0, true},
		{now.Add(-time.Microsecond), 0, false},
		{now.Add(-15 * time.Minute), 15 * time.Minute, true},
		{now.Add(-15*time.Minute - time.Microsecond), 15 * time.Minute, false},
		{now.Add(-24 * time.Hour), 15 * time.Minute, false},
	} {
		err := (&Appointment{StartsAt: c.start}).CheckStart(now, c.grace)
		if (err == nil) != c.ok || (err != nil && (ErrorCode(err) != EINVALID || !strings.Contains(err.Error(), "starts_at"))) {
			t.Errorf("start %v grace %v: %v", now.Sub(c.start), c.grace, err)
		}
	}
	if err := (&Appointment{StartsAt: now.Add(-time.Hour)}).CheckStart(now, 15*time.Minute); !strings.Contains(ErrorMessage(err), "15 minutes") {
		t.Errorf("message: %v", err)
	}
}

func TestRecallAndRepeatedStatus(t *testing.T) {
	for _, st := range []QueueStatus{QueueWaiting, QueueInProgress, QueueCompleted, QueueNoShow, QueueCancelled} {
		if err := (&QueueEntry{Status: st}).Recall(t9); ErrorCode(err) != ECONFLICT {
			t.Errorf("recall %s: %v", st, err)
		}
	}
	q := &QueueEntry{Status: QueueCalled, CalledAt: &t9}
	if err := q.Recall(t9.Add(time.Minute)); err != nil || q.Recalls != 1 || !q.RecalledAt.Equal(t9.Add(time.Minute)) || !q.CalledAt.Equal(t9) {
		t.Fatalf("recall: %v %+v", err, q)
	}
	for _, st := range []QueueStatus{QueueWaiting, QueueCalled, QueueInProgress} {
		q := &QueueEntry{Status: st}
		s := st
		err := (&QueueUpdate{Status: &s}).Apply(q, t9)
		if ErrorCode(err) != ECONFLICT || q.Status != st {
			t.Errorf("PATCH status %s on %s: %v", st, st, err)
		}
		if st == QueueCalled && !strings.Contains(ErrorMessage(err), "recall") {
			t.Errorf("called → called does not point to recall: %v", err)
		}
	}
}

func TestBoardLastCall(t *testing.T) {
	at := func(m int) *time.Time { x := t9.Add(time.Duration(m) * time.Minute); return &x }
	es := []*QueueEntry{
		{Token: 1, Status: QueueInProgress, CalledAt: at(1)},
		{Token: 2, Status: QueueCalled, CalledAt: at(5)},
		{Token: 3, Status: QueueWaiting},
	}
	OrderQueue(es, 10)
	b := NewBoard(&Doctor{Meta: Meta{ID: "doc_1"}}, "2026-11-22", es, 10)
	if b.LastCall == nil || b.LastCall.Token != 2 || !b.LastCall.At.Equal(*at(5)) || b.Archived {
		t.Fatalf("last call %+v", b.LastCall)
	}
	es[0].RecalledAt = at(7) // token 1 recalled after token 2's call
	b = NewBoard(&Doctor{Meta: Meta{ID: "doc_1"}}, "2026-11-22", es, 10)
	if b.LastCall.Token != 1 || !b.LastCall.At.Equal(*at(7)) {
		t.Fatalf("last call after recall %+v", b.LastCall)
	}
	j, _ := json.Marshal(NewBoard(&Doctor{Meta: Meta{ID: "doc_1", DeletedAt: at(0)}}, "2026-11-22", nil, 10))
	if !strings.Contains(string(j), `"last_call":null`) || !strings.Contains(string(j), `"archived":true`) {
		t.Fatalf("board JSON %s", j)
	}
}

func TestPageDeletedKey(t *testing.T) {
	snap, _ := json.Marshal(&Page{Items: []Record{}})
	delta, _ := json.Marshal(&Page{Items: []Record{}, Deleted: []string{}})
	if strings.Contains(string(snap), "deleted") || !strings.Contains(string(delta), `"deleted":[]`) {
		t.Fatalf("snapshot %s, delta %s", snap, delta)
	}
}
