package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// openVisit queues the patient with the clinic's doctor and opens a visit.
func (c *clinic) openVisit(t *testing.T, patient string) string {
	t.Helper()
	q := c.create(t, "queue", map[string]any{"patient_id": patient, "doctor_id": c.doctor})
	return c.create(t, "visits", map[string]any{"queue_entry_id": q["id"]})["id"].(string)
}

// refusedField asserts a request is refused with status naming field, and that
// it wrote nothing: no row, no event.
func (c *clinic) refusedField(t *testing.T, method, path string, body any, status int, field string) {
	t.Helper()
	before := counts(t, c.s)
	expectProblem(t, c.do(t, method, path, body), status, field)
	if after := counts(t, c.s); !maps(before, after) {
		t.Fatalf("%s %s %v: rows changed on refusal: %v → %v", method, path, body, before, after)
	}
}

func line(desc string, qty, price int64) map[string]any {
	return map[string]any{"description": desc, "quantity": qty, "unit_price": price}
}

// Invoices: at least one line, positive quantities, non-negative prices, a
// total that cannot overflow, an ISO 4217 code in use, one non-void
// invoice per visit.
func TestInvoiceRules(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "bill")
	visit := c.openVisit(t, c.patient)
	const big = int64(1) << 53
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"no lines", map[string]any{"visit_id": visit, "currency": "EUR", "lines": []any{}}, "lines"},
		{"lines left out", map[string]any{"visit_id": visit, "currency": "EUR"}, "lines"},
		{"unknown currency", map[string]any{"visit_id": visit, "currency": "XYZ", "lines": []any{line("a", 1, 1)}}, "currency"},
		{"withdrawn currency", map[string]any{"visit_id": visit, "currency": "DEM", "lines": []any{line("a", 1, 1)}}, "currency"},
		{"metal", map[string]any{"visit_id": visit, "currency": "XAU", "lines": []any{line("a", 1, 1)}}, "currency"},
		{"no currency", map[string]any{"visit_id": visit, "lines": []any{line("a", 1, 1)}}, "currency"},
		{"zero quantity", map[string]any{"visit_id": visit, "currency": "EUR", "lines": []any{line("a", 1, 1), line("b", 0, 1)}}, "lines[1].quantity"},
		{"negative quantity", map[string]any{"visit_id": visit, "currency": "EUR", "lines": []any{line("a", -2, 1)}}, "lines[0].quantity"},
		{"negative price", map[string]any{"visit_id": visit, "currency": "EUR", "lines": []any{line("a", 1, 1), line("b", 1, 1), line("c", 1, -5)}}, "lines[2].unit_price"},
		{"price past 2^53", map[string]any{"visit_id": visit, "currency": "EUR", "lines": []any{line("a", 1, big+1)}}, "lines[0].unit_price"},
		{"line overflows", map[string]any{"visit_id": visit, "currency": "EUR", "lines": []any{line("a", 1_000_000, big)}}, "lines[0].quantity"},
		{"total overflows", map[string]any{"visit_id": visit, "currency": "EUR", "lines": []any{line("a", 1, big), line("b", 1, 1), line("c", 1, 1)}}, "lines[1].quantity"},
		{"int64 wrap", map[string]any{"visit_id": visit, "currency": "EUR", "lines": []any{line("a", 1_000_000, 9_223_372_036_854)}}, "lines[0].quantity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.refusedField(t, http.MethodPost, "/api/v1/invoices", tc.body, http.StatusBadRequest, tc.field)
		})
	}

	// Legal: the largest total is exactly 2^53; lower-case codes are
	// accepted and stored upper case.
	_, mark := c.events(t, 0)
	inv := c.create(t, "invoices", map[string]any{"visit_id": visit, "currency": "ves", "lines": []any{line("a", 1, big-1), line("b", 1, 1)}})
	if inv["total"] != float64(big) || inv["currency"] != "VES" || inv["status"] != "draft" {
		t.Fatalf("invoice: %v", inv)
	}
	id := inv["id"].(string)
	if evs, _ := c.events(t, mark); fmtSeq(evs) != fmtSeq([]string{"invoices.created " + id}) {
		t.Fatalf("events %s", fmtSeq(evs))
	}

	// One non-void invoice per visit: a second is 409 naming the first.
	r := c.do(t, http.MethodPost, "/api/v1/invoices", map[string]any{"visit_id": visit, "currency": "EUR", "lines": []any{line("a", 1, 1)}})
	expectProblem(t, r, http.StatusConflict, "visit_id")
	if !strings.Contains(string(r.Body), id) {
		t.Fatalf("conflict does not name invoice %s: %s", id, r.Body)
	}
	c.refusedField(t, http.MethodPost, "/api/v1/invoices", map[string]any{"visit_id": visit, "currency": "EUR", "lines": []any{line("a", 1, 1)}}, http.StatusConflict, "visit_id")
	// Lines cannot be emptied, nor the currency made up, on a draft.
	c.refusedField(t, http.MethodPatch, "/api/v1/invoices/"+id, map[string]any{"lines": []any{}}, http.StatusBadRequest, "lines")
	c.refusedField(t, http.MethodPatch, "/api/v1/invoices/"+id, map[string]any{"currency": "XTS"}, http.StatusBadRequest, "currency")
	// Voiding it makes room for the replacement.
	c.patch(t, "invoices", id, map[string]any{"status": "void"}, http.StatusOK)
	c.create(t, "invoices", map[string]any{"visit_id": visit, "currency": "EUR", "lines": []any{line("Consultation", 1, 4500)}})
	// An invoice without a visit needs its patient; an empty body names
	// visit_id, currency and lines at once.
	c.create(t, "invoices", map[string]any{"patient_id": c.patient, "currency": "USD", "lines": []any{line("Certificate", 1, 1500)}})
	r = c.do(t, http.MethodPost, "/api/v1/invoices", map[string]any{})
	for _, f := range []string{"visit_id", "currency", "lines"} {
		expectProblem(t, r, http.StatusBadRequest, f)
	}
}

