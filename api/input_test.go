package api_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// Input is checked strictly at the edge: tokens (issue 11 item 7), text
// (item 8), JSON member names (item 9), idempotency keys (item 10) and
// field limits (item 11). Every refusal is a problem naming what was wrong,
// and writes nothing, on SQLite and (with DATABASE_URL) Postgres.

// signRaw signs a JWT header and claims set given as raw JSON text with the
// test servers' HS256 secret.
func signRaw(header, claims string) string {
	enc := base64.RawURLEncoding
	in := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims))
	m := hmac.New(sha256.New, []byte(apptest.Secret))
	m.Write([]byte(in))
	return in + "." + enc.EncodeToString(m.Sum(nil))
}

// TestStrictTokenHeaderAndDates: correctly signed tokens with a critical
// header extension (RFC 7515 §4.1.11) or a NumericDate that is not a JSON
// number (RFC 7519 §2) are 401 with a problem saying why, on every request
// (the verified-token cache never learns them).
func TestStrictTokenHeaderAndDates(t *testing.T) {
	s := apptest.Start(t)
	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	claims := `{"sub":"u1","tenant_id":"strict","role":"admin","exp":` + exp + `}`
	if r := s.Do(t, http.MethodGet, "/api/v1/patients", signRaw(`{"alg":"HS256","typ":"JWT"}`, claims), nil); r.Status != http.StatusOK {
		t.Fatalf("the well-formed raw token: %d %s", r.Status, r.Body)
	}
	for _, tc := range []struct{ name, token, detail string }{
		{"crit x-require-mfa", signRaw(`{"alg":"HS256","typ":"JWT","crit":["x-require-mfa"],"x-require-mfa":true}`, claims), "crit"},
		{"crit empty", signRaw(`{"alg":"HS256","typ":"JWT","crit":[]}`, claims), "crit"},
		{"exp string", signRaw(`{"alg":"HS256","typ":"JWT"}`, `{"sub":"u1","tenant_id":"strict","role":"admin","exp":"`+exp+`"}`), "NumericDate"},
		{"nbf string", signRaw(`{"alg":"HS256","typ":"JWT"}`, `{"sub":"u1","tenant_id":"strict","role":"admin","exp":`+exp+`,"nbf":"1"}`), "NumericDate"},
		{"iat string", signRaw(`{"alg":"HS256","typ":"JWT"}`, `{"sub":"u1","tenant_id":"strict","role":"admin","exp":`+exp+`,"iat":"1"}`), "NumericDate"},
		{"role twice", signRaw(`{"alg":"HS256","typ":"JWT"}`, `{"sub":"u1","tenant_id":"strict","role":"patient","exp":`+exp+`,"role":"admin"}`), "strict JSON"},
		{"sub NUL", signRaw(`{"alg":"HS256","typ":"JWT"}`, `{"sub":"u\u0000","tenant_id":"strict","role":"admin","exp":`+exp+`}`), "sub"},
		{"token over 16 KiB", signRaw(`{"alg":"HS256","typ":"JWT"}`, `{"sub":"u1","tenant_id":"strict","role":"admin","exp":`+exp+`,"pad":"`+strings.Repeat("x", 17<<10)+`"}`), "16384 bytes"},
		{"sub right-to-left override", signRaw(`{"alg":"HS256","typ":"JWT"}`, `{"sub":"nimda\u202e","tenant_id":"strict","role":"admin","exp":`+exp+`}`), "sub"},
	} {
		for range 2 {
			r := s.Do(t, http.MethodGet, "/api/v1/patients", tc.token, nil)
			expectProblem(t, r, http.StatusUnauthorized, "")
			if !strings.Contains(string(r.Body), tc.detail) || strings.Contains(string(r.Body), tc.token) {
				t.Fatalf("%s: %s, want a detail mentioning %s and not the token", tc.name, r.Body, tc.detail)
			}
			if r.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("%s: no WWW-Authenticate", tc.name)
			}
		}
	}
}

