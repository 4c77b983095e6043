package api_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/golang-jwt/jwt/v5"
)

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTokens(t *testing.T) {
	s := apptest.Start(t, func(c *app.Config) { c.JWTIssuer, c.JWTAudience = "https://idp.example", "clinicpulse" })
	secret := []byte(apptest.Secret)
	now := time.Now()
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "u1", "tenant_id": "tok", "role": "admin", "exp": now.Add(time.Hour).Unix(),
			"iss": "https://idp.example", "aud": "clinicpulse"}
	}
	with := func(k string, v any) jwt.MapClaims {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	payload, _ := json.Marshal(good())
	none := header + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
	hs512 := sign(t, jwt.SigningMethodHS512, secret, good())

	for name, tok := range map[string]string{
		"alg none":      none,
		"HS512":         hs512,
		"wrong secret":  sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), good()),
		"expired":       sign(t, jwt.SigningMethodHS256, secret, with("exp", now.Add(-time.Hour).Unix())),
		"nbf future":    sign(t, jwt.SigningMethodHS256, secret, with("nbf", now.Add(time.Hour).Unix())),
		"no exp":        sign(t, jwt.SigningMethodHS256, secret, with("exp", nil)),
		"wrong iss":     sign(t, jwt.SigningMethodHS256, secret, with("iss", "https://evil.example")),
		"wrong aud":     sign(t, jwt.SigningMethodHS256, secret, with("aud", "other")),
		"no tenant":     sign(t, jwt.SigningMethodHS256, secret, with("tenant_id", nil)),
		"no role":       sign(t, jwt.SigningMethodHS256, secret, with("role", nil)),
		"unknown role":  sign(t, jwt.SigningMethodHS256, secret, with("role", "root")),
		"bad tenant":    sign(t, jwt.SigningMethodHS256, secret, with("tenant_id", "a b/../c")),
		"garbage":       "not.a.token",
		"empty":         "",
		"signature cut": sign(t, jwt.SigningMethodHS256, secret, good())[:60],
	} {
		r := s.Do(t, http.MethodGet, "/api/v1/patients", tok, nil)
		if r.Status != http.StatusUnauthorized {
			t.Errorf("%s: %d %s, want 401", name, r.Status, r.Body)
			continue
		}
		expectProblem(t, r, http.StatusUnauthorized, "")
		if strings.Contains(string(r.Body), tok) && tok != "" {
			t.Errorf("%s: the problem echoes the token", name)
		}
	}
	if r := s.Do(t, http.MethodGet, "/api/v1/patients", sign(t, jwt.SigningMethodHS256, secret, good()), nil); r.Status != 200 {
		t.Fatalf("good token: %d %s", r.Status, r.Body)
	}
}