// Eight racing invoices for one visit: exactly one is created.
func TestInvoiceOnePerVisitRace(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "billrace")
	for round := range 3 {
		visit := c.openVisit(t, []string{c.patient, c.patient2, c.patient}[round])
		var wg sync.WaitGroup
		statuses := make([]int, 8)
		for i := range statuses {
			wg.Go(func() {
				r := c.do(t, http.MethodPost, "/api/v1/invoices", map[string]any{"visit_id": visit, "currency": "EUR",
					"lines": []any{line(fmt.Sprintf("racer %d", i), 1, 100)}})
				statuses[i] = r.Status
			})
		}
		wg.Wait()
		created, conflicts := 0, 0
		for _, st := range statuses {
			switch st {
			case http.StatusCreated:
				created++
			case http.StatusConflict:
				conflicts++
			}
		}
		if created != 1 || conflicts != 7 {
			t.Fatalf("round %d: statuses %v, want one 201 and seven 409", round, statuses)
		}
		var n int64
		if err := s.App.Store.DB().Table("invoices").Where("visit_id = ?", visit).Count(&n).Error; err != nil || n != 1 {
			t.Fatalf("round %d: %d invoices for the visit (%v)", round, n, err)
		}
		// Close the visit so the next round's queue entry is new.
		c.patch(t, "visits", visit, map[string]any{"status": "closed"}, http.StatusOK)
	}
}

// asDoctor makes the clinic's staff token its doctor's (a doctor is staff:
// it can do what the coordinator does, and prescribe on its own visits).
func (c *clinic) asDoctor() *clinic {
	c.staff = c.s.Token(c.tenant, models.RoleDoctor, c.doctor)
	return c
}
