package api_test

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
)

// TestRulesProblemGolden pins the problem+json of the clinic's rules: the
// field named, the detail, and the conflicts extension member with the ids
// of the records in the way (ids replaced by <apt-1>, <q-1>, … in order of
// appearance; the clock is fixed, so times are stable).
func TestRulesProblemGolden(t *testing.T) {
	clk := &clock{t: time.Date(2030, 1, 7, 8, 0, 0, 0, time.UTC)}
	s := apptest.Start(t, withClock(clk))
	c := newClinic(t, s, "rulesgolden")
	at := clk.Now().Add(time.Hour)
	a := c.create(t, "appointments", c.book(c.patient, c.doctor, at, 20))
	c.create(t, "appointments", c.book(c.patient2, c.doctor, at.Add(20*time.Minute), 20))
	q := c.create(t, "queue", map[string]any{"patient_id": c.patient, "doctor_id": c.doctor})
	c.patch(t, "queue", id(q), map[string]any{"status": "called"}, 200)
	q2 := c.create(t, "queue", map[string]any{"patient_id": c.patient2, "doctor_id": c.doctor})
	var out []byte
	for _, r := range []struct {
		name, method, path string
		body               any
	}{
		{"booking-doctor-busy", "POST", "/api/v1/appointments", c.book(c.patient2, c.doctor, at.Add(10*time.Minute), 20)},
		{"booking-patient-busy", "POST", "/api/v1/appointments", map[string]any{"patient_id": c.patient, "doctor_id": id(c.create(t, "doctors", map[string]any{"name": "Dr. B"})), "starts_at": at, "ends_at": at.Add(20 * time.Minute)}},
		{"booking-in-the-past", "POST", "/api/v1/appointments", c.book(c.patient2, c.doctor, clk.Now().Add(-time.Hour), 20)},
		{"reschedule-overlap", "PATCH", "/api/v1/appointments/" + id(a), map[string]any{"ends_at": at.Add(30 * time.Minute)}},
		{"queue-duplicate", "POST", "/api/v1/queue", map[string]any{"patient_id": c.patient, "doctor_id": c.doctor}},
		{"call-twice", "PATCH", "/api/v1/queue/" + id(q), map[string]any{"status": "called"}},
		{"recall-waiting", "POST", "/api/v1/queue/" + id(q2) + "/recall", nil},
		{"archive-busy-doctor", "DELETE", "/api/v1/doctors/" + c.doctor, nil},
	} {
		res := c.do(t, r.method, r.path, r.body)
		out = append(out, "## "+r.name+"\n"+http.StatusText(res.Status)+" "+res.Header.Get("Content-Type")+"\n"...)
		out = append(out, res.Body...)
		out = append(out, "\n\n"...)
	}
	seen := map[string]string{}
	n := map[string]int{}
	out = regexp.MustCompile(`\b(apt|q|doc|pat)_[0-9a-z]{20}\b`).ReplaceAllFunc(out, func(b []byte) []byte {
		k := string(b)
		if seen[k] == "" {
			p := regexp.MustCompile(`_.*`).ReplaceAllString(k, "")
			n[p]++
			seen[k] = "<" + p + "-" + strconv.Itoa(n[p]) + ">"
		}
		return []byte(seen[k])
	})
	golden := filepath.Join("testdata", "rules-problems.golden")
	if *update {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./api -run TestRulesProblemGolden -update)", err)
	}
	if string(want) != string(out) {
		t.Fatalf("problem+json differs from %s:\n%s", golden, out)
	}
}
