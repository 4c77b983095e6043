package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// clinic is a tenant with a doctor, two patients and a staff token.
type clinic struct {
	s        *apptest.Server
	tenant   string
	staff    string
	doctor   string
	patient  string
	patient2 string
}

func newClinic(t *testing.T, s *apptest.Server, tenant string) *clinic {
	t.Helper()
	c := &clinic{s: s, tenant: tenant, staff: s.Token(tenant, models.RoleCoordinator, "desk-1")}
	c.doctor = s.Create(t, c.staff, "doctors", map[string]any{"name": "Dr. " + tenant, "room": "4"})["id"].(string)
	c.patient = s.Create(t, c.staff, "patients", map[string]any{"name": "Ana " + tenant, "date_of_birth": "1990-01-02"})["id"].(string)
	c.patient2 = s.Create(t, c.staff, "patients", map[string]any{"name": "Ben " + tenant})["id"].(string)
	return c
}

func (c *clinic) do(t *testing.T, method, path string, body any, headers ...string) *apptest.Response {
	t.Helper()
	return c.s.Do(t, method, path, c.staff, body, headers...)
}

func (c *clinic) create(t *testing.T, resource string, body any) map[string]any {
	t.Helper()
	return c.s.Create(t, c.staff, resource, body)
}

func (c *clinic) patch(t *testing.T, resource, id string, body any, want int) map[string]any {
	t.Helper()
	r := c.do(t, http.MethodPatch, "/api/v1/"+resource+"/"+id, body)
	if r.Status != want {
		t.Fatalf("PATCH %s/%s %v: %d %s, want %d", resource, id, body, r.Status, r.Body, want)
	}
	var m map[string]any
	if r.Status == http.StatusOK {
		r.JSON(t, &m)
	}
	return m
}

func (c *clinic) get(t *testing.T, resource, id string) map[string]any {
	t.Helper()
	r := c.do(t, http.MethodGet, "/api/v1/"+resource+"/"+id, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET %s/%s: %d %s", resource, id, r.Status, r.Body)
	}
	var m map[string]any
	r.JSON(t, &m)
	return m
}

// events returns the tenant's log after seq, as "type id" strings.
func (c *clinic) events(t *testing.T, after int64) ([]string, int64) {
	t.Helper()
	evs, err := c.s.App.Store.ReadEvents(context.Background(), models.EventQuery{TenantID: c.tenant, After: after, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	last := after
	for _, e := range evs {
		out = append(out, e.Type+" "+e.ID)
		last = e.Seq
	}
	return out, last
}

func (c *clinic) head(t *testing.T) int64 {
	t.Helper()
	h, err := c.s.App.Store.LogHead(context.Background(), c.tenant)
	if err != nil {
		t.Fatal(err)
	}
	return h.Seq
}

// counts returns the row count of every table, to prove a rejected request
// wrote nothing.
func counts(t *testing.T, s *apptest.Server) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, table := range []string{"patients", "doctors", "appointments", "queue_entries", "visits", "prescriptions", "invoices", "events", "idempotency_keys"} {
		var n int64
		if err := s.App.Store.DB().Table(table).Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

func expectProblem(t *testing.T, r *apptest.Response, status int, field string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q, want application/problem+json", ct)
	}
	var p struct {
		Type   string
		Title  string
		Status int
		Detail string
		Errors []models.FieldError
	}
	r.JSON(t, &p)
	if p.Status != status || p.Type == "" || p.Title == "" || p.Detail == "" {
		t.Fatalf("incomplete problem: %s", r.Body)
	}
	if field != "" {
		found := false
		for _, e := range p.Errors {
			found = found || e.Field == field
		}
		if !found && !strings.Contains(p.Detail, field) {
			t.Fatalf("problem does not name %q: %s", field, r.Body)
		}
	}
}

func fmtSeq(evs []string) string { return fmt.Sprintf("%q", evs) }
