package api_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// problemFields returns the fields a 400 names, after checking it is one.
func problemFields(t *testing.T, r *apptest.Response) []string {
	t.Helper()
	expectProblem(t, r, http.StatusBadRequest, "")
	var p struct{ Errors []models.FieldError }
	r.JSON(t, &p)
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Field)
	}
	slices.Sort(out)
	return out
}

// Every 400 names the exact field, and every missing required field at
// once.
func TestErrorsNameTheField(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "fields").asDoctor()
	visit := c.openVisit(t, c.patient)
	for _, tc := range []struct {
		name, method, path string
		body               any
		fields             []string
	}{
		{"appointment time not RFC 3339", "POST", "/api/v1/appointments",
			map[string]any{"patient_id": c.patient, "doctor_id": c.doctor, "starts_at": "10:45", "ends_at": "2030-01-01T10:00:00Z"}, []string{"starts_at"}},
		{"appointment empty", "POST", "/api/v1/appointments", map[string]any{}, []string{"doctor_id", "ends_at", "patient_id", "starts_at"}},
		{"appointment ends only", "POST", "/api/v1/appointments",
			map[string]any{"patient_id": c.patient, "doctor_id": c.doctor, "ends_at": "2030-01-01T10:00:00Z"}, []string{"starts_at"}},
		{"queue empty", "POST", "/api/v1/queue", map[string]any{}, []string{"doctor_id", "patient_id"}},
		{"visit empty", "POST", "/api/v1/visits", map[string]any{}, []string{"queue_entry_id"}},
		{"visit patient only", "POST", "/api/v1/visits", map[string]any{"patient_id": c.patient}, []string{"doctor_id"}},
		{"invoice empty", "POST", "/api/v1/invoices", map[string]any{}, []string{"currency", "lines", "visit_id"}},
		{"invoice line price a string", "POST", "/api/v1/invoices",
			map[string]any{"visit_id": visit, "currency": "EUR", "lines": []any{map[string]any{"description": "a", "quantity": 1, "unit_price": "5"}}}, []string{"lines[0].unit_price"}},
		{"invoice lines all wrong", "POST", "/api/v1/invoices",
			map[string]any{"visit_id": visit, "currency": "EUR", "lines": []any{line("a", 1, 1), line("", 0, -1)}},
			[]string{"lines[1].description", "lines[1].quantity", "lines[1].unit_price"}},
		{"prescription empty", "POST", "/api/v1/prescriptions", map[string]any{}, []string{"items", "visit_id"}},
		{"prescription item", "POST", "/api/v1/prescriptions",
			map[string]any{"visit_id": visit, "items": []any{map[string]any{"drug": "a", "dose": "1"}, map[string]any{"route": "oral"}}}, []string{"items[1].dose", "items[1].drug"}},
		{"patient empty", "POST", "/api/v1/patients", map[string]any{"date_of_birth": "1990-02-30"}, []string{"date_of_birth", "name"}},
		{"doctor empty", "POST", "/api/v1/doctors", map[string]any{}, []string{"name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := counts(t, s)
			got := problemFields(t, c.do(t, tc.method, tc.path, tc.body))
			if !slices.Equal(got, tc.fields) {
				t.Fatalf("fields %q, want %q", got, tc.fields)
			}
			if after := counts(t, s); !maps(before, after) {
				t.Fatalf("rows changed on refusal")
			}
		})
	}
	// A PATCH's time names its field too.
	start := "2030-01-01T10:00:00Z"
	appt := c.create(t, "appointments", map[string]any{"patient_id": c.patient2, "doctor_id": c.doctor, "starts_at": start, "ends_at": "2030-01-01T10:20:00Z"})
	r := c.do(t, http.MethodPatch, "/api/v1/appointments/"+appt["id"].(string), map[string]any{"ends_at": "10:45"})
	if got := problemFields(t, r); !slices.Equal(got, []string{"ends_at"}) {
		t.Fatalf("PATCH ends_at: fields %q", got)
	}
}