// TestInvalidTextRefused: text that is not UTF-8, a lone surrogate escape
// or U+0000 anywhere in a body, a query parameter or an Idempotency-Key is
// a 400 naming where, and nothing is written; never stored as U+FFFD, never
// a 500 from the database driver.
func TestInvalidTextRefused(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "text")
	visit := c.create(t, "visits", map[string]any{"patient_id": c.patient, "doctor_id": c.doctor})["id"].(string)
	inv := c.create(t, "invoices", map[string]any{"patient_id": c.patient, "currency": "EUR", "lines": []map[string]any{{"description": "x", "quantity": 1, "unit_price": 1}}})["id"].(string)
	for _, tc := range []struct {
		name, method, path, body, field string
		headers                         []string
	}{
		{"raw bytes", "POST", "/api/v1/patients", "{\"name\":\"bad\xff\xfeutf8\"}", "name", nil},
		{"lone surrogate", "POST", "/api/v1/patients", `{"name":"\ud800 x"}`, "name", nil},
		{"lone low surrogate", "POST", "/api/v1/doctors", `{"name":"Dr","specialty":"\udc00"}`, "specialty", nil},
		{"NUL", "POST", "/api/v1/patients", `{"name":"a\u0000b"}`, "name", nil},
		{"NUL in free text", "PATCH", "/api/v1/visits/" + visit, `{"notes":"x\u0000"}`, "notes", nil},
		{"truncated UTF-8 in a line", "POST", "/api/v1/invoices", "{\"patient_id\":\"" + c.patient + "\",\"currency\":\"EUR\",\"lines\":[{\"description\":\"caf\xc3\",\"quantity\":1,\"unit_price\":1}]}", "lines[0].description", nil},
		{"surrogate in a line", "PATCH", "/api/v1/invoices/" + inv, `{"lines":[{"description":"ok","quantity":1,"unit_price":1},{"description":"\ud83d","quantity":1,"unit_price":1}]}`, "lines[1].description", nil},
		{"NUL in an item", "POST", "/api/v1/prescriptions", `{"visit_id":"` + visit + `","items":[{"drug":"a\u0000","dose":"1"}]}`, "items[0].drug", nil},
		{"tab in a name", "POST", "/api/v1/patients", `{"name":"a\tb"}`, "name", nil},
		{"right-to-left override in a name", "POST", "/api/v1/patients", `{"name":"Ann\u202Egnirts"}`, "name", nil},
		{"isolate in a room", "POST", "/api/v1/doctors", `{"name":"Dr R","room":"\u20661\u2069"}`, "room", nil},
		{"zero width space in a name", "POST", "/api/v1/doctors", `{"name":"Dr\u200BAda"}`, "name", nil},
		{"BOM in a phone", "POST", "/api/v1/patients", `{"name":"P","phone":"\uFEFF123"}`, "phone", nil},
		{"line separator in a name", "POST", "/api/v1/patients", `{"name":"Ev\u2028il"}`, "name", nil},
		{"Hangul filler as a name", "POST", "/api/v1/doctors", `{"name":"\u3164"}`, "name", nil},
		{"soft hyphen in an MRN", "POST", "/api/v1/patients", `{"name":"P","mrn":"M\u00AD1"}`, "mrn", nil},
		{"tag characters in a room", "POST", "/api/v1/doctors", `{"name":"Dr T","room":"1\uDB40\uDC41"}`, "room", nil},
		{"empty Idempotency-Key", "POST", "/api/v1/doctors", `{"name":"Dr K"}`, "Idempotency-Key", []string{"Idempotency-Key", ""}},
		{"key not UTF-8", "POST", "/api/v1/doctors", `{"name":"Dr K"}`, "Idempotency-Key", []string{"Idempotency-Key", "k\xff"}},
		{"key with a tab", "POST", "/api/v1/doctors", `{"name":"Dr K"}`, "Idempotency-Key", []string{"Idempotency-Key", "k\t1"}},
		{"key too long", "POST", "/api/v1/doctors", `{"name":"Dr K"}`, "Idempotency-Key", []string{"Idempotency-Key", strings.Repeat("k", 201)}},
		{"If-Match list", "PATCH", "/api/v1/patients/" + c.patient, `{"phone":"1"}`, "If-Match", []string{"If-Match", `"1", "2"`}},
		{"If-Match sign", "PATCH", "/api/v1/patients/" + c.patient, `{"phone":"1"}`, "If-Match", []string{"If-Match", `"+1"`}},
		{"filter not UTF-8", "GET", "/api/v1/patients?mrn=%FF", "", "mrn", nil},
		{"filter NUL", "GET", "/api/v1/patients?mrn=a%00", "", "mrn", nil},
		{"cache-buster not UTF-8", "GET", "/api/v1/patients?_=%FE", "", "_", nil},
		{"events parameter not UTF-8", "GET", "/api/v1/events?since=0&x=%C3", "", "x", nil},
		{"events parameter name NUL", "GET", "/api/v1/events?a%00=1", "", "query", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := counts(t, s)
			var body any
			if tc.body != "" {
				body = tc.body
			}
			r := c.do(t, tc.method, tc.path, body, tc.headers...)
			expectProblem(t, r, http.StatusBadRequest, tc.field)
			if strings.Contains(string(r.Body), "\ufffd") {
				t.Fatalf("the problem holds U+FFFD: %s", r.Body)
			}
			if !maps(before, counts(t, s)) {
				t.Fatal("a refused request changed rows")
			}
		})
	}
	// Nothing was stored with a replacement character.
	for _, res := range []string{"patients", "doctors", "invoices", "visits"} {
		if r := c.do(t, "GET", "/api/v1/"+res, nil); r.Status != 200 || strings.Contains(string(r.Body), "\ufffd") || strings.Contains(string(r.Body), `\ufffd`) {
			t.Fatalf("%s: %d %s", res, r.Status, r.Body)
		}
	}
	// Valid text of every plane is stored exactly, escaped or not.
	p := c.create(t, "patients", map[string]any{"name": "王小明 Zoë 😀", "phone": "٠١٢"})
	if got := c.get(t, "patients", p["id"].(string)); got["name"] != "王小明 Zoë 😀" || got["phone"] != "٠١٢" {
		t.Fatalf("stored %v", got)
	}
	// ZWNJ and ZWJ are part of Persian and Indic names, and of emoji
	// (with variation selectors).
	for _, name := range []string{"می\u200cخواهم क्\u200dष", "Dr. 👩\u200d⚕\ufe0f Ada"} {
		if p := c.create(t, "patients", map[string]any{"name": name}); p["name"] != name {
			t.Fatalf("stored %q, want %q", p["name"], name)
		}
	}
	e := c.create(t, "patients", `{"name":"\u738b\ud83d\ude00"}`)
	if e["name"] != "王😀" {
		t.Fatalf("escaped text stored as %q", e["name"])
	}
}

