package api_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
)

// GET /api/v1/patients?q=: name word prefixes, the exact MRN, the phone's
// trailing digits; case- and accent-insensitive; paged.
func TestPatientSearch(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "search") // Ana search, Ben search
	mk := func(name, phone, mrn string) string {
		body := map[string]any{"name": name, "phone": phone}
		if mrn != "" {
			body["mrn"] = mrn
		}
		return c.create(t, "patients", body)["id"].(string)
	}
	maria := mk("María José González", "+1 555 0100", "")
	mario := mk("Mario Rossi", "", "MRN-77")
	ana := mk("ANA GONZALEZ", "(555) 0199", "")
	zoe := mk("Zoë Ñúñez", "", "")
	straus := mk("Hans Strauß", "", "")
	find := func(q string, extra ...string) ([]string, string) {
		t.Helper()
		r := c.do(t, http.MethodGet, "/api/v1/patients?q="+url.QueryEscape(q)+strings.Join(extra, ""), nil)
		if r.Status != http.StatusOK {
			t.Fatalf("q=%q: %d %s", q, r.Status, r.Body)
		}
		var page struct {
			Items []struct{ ID string }
			Next  string
		}
		r.JSON(t, &page)
		var ids []string
		for _, it := range page.Items {
			ids = append(ids, it.ID)
		}
		slices.Sort(ids)
		return ids, page.Next
	}
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"mar", sorted(maria, mario)},
		{"MAR gon", sorted(maria)},
		{"gonz", sorted(maria, ana)},
		{"gonzá", sorted(maria, ana)},
		{"josé", sorted(maria)},
		{"nunez", sorted(zoe)},
		{"ZOE", sorted(zoe)},
		{"STRAUSS", sorted(straus)},
		{"strauß", sorted(straus)},
		{"mrn-77", sorted(mario)},
		{"MRN-7", nil},          // the MRN is matched exactly
		{"0100", sorted(maria)}, // the phone's trailing digits
		{"555-0100", sorted(maria)},
		{"+1 555 0100", sorted(maria)},
		{"55501", nil},
		{"ross mar", sorted(mario)},
		{"rossi x", nil},
		{"xyz", nil},
	} {
		if got, _ := find(tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("q=%q: %v, want %v", tc.q, got, tc.want)
		}
	}
	// Paged like other lists.
	first, next := find("gon", "&limit=1")
	if len(first) != 1 || next == "" {
		t.Fatalf("page 1: %v next %q", first, next)
	}
	second, next2 := find("gon", "&limit=1&after="+next)
	if len(second) != 1 || second[0] == first[0] || next2 != "" {
		t.Fatalf("page 2: %v next %q", second, next2)
	}
	// Filters combine with q.
	if got, _ := find("mario", "&mrn=MRN-77"); !slices.Equal(got, []string{mario}) {
		t.Fatalf("q with mrn filter: %v", got)
	}
	// A rename is searchable at once; the old name is not.
	c.patch(t, "patients", mario, map[string]any{"name": "Marco Bianchi"}, http.StatusOK)
	if got, _ := find("rossi"); len(got) != 0 {
		t.Fatalf("old name still found: %v", got)
	}
	if got, _ := find("bian"); !slices.Equal(got, []string{mario}) {
		t.Fatalf("new name: %v", got)
	}
	// Archived patients are not found.
	if r := c.do(t, http.MethodDelete, "/api/v1/patients/"+zoe, nil); r.Status != http.StatusNoContent {
		t.Fatalf("archive: %d", r.Status)
	}
	if got, _ := find("zoe"); len(got) != 0 {
		t.Fatalf("archived patient found: %v", got)
	}
	// q is bounded text.
	for _, q := range []string{"", "  ", "-.-", strings.Repeat("a", 101), "a\x01b"} {
		expectProblem(t, c.do(t, http.MethodGet, "/api/v1/patients?q="+url.QueryEscape(q), nil), http.StatusBadRequest, "q")
	}
	expectProblem(t, c.do(t, http.MethodGet, "/api/v1/patients?q=a&q=b", nil), http.StatusBadRequest, "q")
	// Another tenant finds nothing of this one.
	other := newClinic(t, s, "search-2")
	if r := other.do(t, http.MethodGet, "/api/v1/patients?q=gon", nil); r.Status != 200 || strings.Contains(string(r.Body), maria) {
		t.Fatalf("other tenant: %d %s", r.Status, r.Body)
	}
}
