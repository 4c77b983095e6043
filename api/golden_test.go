package api_test

import (
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestProblemGolden pins the problem+json wire format: status line,
// content type and body of each kind of error.
func TestProblemGolden(t *testing.T) {
	s := apptest.Start(t)
	tok := s.Token("golden", models.RoleAdmin, "a")
	var out []byte
	for _, r := range []struct {
		name, method, path, token string
		body                      any
	}{
		{"validation", "POST", "/api/v1/patients", tok, `{"name":"","bogus":1}`},
		{"field", "POST", "/api/v1/patients", tok, `{"name":"","phone":"1"}`},
		{"not-found", "GET", "/api/v1/queue/q_00000000000000000000", tok, nil},
		{"unauthorized", "GET", "/api/v1/queue", "", nil},
		{"forbidden", "GET", "/api/v1/patients", s.Token("golden", models.RoleDisplay, "d"), nil},
		{"method", "DELETE", "/api/v1/visits/vis_00000000000000000000", tok, nil},
		{"too-large", "POST", "/api/v1/doctors", tok, make([]byte, 1<<20+1)},
		{"bad-limit", "GET", "/api/v1/queue?limit=5000", tok, nil},
	} {
		res := s.Do(t, r.method, r.path, r.token, r.body)
		out = append(out, "## "+r.name+"\n"+http.StatusText(res.Status)+" "+res.Header.Get("Content-Type")+"\n"...)
		out = append(out, res.Body...)
		out = append(out, "\n\n"...)
	}
	golden := filepath.Join("testdata", "problems.golden")
	if *update {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./api -run TestProblemGolden -update)", err)
	}
	if string(want) != string(out) {
		t.Fatalf("problem+json differs from %s:\n%s", golden, out)
	}
}
