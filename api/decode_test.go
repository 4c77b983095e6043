package api

import (
	"bytes"
	jsonv1 "encoding/json"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/go-json-experiment/json/jsontext"
)

// FuzzDecode feeds arbitrary bodies to the strict decoder of every
// resource's create and update shapes: it must never panic, anything it
// rejects must be a 400 problem naming at most one field, and anything it
// accepts must be one JSON object with unique names, valid UTF-8 and no
// U+0000 (so what reaches the store and the idempotency hash is text).
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"name":"Ana","date_of_birth":"1990-01-02"}`, `{"patient_id":"pat_00000000000000000000","doctor_id":"doc_00000000000000000000"}`,
		`{"starts_at":"2026-01-01T10:00:00Z"}`, `{"items":[{"drug":"x","dose":"1"}]}`, `{"lines":[{"description":"a","quantity":1,"unit_price":2}]}`,
		`{"status":"called"}`, `[]`, `{"name":`, `{"a":1}`, `{"name":"a"} x`, `{"quantity":1e400}`, `"\u0000"`, `{"starts_at":"x"}`,
		"{\"name\":\"bad\xff\xfeutf8\"}", `{"name":"\ud800 x"}`, `{"name":"first","name":"second"}`, `{"Name":"caps"}`,
		`{"name":"a","NAME":"b"}`, `{"name":"a\u0000b"}`, `{"lines":[{"description":"a","description":"b"}]}`,
		`{"items":[{"drug":"x","Dose":"1"}]}`, `{"name":"\\u0000"}`, `{"n\u0000":1}`, `null`, ` {"name":"é"} `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, r := range models.Resources {
			for _, v := range []any{r.New(), r.NewUpdate()} {
				err := Decode(body, v)
				if err != nil {
					p := ProblemOf(err)
					if p.Status != http.StatusBadRequest || len(p.Errors) > 1 {
						t.Fatalf("Decode(%q) → %+v", body, p)
					}
					for _, e := range p.Errors {
						if e.Field == "" || !utf8.ValidString(e.Field) || utf8.RuneCountInString(e.Field) > 4*maxFieldName {
							t.Fatalf("Decode(%q) names field %q", body, e.Field)
						}
					}
					continue
				}
				if !jsontext.Value(body).IsValid() || bytes.TrimSpace(body)[0] != '{' {
					t.Fatalf("Decode accepted %q: not one strict JSON object", body)
				}
				d := jsontext.NewDecoder(bytes.NewReader(body))
				for tok, err := d.ReadToken(); err == nil; tok, err = d.ReadToken() {
					if tok.Kind() == '"' && strings.ContainsRune(tok.String(), 0) {
						t.Fatalf("Decode accepted %q with U+0000", body)
					}
				}
				if rec, ok := v.(interface{ Validate() error }); ok {
					if err := rec.Validate(); err != nil && ProblemOf(err).Status != http.StatusBadRequest {
						t.Fatalf("Validate after Decode(%q): %v", body, err)
					}
				}
			}
		}
	})
}

// TestDecodeNamesField: each refusal is a 400 naming the exact field, at any
// depth, as lines[0].unit_price.
func TestDecodeNamesField(t *testing.T) {
	for _, tc := range []struct {
		body  string
		v     any
		field string
	}{
		{`{"name":1}`, &models.Patient{}, "name"},
		{`{"nope":1}`, &models.Patient{}, "nope"},
		{`{"items":[{"drug":2}]}`, &models.Prescription{}, "items[0].drug"},
		{`{"lines":{"a":1}}`, &models.Invoice{}, "lines"},
		{`{"lines":[1]}`, &models.Invoice{}, "lines[0]"},
		{`{"lines":[{"description":"a","quantity":1,"unit_price":"5"}]}`, &models.Invoice{}, "lines[0].unit_price"},
		{`{"lines":[{"description":"a","quantity":1.5}]}`, &models.Invoice{}, "lines[0].quantity"},
		{`{"lines":[{"description":"a","quantity":1e400}]}`, &models.Invoice{}, "lines[0].quantity"},
		{`{"starts_at":"tomorrow"}`, &models.Appointment{}, "starts_at"},
		{`{"starts_at":5}`, &models.AppointmentUpdate{}, "starts_at"},
		{`{"status":1}`, &models.QueueUpdate{}, "status"},
		// Item 8: invalid text is refused, never rewritten as U+FFFD.
		{"{\"name\":\"bad\xff\xfeutf8\"}", &models.Patient{}, "name"},
		{`{"name":"\ud800 x"}`, &models.Patient{}, "name"},
		{`{"name":"\udc00"}`, &models.Patient{}, "name"},
		{`{"name":"\ud800\u0041"}`, &models.Patient{}, "name"},
		{"{\"lines\":[{\"description\":\"\xc3\"}]}", &models.Invoice{}, "lines[0].description"},
		{`{"items":[{"drug":"x","dose":"\udfff"}]}`, &models.PrescriptionUpdate{}, "items[0].dose"},
		{`{"name":"a\u0000b"}`, &models.Patient{}, "name"},
		{`{"lines":[{"description":"\u0000"}]}`, &models.Invoice{}, "lines[0].description"},
		{`{"reason":"ok","notes\u0000":"x"}`, &models.Appointment{}, "notes\x00"},
		{`{"notes":"ok","reason\u0000":"x"}`, &models.VisitUpdate{}, "reason\x00"},
		// Item 9: repeated names at any depth, and names match exactly.
		{`{"name":"first","name":"second"}`, &models.Patient{}, "name"},
		{`{"name":"first","n\u0061me":"second"}`, &models.Patient{}, "name"},
		{`{"lines":[{"description":"a","description":"b"}]}`, &models.Invoice{}, "lines[0].description"},
		{`{"items":[{"drug":"x","dose":"1"}],"items":[]}`, &models.PrescriptionUpdate{}, "items"},
		{`{"Name":"caps"}`, &models.Patient{}, "Name"},
		{`{"name":"a","NAME":"b"}`, &models.Patient{}, "NAME"},
		{`{"lines":[{"description":"a","Quantity":1}]}`, &models.Invoice{}, "lines[0].Quantity"},
		{`{"items":[{"drug":"x","dose":"1","DRUG":"y"}]}`, &models.Prescription{}, "items[0].DRUG"},
		{`{"lines":[{"0":1}]}`, &models.Invoice{}, "lines[0].0"},
		{`{"tenant_id":"other"}`, &models.Patient{}, "tenant_id"},
		{`{"` + strings.Repeat("x", 500) + `":1}`, &models.Patient{}, strings.Repeat("x", maxFieldName) + "…"},
	} {
		p := ProblemOf(Decode([]byte(tc.body), tc.v))
		if p.Status != 400 || len(p.Errors) != 1 || p.Errors[0].Field != tc.field {
			t.Errorf("Decode(%q) = %+v, want field %q", tc.body, p, tc.field)
		}
	}
}

// TestDecodeWhole: what is not exactly one JSON object is a 400 without a
// field.
func TestDecodeWhole(t *testing.T) {
	for _, body := range []string{``, ` `, `null`, `[]`, `"x"`, `1`, `{"name":"a"} x`, `{"name":"a"}{"name":"b"}`, `{"name":`, `{`, `{"name" "a"}`, "\xff"} {
		p := ProblemOf(Decode([]byte(body), &models.Patient{}))
		if p.Status != 400 || len(p.Errors) != 0 {
			t.Errorf("Decode(%q) = %+v, want a 400 without a field", body, p)
		}
	}
	var p models.Patient
	if err := Decode([]byte(" {\"name\":\"王\\u00e9\\ud83d\\ude00\",\"mrn\":\"\\\\u0000\"}\n"), &p); err != nil || p.Name != "王é😀" || p.MRN != `\u0000` {
		t.Fatalf("a valid body: %v %+v", err, p)
	}
}

// BenchmarkDecode: the strict decoder on a typical invoice body, beside
// encoding/json (v1) with DisallowUnknownFields, which it replaced.
func BenchmarkDecode(b *testing.B) {
	body := []byte(`{"patient_id":"pat_0123456789abcdefghjk","currency":"EUR","lines":[` +
		strings.Repeat(`{"description":"Consultation, follow-up — 王医生","quantity":1,"unit_price":4500},`, 9) +
		`{"description":"Dressing","quantity":2,"unit_price":350}]}`)
	b.Run("strict", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if err := Decode(body, &models.Invoice{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("v1-baseline", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			d := jsonv1.NewDecoder(bytes.NewReader(body))
			d.DisallowUnknownFields()
			if err := d.Decode(&models.Invoice{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
