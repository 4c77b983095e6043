package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// Only a doctor prescribes, on their own visit; the prescription records
// who prescribed and when.
func TestPrescribingRules(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "rx")
	docA := c.doctor
	docB := c.create(t, "doctors", map[string]any{"name": "Dr. B"})["id"].(string)
	visit := c.openVisit(t, c.patient) // Dr. A's
	body := map[string]any{"visit_id": visit, "items": []any{map[string]any{"drug": "Amoxicillin", "dose": "500 mg"}}}
	tok := func(role models.Role, sub string) string { return s.Token("rx", role, sub) }
	refused := func(token, method, path string, body any, status int, field string) {
		t.Helper()
		before := counts(t, s)
		_, mark := c.events(t, 0)
		expectProblem(t, s.Do(t, method, path, token, body), status, field)
		if after := counts(t, s); !maps(before, after) {
			t.Fatalf("%s %s: rows changed on refusal", method, path)
		}
		if evs, _ := c.events(t, mark); len(evs) != 0 {
			t.Fatalf("%s %s: events on refusal: %s", method, path, fmtSeq(evs))
		}
	}
	for _, tc := range []struct {
		name, token, field string
	}{
		{"coordinator", c.staff, ""},
		{"admin", tok(models.RoleAdmin, "admin-1"), ""},
		{"another doctor", tok(models.RoleDoctor, docB), "visit_id"},
		{"a doctor token that names no doctor", tok(models.RoleDoctor, "dr-who"), "visit_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refused(tc.token, http.MethodPost, "/api/v1/prescriptions", body, http.StatusForbidden, tc.field)
		})
	}

	// Dr. A prescribes: stored under the visit's doctor, by Dr. A, now. A
	// client's prescribed_by is not taken.
	a := tok(models.RoleDoctor, docA)
	_, mark := c.events(t, 0)
	body["prescribed_by"] = docB
	before := time.Now().Add(-time.Second)
	r := s.Do(t, http.MethodPost, "/api/v1/prescriptions", a, body)
	if r.Status != http.StatusCreated {
		t.Fatalf("Dr. A prescribes: %d %s", r.Status, r.Body)
	}
	var rx struct {
		ID           string    `json:"id"`
		DoctorID     string    `json:"doctor_id"`
		PatientID    string    `json:"patient_id"`
		PrescribedBy string    `json:"prescribed_by"`
		PrescribedAt time.Time `json:"prescribed_at"`
	}
	r.JSON(t, &rx)
	if rx.DoctorID != docA || rx.PatientID != c.patient || rx.PrescribedBy != docA || rx.PrescribedAt.Before(before) || rx.PrescribedAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("prescription: %s", r.Body)
	}
	if evs, _ := c.events(t, mark); fmtSeq(evs) != fmtSeq([]string{"prescriptions.created " + rx.ID}) {
		t.Fatalf("events %s", fmtSeq(evs))
	}
	path := "/api/v1/prescriptions/" + rx.ID
	change := map[string]any{"items": []any{map[string]any{"drug": "Ibuprofen", "dose": "200 mg"}}}
	// Nobody else changes or deletes it.
	refused(tok(models.RoleDoctor, docB), http.MethodPatch, path, change, http.StatusForbidden, "visit_id")
	refused(c.staff, http.MethodPatch, path, change, http.StatusForbidden, "")
	refused(tok(models.RoleDoctor, docB), http.MethodDelete, path, nil, http.StatusForbidden, "visit_id")
	refused(c.staff, http.MethodDelete, path, nil, http.StatusForbidden, "")
	// Dr. A does; the prescriber stays recorded.
	r = s.Do(t, http.MethodPatch, path, a, change)
	if r.Status != http.StatusOK {
		t.Fatalf("Dr. A edits: %d %s", r.Status, r.Body)
	}
	var edited map[string]any
	r.JSON(t, &edited)
	if edited["prescribed_by"] != docA || edited["prescribed_at"] == nil {
		t.Fatalf("edited: %v", edited)
	}
	if r := s.Do(t, http.MethodDelete, path, a, nil); r.Status != http.StatusNoContent {
		t.Fatalf("Dr. A deletes: %d %s", r.Status, r.Body)
	}
}