// TestTenantIsolation: tenant B's token gets 404 on every id of tenant A,
// by every method, and never sees A's records in lists or the board.
func TestTenantIsolation(t *testing.T) {
	s := apptest.Start(t)
	a := newClinic(t, s, "tenant-a").asDoctor()
	b := newClinic(t, s, "tenant-b").asDoctor()
	start := time.Now().UTC().Add(time.Hour)
	ids := map[string]string{
		"patients": a.patient,
		"doctors":  a.doctor,
		"appointments": a.create(t, "appointments", map[string]any{"patient_id": a.patient, "doctor_id": a.doctor,
			"starts_at": start, "ends_at": start.Add(time.Hour)})["id"].(string),
	}
	q := a.create(t, "queue", map[string]any{"patient_id": a.patient, "doctor_id": a.doctor})
	ids["queue"] = q["id"].(string)
	v := a.create(t, "visits", map[string]any{"queue_entry_id": q["id"]})
	ids["visits"] = v["id"].(string)
	ids["prescriptions"] = a.create(t, "prescriptions", map[string]any{"visit_id": v["id"], "items": []map[string]any{{"drug": "d", "dose": "1"}}})["id"].(string)
	ids["invoices"] = a.create(t, "invoices", map[string]any{"visit_id": v["id"], "currency": "USD", "lines": []map[string]any{{"description": "x", "quantity": 1, "unit_price": 1}}})["id"].(string)

	before := counts(t, s)
	for res, id := range ids {
		for _, m := range []string{http.MethodGet, http.MethodPatch, http.MethodDelete} {
			r := b.do(t, m, "/api/v1/"+res+"/"+id, map[string]any{})
			if m == http.MethodDelete && (res == "queue" || res == "visits") {
				if r.Status != http.StatusMethodNotAllowed {
					t.Errorf("B %s %s: %d", m, res, r.Status)
				}
				continue
			}
			if r.Status != http.StatusNotFound {
				t.Errorf("B %s %s/%s: %d %s, want 404", m, res, id, r.Status, r.Body)
			}
		}
		r := b.do(t, http.MethodGet, "/api/v1/"+res+"?limit=1000", nil)
		if strings.Contains(string(r.Body), id) {
			t.Errorf("B's %s list shows A's %s", res, id)
		}
	}
	// References into another tenant are not found either.
	for res, body := range map[string]map[string]any{
		"queue":         {"patient_id": a.patient, "doctor_id": b.doctor},
		"appointments":  {"patient_id": b.patient, "doctor_id": a.doctor, "starts_at": start, "ends_at": start.Add(time.Hour)},
		"visits":        {"queue_entry_id": ids["queue"]},
		"prescriptions": {"visit_id": ids["visits"], "items": []map[string]any{{"drug": "d", "dose": "1"}}},
		"invoices":      {"visit_id": ids["visits"], "currency": "USD", "lines": []map[string]any{{"description": "x", "quantity": 1, "unit_price": 1}}},
	} {
		if r := b.do(t, http.MethodPost, "/api/v1/"+res, body); r.Status != http.StatusNotFound {
			t.Errorf("B POST %s referencing A: %d %s, want 404", res, r.Status, r.Body)
		}
	}
	if !maps(before, counts(t, s)) {
		t.Fatal("cross-tenant requests changed rows")
	}
	r := b.do(t, http.MethodGet, "/api/v1/queue/board", nil)
	if strings.Contains(string(r.Body), a.doctor) {
		t.Fatal("B's board shows A's doctor")
	}
	// A platform operator names the tenant.
	op := s.Token("", models.RolePlatform, "ops-1")
	if r := s.Do(t, http.MethodGet, "/api/v1/patients/"+a.patient+"?tenant_id=tenant-a", op, nil); r.Status != 200 {
		t.Fatalf("platform with tenant_id: %d", r.Status)
	}
	if r := s.Do(t, http.MethodGet, "/api/v1/patients/"+a.patient, op, nil, "X-Tenant-ID", "tenant-b"); r.Status != 404 {
		t.Fatalf("platform in tenant-b: %d", r.Status)
	}
	if r := s.Do(t, http.MethodGet, "/api/v1/patients", op, nil); r.Status != 400 {
		t.Fatalf("platform without tenant: %d", r.Status)
	}
}

func TestPatientAndDisplayScope(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "scope")
	q1 := c.create(t, "queue", map[string]any{"patient_id": c.patient, "doctor_id": c.doctor})
	q2 := c.create(t, "queue", map[string]any{"patient_id": c.patient2, "doctor_id": c.doctor})
	me := s.Token("scope", models.RolePatient, c.patient)
	if r := s.Do(t, http.MethodGet, "/api/v1/queue/"+q1["id"].(string), me, nil); r.Status != 200 {
		t.Fatalf("own entry: %d", r.Status)
	}
	for _, path := range []string{"/api/v1/queue/" + q2["id"].(string), "/api/v1/patients/" + c.patient2} {
		if r := s.Do(t, http.MethodGet, path, me, nil); r.Status != 404 {
			t.Fatalf("patient reads %s: %d", path, r.Status)
		}
	}
	for _, res := range []string{"queue", "patients", "appointments", "visits", "invoices", "prescriptions"} {
		r := s.Do(t, http.MethodGet, "/api/v1/"+res, me, nil)
		if r.Status != 200 || strings.Contains(string(r.Body), c.patient2) || strings.Contains(string(r.Body), "Ben") {
			t.Fatalf("patient list %s: %d %s", res, r.Status, r.Body)
		}
	}
	if r := s.Do(t, http.MethodPost, "/api/v1/queue", me, map[string]any{"patient_id": c.patient, "doctor_id": c.doctor}); r.Status != 403 {
		t.Fatalf("patient write: %d", r.Status)
	}
	display := s.Token("scope", models.RoleDisplay, "screen")
	for _, res := range []string{"queue", "patients", "doctors", "appointments"} {
		if r := s.Do(t, http.MethodGet, "/api/v1/"+res, display, nil); r.Status != 403 {
			t.Fatalf("display reads %s: %d", res, r.Status)
		}
	}
	r := s.Do(t, http.MethodGet, "/api/v1/queue/board", display, nil)
	if r.Status != 200 || strings.Contains(string(r.Body), "Ana") || strings.Contains(string(r.Body), c.patient) {
		t.Fatalf("display board: %d %s", r.Status, r.Body)
	}
}