// TestStrictMemberNames: a member name given twice, or not exactly one of
// the resource's snake_case field names, is a 400 naming it, at every depth.
func TestStrictMemberNames(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "names").asDoctor()
	visit := c.create(t, "visits", map[string]any{"patient_id": c.patient, "doctor_id": c.doctor})["id"].(string)
	rx := c.create(t, "prescriptions", map[string]any{"visit_id": visit, "items": []map[string]any{{"drug": "d", "dose": "1"}}})["id"].(string)
	for _, tc := range []struct{ name, method, path, body, field string }{
		{"repeated", "POST", "/api/v1/patients", `{"name":"first","name":"second"}`, "name"},
		{"repeated, escaped", "POST", "/api/v1/patients", `{"name":"first","n\u0061me":"second"}`, "name"},
		{"capitalised", "POST", "/api/v1/patients", `{"Name":"caps"}`, "Name"},
		{"case variant beside", "POST", "/api/v1/patients", `{"name":"a","NAME":"b"}`, "NAME"},
		{"repeated in PATCH", "PATCH", "/api/v1/patients/" + c.patient, `{"phone":"1","phone":"2"}`, "phone"},
		{"repeated in a line", "POST", "/api/v1/invoices", `{"patient_id":"` + c.patient + `","currency":"EUR","lines":[{"description":"a","quantity":1,"quantity":9,"unit_price":1}]}`, "lines[0].quantity"},
		{"case variant in a line", "POST", "/api/v1/invoices", `{"patient_id":"` + c.patient + `","currency":"EUR","lines":[{"description":"a","quantity":1,"Unit_Price":1}]}`, "lines[0].Unit_Price"},
		{"repeated in an item", "PATCH", "/api/v1/prescriptions/" + rx, `{"items":[{"drug":"a","dose":"1"},{"drug":"b","dose":"1","dose":"2"}]}`, "items[1].dose"},
		{"case variant in an item", "POST", "/api/v1/prescriptions", `{"visit_id":"` + visit + `","items":[{"Drug":"a","dose":"1"}]}`, "items[0].Drug"},
		{"repeated array", "PATCH", "/api/v1/prescriptions/" + rx, `{"items":[{"drug":"a","dose":"1"}],"items":[]}`, "items"},
		{"wrong type deep", "POST", "/api/v1/invoices", `{"patient_id":"` + c.patient + `","currency":"EUR","lines":[{"description":"a","quantity":1,"unit_price":"5"}]}`, "lines[0].unit_price"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := counts(t, s)
			expectProblem(t, c.do(t, tc.method, tc.path, tc.body), http.StatusBadRequest, tc.field)
			if !maps(before, counts(t, s)) {
				t.Fatal("a refused request changed rows")
			}
		})
	}
}

