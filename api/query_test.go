package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/labstack/echo/v4"
)

// FuzzListQuery: any query string and If-Match header parse to a valid list
// query or a 400 naming the parameters (every unknown one); never a panic, never an out-of-range
// value passed on.
func FuzzListQuery(f *testing.F) {
	for _, s := range []string{"limit=10&after=q_00000000000000000000", "since=5", "since=-1", "limit=0", "status=waiting&doctor_id=doc_x",
		"date=2026-02-30", "limit=1001", "since=99999999999999999999", "%zz", "status=waiting&status=called"} {
		f.Add(s, `"3"`)
	}
	e := echo.New()
	f.Fuzz(func(t *testing.T, query, ifMatch string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.RawQuery = query
		req.Header.Set("If-Match", ifMatch)
		c := e.NewContext(req, httptest.NewRecorder())
		for _, r := range models.Resources {
			q, err := parseListQuery(c, r)
			if err != nil {
				if p := ProblemOf(err); p.Status != 400 || len(p.Errors) == 0 {
					t.Fatalf("%q: %+v", query, p)
				}
				continue
			}
			for k := range c.QueryParams() {
				if !r.KnowsParam(k) {
					t.Fatalf("%q: unknown parameter %q accepted by %s", query, k, r.Name)
				}
			}
			if q.Limit < 1 || q.Limit > models.MaxLimit || q.Since < 0 || (q.After != "" && !models.ValidID(r.Name, q.After)) {
				t.Fatalf("%q parsed out of range: %+v", query, q)
			}
			for k, v := range q.Filters {
				if check, ok := r.Filters[k]; !ok || !check(v) {
					t.Fatalf("%q: filter %s=%q passed unchecked", query, k, v)
				}
			}
		}
		if n, err := parseIfMatch(c); err == nil && n < 0 {
			t.Fatalf("If-Match %q → %d", ifMatch, n)
		} else if err != nil && ProblemOf(err).Status != 400 {
			t.Fatalf("If-Match %q: %v", ifMatch, err)
		}
	})
}