func TestIdempotencyAndIfMatch(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "idem")
	body := map[string]any{"patient_id": c.patient, "doctor_id": c.doctor}
	r1 := c.do(t, http.MethodPost, "/api/v1/queue", body, "Idempotency-Key", "k-1")
	before := counts(t, s)
	r2 := c.do(t, http.MethodPost, "/api/v1/queue", body, "Idempotency-Key", "k-1")
	if r1.Status != 201 || r2.Status != 201 || string(r1.Body) != string(r2.Body) {
		t.Fatalf("replay: %d %s / %d %s", r1.Status, r1.Body, r2.Status, r2.Body)
	}
	if !maps(before, counts(t, s)) {
		t.Fatal("replay wrote rows")
	}
	r3 := c.do(t, http.MethodPost, "/api/v1/queue", map[string]any{"patient_id": c.patient2, "doctor_id": c.doctor}, "Idempotency-Key", "k-1")
	expectProblem(t, r3, http.StatusUnprocessableEntity, "")
	if !maps(before, counts(t, s)) {
		t.Fatal("422 wrote rows")
	}

	id := c.patient
	if r := c.do(t, http.MethodPatch, "/api/v1/patients/"+id, map[string]any{"phone": "1"}, "If-Match", `"1"`); r.Status != 200 {
		t.Fatalf("If-Match current: %d %s", r.Status, r.Body)
	}
	r := c.do(t, http.MethodPatch, "/api/v1/patients/"+id, map[string]any{"phone": "2"}, "If-Match", `"1"`)
	expectProblem(t, r, http.StatusPreconditionFailed, "")
	if r := c.do(t, http.MethodDelete, "/api/v1/patients/"+id, nil, "If-Match", `"1"`); r.Status != 412 {
		t.Fatalf("stale delete: %d", r.Status)
	}
	if got := c.get(t, "patients", id); got["phone"] != "1" || got["version"] != 2.0 {
		t.Fatalf("after 412: %v", got)
	}
	if r := c.do(t, http.MethodPatch, "/api/v1/patients/"+id, map[string]any{"phone": "3"}, "If-Match", `nope`); r.Status != 400 {
		t.Fatalf("malformed If-Match: %d", r.Status)
	}

	// PATCH and DELETE honour the key too: a replay (say, after a lost
	// response) answers the first result and changes nothing, even with
	// the If-Match that is stale by now.
	q := c.create(t, "queue", map[string]any{"patient_id": c.patient2, "doctor_id": c.doctor})["id"].(string)
	p1 := c.do(t, http.MethodPatch, "/api/v1/queue/"+q, map[string]any{"status": "called"}, "Idempotency-Key", "call-1", "If-Match", `"1"`)
	before = counts(t, s)
	p2 := c.do(t, http.MethodPatch, "/api/v1/queue/"+q, map[string]any{"status": "called"}, "Idempotency-Key", "call-1", "If-Match", `"1"`)
	if p1.Status != 200 || p2.Status != 200 || string(p1.Body) != string(p2.Body) || !maps(before, counts(t, s)) {
		t.Fatalf("PATCH replay: %d %s / %d %s", p1.Status, p1.Body, p2.Status, p2.Body)
	}
	if r := c.do(t, http.MethodPatch, "/api/v1/queue/"+q, map[string]any{"status": "no_show"}, "Idempotency-Key", "call-1"); r.Status != 422 {
		t.Fatalf("PATCH with a reused key and another body: %d", r.Status)
	}
	gone := c.create(t, "patients", map[string]any{"name": "To archive"})["id"].(string)
	d1 := c.do(t, http.MethodDelete, "/api/v1/patients/"+gone, nil, "Idempotency-Key", "del-1")
	before = counts(t, s)
	d2 := c.do(t, http.MethodDelete, "/api/v1/patients/"+gone, nil, "Idempotency-Key", "del-1")
	if d1.Status != 204 || d2.Status != 204 || !maps(before, counts(t, s)) {
		t.Fatalf("DELETE replay: %d / %d", d1.Status, d2.Status)
	}
}