// TestIdempotencyKeysScopedToCaller: subject "u:a" with key "b" and
// subject "u" with key "a:b" are two callers' two keys, as are equal keys of
// two subjects or two tenants.
func TestIdempotencyKeysScopedToCaller(t *testing.T) {
	s := apptest.Start(t)
	ua := s.Token("idem-a", models.RoleCoordinator, "u:a")
	u := s.Token("idem-a", models.RoleCoordinator, "u")
	other := s.Token("idem-b", models.RoleCoordinator, "u:a")
	body := `{"name":"Dr Same","room":"1"}`
	first := s.Do(t, "POST", "/api/v1/doctors", ua, body, "Idempotency-Key", "b")
	second := s.Do(t, "POST", "/api/v1/doctors", u, body, "Idempotency-Key", "a:b")
	third := s.Do(t, "POST", "/api/v1/doctors", other, body, "Idempotency-Key", "b")
	var d1, d2, d3 map[string]any
	for _, x := range []struct {
		r *apptest.Response
		m *map[string]any
	}{{first, &d1}, {second, &d2}, {third, &d3}} {
		if x.r.Status != http.StatusCreated {
			t.Fatalf("%d %s", x.r.Status, x.r.Body)
		}
		x.r.JSON(t, x.m)
	}
	if d1["id"] == d2["id"] || d1["id"] == d3["id"] {
		t.Fatalf("another caller's key answered the first caller's response: %v %v %v", d1["id"], d2["id"], d3["id"])
	}
	// Each caller's own repeat still answers its own first response.
	again := s.Do(t, "POST", "/api/v1/doctors", u, body, "Idempotency-Key", "a:b")
	if again.Status != http.StatusCreated || string(again.Body) != string(second.Body) {
		t.Fatalf("repeat: %d %s, want %s", again.Status, again.Body, second.Body)
	}
	var n int64
	if err := s.App.Store.DB().Table("doctors").Where("tenant_id = ?", "idem-a").Count(&n).Error; err != nil || n != 2 {
		t.Fatalf("doctors in idem-a: %d %v, want 2", n, err)
	}
	// Keys are counted in characters: 200 × "王" (600 bytes) is a key.
	long := strings.Repeat("王", 200)
	k1 := s.Do(t, "POST", "/api/v1/doctors", u, `{"name":"Dr Long"}`, "Idempotency-Key", long)
	k2 := s.Do(t, "POST", "/api/v1/doctors", u, `{"name":"Dr Long"}`, "Idempotency-Key", long)
	if k1.Status != http.StatusCreated || string(k1.Body) != string(k2.Body) {
		t.Fatalf("a 200-character key: %d %s / %d %s", k1.Status, k1.Body, k2.Status, k2.Body)
	}
	before := counts(t, s)
	r := s.Do(t, "POST", "/api/v1/doctors", u, `{"name":"Dr Long"}`, "Idempotency-Key", long+"王")
	expectProblem(t, r, http.StatusBadRequest, "Idempotency-Key")
	// Two Idempotency-Key lines: which one is meant is not clear.
	req, _ := http.NewRequestWithContext(context.Background(), "POST", s.URL+"/api/v1/doctors", strings.NewReader(`{"name":"Dr Two"}`))
	req.Header.Set("Authorization", "Bearer "+u)
	req.Header.Add("Idempotency-Key", "one")
	req.Header.Add("Idempotency-Key", "two")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !maps(before, counts(t, s)) {
		t.Fatalf("two keys: %d", res.StatusCode)
	}
}

