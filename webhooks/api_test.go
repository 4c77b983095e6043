package webhooks_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

type problem struct {
	Status int
	Errors []models.FieldError
}

func fieldOf(t *testing.T, r *apptest.Response) string {
	t.Helper()
	var p problem
	r.JSON(t, &p)
	if len(p.Errors) == 0 {
		return ""
	}
	return p.Errors[0].Field
}

// TestSubscriptionsAPI: strict input naming the field, admins and platform
// only, the secret answered once, If-Match, replay within retention, and
// every change an event of the log without the secret.
func TestSubscriptionsAPI(t *testing.T) {
	s := apptest.Start(t, func(c *app.Config) { c.Webhooks.Policy.AllowHTTPHosts = map[string]bool{"127.0.0.1": true} })
	admin := adminToken(s)
	cases := []struct {
		body   string
		status int
		field  string
	}{
		{`{"url":"https://example.com/hook","extra":1}`, 400, "extra"},
		{`{"url":"http://example.com/hook"}`, 400, "url"},
		{`{"url":"https://10.0.0.1/hook"}`, 400, "url"},
		{`{"url":"https://169.254.169.254/latest"}`, 400, "url"},
		{`{"url":"https://[::1]/x"}`, 400, "url"},
		{`{"url":"https://user:pw@example.com/"}`, 400, "url"},
		{`{"url":"ftp://example.com/"}`, 400, "url"},
		{`{"url":"example.com"}`, 400, "url"},
		{`{"url":""}`, 400, "url"},
		{`{"url":"https://example.com/","topics":["nope"]}`, 400, "topics"},
		{`{"url":"https://example.com/","topics":"queue"}`, 400, "topics"},
		{`{"url":"https://example.com/","enabled":"yes"}`, 400, "enabled"},
		{`{"url":"https://example.com/` + strings.Repeat("a", 2100) + `"}`, 400, "url"},
	}
	for _, c := range cases {
		r := s.Do(t, http.MethodPost, "/api/v1/webhooks", admin, c.body)
		if r.Status != c.status || fieldOf(t, r) != c.field || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s", c.body, r.Status, r.Body)
		}
	}
	for _, role := range []models.Role{models.RoleCoordinator, models.RoleDoctor, models.RoleDisplay} {
		tok := s.Token(tenant, role, "x")
		if r := s.Do(t, http.MethodGet, "/api/v1/webhooks", tok, nil); r.Status != http.StatusForbidden {
			t.Errorf("%s lists webhooks: %d", role, r.Status)
		}
		if r := s.Do(t, http.MethodPost, "/api/v1/webhooks", tok, `{"url":"https://example.com/"}`); r.Status != http.StatusForbidden {
			t.Errorf("%s creates a webhook: %d", role, r.Status)
		}
	}

	r := s.Do(t, http.MethodPost, "/api/v1/webhooks", admin, `{"url":"https://Example.COM/hook?x=1","topics":["queue","webhooks"],"enabled":false}`)
	var v map[string]any
	r.JSON(t, &v)
	if r.Status != 201 || v["url"] != "https://example.com/hook?x=1" || v["enabled"] != false || !strings.HasPrefix(v["secret"].(string), "whsec_") ||
		r.Header.Get("Location") != "/api/v1/webhooks/"+v["id"].(string) {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	id := v["id"].(string)
	topics, _ := json.Marshal(v["topics"])
	if string(topics) != `["queue","board","webhooks"]` {
		t.Errorf("topics %s", topics)
	}
	for _, path := range []string{"/api/v1/webhooks", "/api/v1/webhooks/" + id} {
		g := s.Do(t, http.MethodGet, path, admin, nil)
		if g.Status != 200 || bytes.Contains(g.Body, []byte("whsec_")) || bytes.Contains(g.Body, []byte(`"secret"`)) || !bytes.Contains(g.Body, []byte(id)) {
			t.Errorf("GET %s: %d %s", path, g.Status, g.Body)
		}
	}
	// Another tenant's admin sees nothing; a platform operator naming the tenant does.
	if g := s.Do(t, http.MethodGet, "/api/v1/webhooks/"+id, s.Token("other", models.RoleAdmin, "a"), nil); g.Status != 404 {
		t.Errorf("another tenant: %d", g.Status)
	}
	plat := s.Token("ops", models.RolePlatform, "p")
	if g := s.Do(t, http.MethodGet, "/api/v1/webhooks/"+id+"?tenant_id="+tenant, plat, nil); g.Status != 200 {
		t.Errorf("platform: %d %s", g.Status, g.Body)
	}
	if g := s.Do(t, http.MethodGet, "/api/v1/webhooks/"+id+"?bogus=1", admin, nil); g.Status != 400 || fieldOf(t, g) != "bogus" {
		t.Errorf("unknown parameter: %d %s", g.Status, g.Body)
	}

	// PATCH: strict, If-Match.
	if p := s.Do(t, http.MethodPatch, "/api/v1/webhooks/"+id, admin, `{"secret":"x"}`); p.Status != 400 || fieldOf(t, p) != "secret" {
		t.Errorf("patch secret: %d %s", p.Status, p.Body)
	}
	if p := s.Do(t, http.MethodPatch, "/api/v1/webhooks/"+id, admin, `{"enabled":true}`, "If-Match", `"7"`); p.Status != 412 {
		t.Errorf("stale If-Match: %d", p.Status)
	}
	if p := s.Do(t, http.MethodPatch, "/api/v1/webhooks/"+id, admin, `{"enabled":true,"topics":[]}`, "If-Match", `"1"`); p.Status != 200 ||
		!bytes.Contains(p.Body, []byte(`"topics":[]`)) || !bytes.Contains(p.Body, []byte(`"version":2`)) {
		t.Errorf("patch: %d %s", p.Status, p.Body)
	}

	// Replay: within the log, else 410.
	s.Create(t, admin, "doctors", map[string]any{"name": "Dr. R"})
	if p := s.Do(t, http.MethodPost, "/api/v1/webhooks/"+id+"/replay?since=1", admin, nil); p.Status != 200 || !bytes.Contains(p.Body, []byte(`"cursor":1`)) {
		t.Errorf("replay: %d %s", p.Status, p.Body)
	}
	if p := s.Do(t, http.MethodPost, "/api/v1/webhooks/"+id+"/replay?since=999", admin, nil); p.Status != 410 {
		t.Errorf("replay ahead of the log: %d %s", p.Status, p.Body)
	}
	if p := s.Do(t, http.MethodPost, "/api/v1/webhooks/"+id+"/replay?since=x", admin, nil); p.Status != 400 || fieldOf(t, p) != "since" {
		t.Errorf("replay since=x: %d %s", p.Status, p.Body)
	}
	if p := s.Do(t, http.MethodGet, "/api/v1/webhooks/"+id+"/deliveries?limit=0", admin, nil); p.Status != 400 || fieldOf(t, p) != "limit" {
		t.Errorf("deliveries limit=0: %d %s", p.Status, p.Body)
	}

	if d := s.Do(t, http.MethodDelete, "/api/v1/webhooks/"+id, admin, nil); d.Status != 204 {
		t.Errorf("delete: %d %s", d.Status, d.Body)
	}
	if g := s.Do(t, http.MethodGet, "/api/v1/webhooks/"+id, admin, nil); g.Status != 404 {
		t.Errorf("after delete: %d", g.Status)
	}
	var page struct{ Events []models.Event }
	s.Do(t, http.MethodGet, "/api/v1/events?since=0&topics=webhooks", admin, nil).JSON(t, &page)
	var types []string
	for _, e := range page.Events {
		types = append(types, e.Type)
		if bytes.Contains(e.Data, []byte("whsec_")) || e.ID != id || e.Actor != "admin-1" {
			t.Errorf("event %+v", e)
		}
	}
	if strings.Join(types, " ") != "webhooks.created webhooks.updated webhooks.deleted" {
		t.Errorf("webhook events: %v", types)
	}
	// A patient's poll never shows them.
	var pp struct{ Events []models.Event }
	s.Do(t, http.MethodGet, "/api/v1/events?since=0", s.Token(tenant, models.RolePatient, "pat_00000000000000000000"), nil).JSON(t, &pp)
	for _, e := range pp.Events {
		if e.Entity == models.EntityWebhook {
			t.Errorf("a patient sees %s", e.Type)
		}
	}
}