func TestBadInput(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "bad").asDoctor()
	q := c.create(t, "queue", map[string]any{"patient_id": c.patient, "doctor_id": c.doctor})["id"].(string)
	huge := `{"name":"` + strings.Repeat("a", 1<<20) + `"}`
	for _, tc := range []struct {
		name, method, path string
		body               string
		status             int
		field              string
	}{
		{"malformed", "POST", "/api/v1/patients", `{"name":`, 400, ""},
		{"not an object", "POST", "/api/v1/patients", `[1,2]`, 400, ""},
		{"empty", "POST", "/api/v1/patients", ``, 400, ""},
		{"two objects", "POST", "/api/v1/patients", `{"name":"a"}{"name":"b"}`, 400, ""},
		{"unknown field", "POST", "/api/v1/patients", `{"name":"a","admin":true}`, 400, "admin"},
		{"wrong type", "POST", "/api/v1/patients", `{"name":5}`, 400, "name"},
		{"missing name", "POST", "/api/v1/patients", `{"phone":"1"}`, 400, "name"},
		{"bad date", "POST", "/api/v1/patients", `{"name":"a","date_of_birth":"31/12/1990"}`, 400, "date_of_birth"},
		{"name too long", "POST", "/api/v1/patients", `{"name":"` + strings.Repeat("é", 201) + `"}`, 400, "name"},
		{"NUL in name", "POST", "/api/v1/patients", `{"name":"a\u0000b"}`, 400, "name"},
		{"oversized", "POST", "/api/v1/patients", huge, 413, ""},
		{"injection-looking", "POST", "/api/v1/queue", `{"patient_id":"pat_x' OR '1'='1","doctor_id":"` + c.doctor + `"}`, 400, "patient_id"},
		{"bad priority", "POST", "/api/v1/queue", `{"patient_id":"` + c.patient + `","doctor_id":"` + c.doctor + `","priority":"vip"}`, 400, "priority"},
		{"bad time", "POST", "/api/v1/appointments", `{"patient_id":"` + c.patient + `","doctor_id":"` + c.doctor + `","starts_at":"tomorrow","ends_at":"2026-01-01T10:00:00Z"}`, 400, ""},
		{"ends before start", "POST", "/api/v1/appointments", `{"patient_id":"` + c.patient + `","doctor_id":"` + c.doctor + `","starts_at":"2026-01-01T10:00:00Z","ends_at":"2026-01-01T09:00:00Z"}`, 400, "ends_at"},
		{"negative quantity", "POST", "/api/v1/invoices", `{"patient_id":"` + c.patient + `","currency":"USD","lines":[{"description":"x","quantity":-1,"unit_price":5}]}`, 400, "lines[0].quantity"},
		{"overflowing price", "POST", "/api/v1/invoices", `{"patient_id":"` + c.patient + `","currency":"USD","lines":[{"description":"x","quantity":1000000,"unit_price":9007199254740992}]}`, 400, ""},
		{"bad currency", "POST", "/api/v1/invoices", `{"patient_id":"` + c.patient + `","currency":"dollars"}`, 400, "currency"},
		{"empty items", "POST", "/api/v1/prescriptions", `{"visit_id":"vis_00000000000000000000","items":[]}`, 400, "items"},
		{"patch unknown field", "PATCH", "/api/v1/queue/" + q, `{"token":9}`, 400, "token"},
		{"patch bad status type", "PATCH", "/api/v1/queue/" + q, `{"status":1}`, 400, "status"},
		{"invalid id", "GET", "/api/v1/queue/../../etc", ``, 404, ""},
		{"id of other entity", "GET", "/api/v1/queue/" + c.patient, ``, 404, ""},
		{"limit zero", "GET", "/api/v1/queue?limit=0", ``, 400, "limit"},
		{"limit huge", "GET", "/api/v1/queue?limit=1001", ``, 400, "limit"},
		{"limit text", "GET", "/api/v1/queue?limit=ten", ``, 400, "limit"},
		{"since negative", "GET", "/api/v1/queue?since=-1", ``, 400, "since"},
		{"bad filter", "GET", "/api/v1/queue?status=sleeping", ``, 400, "status"},
		{"bad after", "GET", "/api/v1/queue?after=zzz", ``, 400, "after"},
		{"unknown route", "GET", "/api/v1/nothing", ``, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := counts(t, s)
			var body any
			if tc.body != "" {
				body = tc.body
			}
			r := c.do(t, tc.method, tc.path, body)
			expectProblem(t, r, tc.status, tc.field)
			if !maps(before, counts(t, s)) {
				t.Fatal("a rejected request changed rows")
			}
		})
	}
}
