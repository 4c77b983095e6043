package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/clinicpulse/clinicpulse/models"
)

// FuzzDecode feeds arbitrary bodies to the strict decoder of every
// resource's create and update shapes: it must never panic, and anything
// it rejects must be a 4xx problem, never a 500.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"name":"Ana","date_of_birth":"1990-01-02"}`, `{"patient_id":"pat_00000000000000000000","doctor_id":"doc_00000000000000000000"}`,
		`{"starts_at":"2026-01-01T10:00:00Z"}`, `{"items":[{"drug":"x","dose":"1"}]}`, `{"lines":[{"description":"a","quantity":1,"unit_price":2}]}`,
		`{"status":"called"}`, `[]`, `{"name":`, `{"a":1}`, `{"name":"a"} x`, `{"quantity":1e400}`, `"\u0000"`, `{"starts_at":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, r := range models.Resources {
			for _, v := range []any{r.New(), r.NewUpdate()} {
				err := Decode(body, v)
				if err == nil {
					continue
				}
				if p := ProblemOf(err); p.Status < 400 || p.Status >= 500 {
					t.Fatalf("Decode(%q) → status %d: %v", body, p.Status, err)
				}
				if rec, ok := v.(interface{ Validate() error }); ok && err == nil {
					_ = rec.Validate()
				}
			}
			rec := r.New()
			if Decode(body, rec) == nil {
				if v, ok := rec.(interface{ Validate() error }); ok {
					if err := v.Validate(); err != nil && ProblemOf(err).Status != http.StatusBadRequest {
						t.Fatalf("Validate after Decode(%q): %v", body, err)
					}
				}
			}
		}
	})
}

func TestDecodeNamesField(t *testing.T) {
	for body, field := range map[string]string{
		`{"name":1}`:             "name",
		`{"nope":1}`:             "nope",
		`{"items":[{"drug":2}]}`: "items.drug",
		`{"lines":{"a":1}}`:      "lines",
	} {
		var err error
		switch {
		case strings.Contains(body, "items"):
			err = Decode([]byte(body), &models.Prescription{})
		case strings.Contains(body, "lines"):
			err = Decode([]byte(body), &models.Invoice{})
		default:
			err = Decode([]byte(body), &models.Patient{})
		}
		p := ProblemOf(err)
		if p.Status != 400 || len(p.Errors) != 1 || p.Errors[0].Field != field {
			t.Errorf("Decode(%s) = %+v, want field %q", body, p, field)
		}
	}
}
