package api_test

import (
	"net/http"
	"testing"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// Every list, and /events, refuses a query parameter it does not know with
// 400 naming it: a typo must not answer the unfiltered list.
func TestUnknownQueryParameters(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "params")
	for _, name := range models.Entities {
		// A token per resource: polls are rate-limited per token.
		tok := s.Token("params", models.RoleCoordinator, "desk-"+name)
		get := func(p string) *apptest.Response { return s.Do(t, http.MethodGet, p, tok, nil) }
		for _, tc := range []struct{ query, field string }{
			{"name=Maria", "name"},
			{"doctorId=x", "doctorId"},
			{"limit=5&Status=waiting", "Status"},
			{"since=0&wait=0&typo=1", "typo"},
		} {
			path := "/api/v1/" + name + "?" + tc.query
			for _, poll := range []bool{false, true} {
				p := path
				if poll {
					p += "&stream=live" // the poll path of the list middleware
				}
				expectProblem(t, get(p), http.StatusBadRequest, tc.field)
			}
		}
		// Known parameters still work: the resource's filters, the page,
		// the poll, the platform and cache-buster ones.
		for _, q := range []string{"", "limit=5", "since=0&wait=0&stream=down", "_=1700000000"} {
			if r := get("/api/v1/" + name + "?" + q); r.Status != http.StatusOK {
				t.Errorf("%s?%s: %d %s", name, q, r.Status, r.Body)
			}
		}
		for f := range models.Resources[name].Filters {
			// A known filter with a bad value is named as itself.
			expectProblem(t, get("/api/v1/"+name+"?"+f+"=%01"), http.StatusBadRequest, f)
		}
	}
	// Several unknown parameters are all named.
	r := c.do(t, http.MethodGet, "/api/v1/appointments?doctorId=x&patientId=y", nil)
	expectProblem(t, r, http.StatusBadRequest, "doctorId")
	expectProblem(t, r, http.StatusBadRequest, "patientId")
	// /events: the same rule.
	expectProblem(t, c.do(t, http.MethodGet, "/api/v1/events?since=0&topic=queue", nil), http.StatusBadRequest, "topic")
	if r := c.do(t, http.MethodGet, "/api/v1/events?since=0&topics=queue&_=1", nil); r.Status != http.StatusOK {
		t.Errorf("events with known parameters: %d %s", r.Status, r.Body)
	}
	// A platform token names its tenant with tenant_id on any list.
	plat := s.Token("platform", models.RolePlatform, "ops")
	if r := s.Do(t, http.MethodGet, "/api/v1/patients?tenant_id=params", plat, nil); r.Status != http.StatusOK {
		t.Errorf("platform list: %d %s", r.Status, r.Body)
	}
}