// TestFieldLimitsCountCharacters: names and short fields are limited in
// characters, free text in bytes (64 KiB), at the exact boundaries.
func TestFieldLimitsCountCharacters(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "limits").asDoctor()
	visit := c.create(t, "visits", map[string]any{"patient_id": c.patient, "doctor_id": c.doctor})["id"].(string)
	// 21,845 × "王" is 65,535 bytes.
	text := func(n int) string { return strings.Repeat("王", 21845) + strings.Repeat("a", n-65535) }
	for _, tc := range []struct {
		name, method, path string
		body               map[string]any
		field              string // "" = accepted
	}{
		{"67 × 王 (201 bytes)", "POST", "/api/v1/patients", map[string]any{"name": strings.Repeat("王", 67)}, ""},
		{"101 × é", "POST", "/api/v1/patients", map[string]any{"name": strings.Repeat("é", 101)}, ""},
		{"200 × 王", "POST", "/api/v1/patients", map[string]any{"name": strings.Repeat("王", 200)}, ""},
		{"200 × 😀", "POST", "/api/v1/doctors", map[string]any{"name": strings.Repeat("😀", 200)}, ""},
		{"201 × 王", "POST", "/api/v1/patients", map[string]any{"name": strings.Repeat("王", 201)}, "name"},
		{"201 × a", "PATCH", "/api/v1/patients/" + c.patient, map[string]any{"name": strings.Repeat("a", 201)}, "name"},
		{"phone 64 × ٠", "PATCH", "/api/v1/patients/" + c.patient, map[string]any{"phone": strings.Repeat("٠", 64)}, ""},
		{"phone 65 × ٠", "PATCH", "/api/v1/patients/" + c.patient, map[string]any{"phone": strings.Repeat("٠", 65)}, "phone"},
		{"room 64 × 王", "POST", "/api/v1/doctors", map[string]any{"name": "Dr R", "room": strings.Repeat("王", 64)}, ""},
		{"room 65 × 王", "POST", "/api/v1/doctors", map[string]any{"name": "Dr R", "room": strings.Repeat("王", 65)}, "room"},
		{"drug 200 × 王", "POST", "/api/v1/prescriptions", map[string]any{"visit_id": visit, "items": []map[string]any{{"drug": strings.Repeat("王", 200), "dose": "1"}}}, ""},
		{"drug 201 × 王", "POST", "/api/v1/prescriptions", map[string]any{"visit_id": visit, "items": []map[string]any{{"drug": strings.Repeat("王", 201), "dose": "1"}}}, "items[0].drug"},
		{"specialty 65,536 bytes", "POST", "/api/v1/doctors", map[string]any{"name": "Dr T", "specialty": text(65536)}, ""},
		{"specialty 65,537 bytes", "POST", "/api/v1/doctors", map[string]any{"name": "Dr T", "specialty": text(65537)}, "specialty"},
		{"notes 65,536 bytes", "PATCH", "/api/v1/visits/" + visit, map[string]any{"notes": text(65536)}, ""},
		{"notes 65,537 bytes", "PATCH", "/api/v1/visits/" + visit, map[string]any{"notes": text(65537)}, "notes"},
		{"line 65,537 bytes", "POST", "/api/v1/invoices", map[string]any{"patient_id": c.patient, "currency": "EUR", "lines": []map[string]any{{"description": text(65537), "quantity": 1, "unit_price": 1}}}, "lines[0].description"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := counts(t, s)
			r := c.do(t, tc.method, tc.path, tc.body)
			if tc.field != "" {
				expectProblem(t, r, http.StatusBadRequest, tc.field)
				if !maps(before, counts(t, s)) {
					t.Fatal("a refused request changed rows")
				}
				return
			}
			if r.Status != http.StatusOK && r.Status != http.StatusCreated {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			var got map[string]any
			r.JSON(t, &got)
			for k, v := range tc.body {
				if sv, ok := v.(string); ok && got[k] != sv {
					t.Fatalf("%s stored as %q", k, got[k])
				}
			}
		})
	}
	// The mrn filter counts characters too.
	if r := c.do(t, "GET", "/api/v1/patients?mrn="+strings.Repeat("%E7%8E%8B", 64), nil); r.Status != http.StatusOK {
		t.Fatalf("mrn filter of 64 characters: %d %s", r.Status, r.Body)
	}
	expectProblem(t, c.do(t, "GET", "/api/v1/patients?mrn="+strings.Repeat("%E7%8E%8B", 65), nil), http.StatusBadRequest, "mrn")
}

// TestCompressedBodyRefused: a request body with a Content-Encoding other
// than identity is 415 with Accept-Encoding: identity (RFC 9110 §15.5.16,
// RFC 7694) and writes nothing, however the header is spelled.
func TestCompressedBodyRefused(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "gzip")
	gz := "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xabV\xcaK\xccMU\xb2RrQ\xd0sT\xaa\x05\x00\x1b\x80\xd1\x8d\x13\x00\x00\x00"
	for _, enc := range []string{"gzip", "GZIP", "br", "identity, gzip", "deflate"} {
		before := counts(t, s)
		r := c.do(t, "POST", "/api/v1/doctors", gz, "Content-Encoding", enc)
		expectProblem(t, r, http.StatusUnsupportedMediaType, "Content-Encoding")
		if r.Header.Get("Accept-Encoding") != "identity" {
			t.Fatalf("%s: Accept-Encoding %q", enc, r.Header.Get("Accept-Encoding"))
		}
		if !maps(before, counts(t, s)) {
			t.Fatalf("%s: a refused request changed rows", enc)
		}
	}
	for _, enc := range []string{"identity", "Identity"} {
		if r := c.do(t, "POST", "/api/v1/doctors", `{"name":"Dr Plain"}`, "Content-Encoding", enc); r.Status != http.StatusCreated {
			t.Fatalf("Content-Encoding %s: %d %s", enc, r.Status, r.Body)
		}
	}
}
