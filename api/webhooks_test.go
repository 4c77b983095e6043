package api_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// TestWebhookWritesAreIdempotent: a create, rotate, patch or delete of a
// subscription repeated with its Idempotency-Key (a client retrying after
// a lost answer) is applied once, and the repeat answers the subscription
// the first request made with the secret that signs it — never an unsaved
// record or a secret nobody stored. An empty key is 400 as on every write.
func TestWebhookWritesAreIdempotent(t *testing.T) {
	s := apptest.Start(t)
	admin := s.Token("hooks", models.RoleAdmin, "admin-1")
	type view struct {
		ID      string `json:"id"`
		Version int64  `json:"version"`
		Secret  string `json:"secret"`
	}
	create := func() (view, *apptest.Response) {
		r := s.Do(t, http.MethodPost, "/api/v1/webhooks", admin, `{"url":"https://idem.example.net/hook"}`, "Idempotency-Key", "create-1")
		var v view
		r.JSON(t, &v)
		return v, r
	}
	first, r1 := create()
	again, r2 := create()
	if r1.Status != 201 || r2.Status != 201 || first.ID == "" || again.ID != first.ID || again.Secret != first.Secret || again.Version != first.Version ||
		r2.Header.Get("Location") != "/api/v1/webhooks/"+first.ID {
		t.Fatalf("create twice: %d %s / %d %s", r1.Status, r1.Body, r2.Status, r2.Body)
	}
	if r := s.Do(t, http.MethodPost, "/api/v1/webhooks", admin, `{"url":"https://idem.example.net/other"}`, "Idempotency-Key", "create-1"); r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("the same key with another body: %d %s", r.Status, r.Body)
	}
	var list struct{ Items []view }
	s.Do(t, http.MethodGet, "/api/v1/webhooks", admin, nil).JSON(t, &list)
	if len(list.Items) != 1 {
		t.Fatalf("%d subscriptions after a repeated create, want 1", len(list.Items))
	}

	rotate := func() view {
		r := s.Do(t, http.MethodPost, "/api/v1/webhooks/"+first.ID+"/rotate", admin, nil, "Idempotency-Key", "rotate-1")
		var v view
		r.JSON(t, &v)
		if r.Status != 200 {
			t.Fatalf("rotate: %d %s", r.Status, r.Body)
		}
		return v
	}
	rot, rot2 := rotate(), rotate()
	if rot.Secret == first.Secret || rot2.Secret != rot.Secret || rot2.Version != rot.Version || rot.Version != first.Version+1 {
		t.Fatalf("rotate twice with one key: %+v then %+v (created %+v)", rot, rot2, first)
	}
	if r := s.Do(t, http.MethodPost, "/api/v1/webhooks/"+first.ID+"/rotate", admin, nil, "Idempotency-Key", ""); r.Status != 400 {
		t.Fatalf("rotate with an empty key: %d %s", r.Status, r.Body)
	}

	for range 2 {
		r := s.Do(t, http.MethodPatch, "/api/v1/webhooks/"+first.ID, admin, `{"enabled":false}`, "Idempotency-Key", "patch-1")
		var v view
		r.JSON(t, &v)
		if r.Status != 200 || v.Version != rot.Version+1 || v.Secret != "" {
			t.Fatalf("patch: %d %s", r.Status, r.Body)
		}
	}
	for range 2 {
		if r := s.Do(t, http.MethodDelete, "/api/v1/webhooks/"+first.ID, admin, nil, "Idempotency-Key", "delete-1"); r.Status != 204 {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
	}
}

// TestWebhookReplayCursor: replay takes a cursor as every other endpoint
// does — a tagged one from another history of the log is 410, a repeated
// since is 400 saying so.
func TestWebhookReplayCursor(t *testing.T) {
	s := apptest.Start(t)
	admin := s.Token("replay", models.RoleAdmin, "admin-1")
	var wh struct{ ID string }
	s.Do(t, http.MethodPost, "/api/v1/webhooks", admin, `{"url":"https://replay.example.net/hook"}`).JSON(t, &wh)
	s.Do(t, http.MethodPost, "/api/v1/doctors", admin, `{"name":"Dr. One"}`)
	var page models.EventPage
	s.Do(t, http.MethodGet, "/api/v1/events?since=0", admin, nil).JSON(t, &page)
	if page.Position == "" || page.Cursor < 2 {
		t.Fatalf("page %+v", page)
	}
	if r := s.Do(t, http.MethodPost, "/api/v1/webhooks/"+wh.ID+"/replay?since="+page.Position, admin, nil); r.Status != 200 {
		t.Fatalf("replay from this history's position: %d %s", r.Status, r.Body)
	}
	wrong := models.Position{Seq: page.Cursor, Tag: "aaaaaaaa"}.String()
	if r := s.Do(t, http.MethodPost, "/api/v1/webhooks/"+wh.ID+"/replay?since="+wrong, admin, nil); r.Status != 410 {
		t.Fatalf("replay from another history: %d %s", r.Status, r.Body)
	}
	r := s.Do(t, http.MethodPost, "/api/v1/webhooks/"+wh.ID+"/replay?since=1&since=2", admin, nil)
	expectProblem(t, r, 400, "since")
	if r := s.Do(t, http.MethodPost, "/api/v1/webhooks/"+wh.ID+"/replay?since=1", s.Token("replay", models.RoleCoordinator, "c"), nil); r.Status != 403 {
		t.Fatalf("a coordinator replays: %d", r.Status)
	}
}

// TestWebhookEventsHideTheURLQuery: every staff member reads the log, but
// only admins the subscriptions: a subscription's events carry its URL
// without the query, where receivers put credentials.
func TestWebhookEventsHideTheURLQuery(t *testing.T) {
	s := apptest.Start(t)
	admin := s.Token("hookq", models.RoleAdmin, "admin-1")
	var wh struct{ ID, URL string }
	r := s.Do(t, http.MethodPost, "/api/v1/webhooks", admin, `{"url":"https://q.example.net/hook?token=CAPSECRET123"}`)
	r.JSON(t, &wh)
	if r.Status != 201 || wh.URL != "https://q.example.net/hook?token=CAPSECRET123" {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	s.Do(t, http.MethodPatch, "/api/v1/webhooks/"+wh.ID, admin, `{"enabled":false}`)
	coordinator := s.Token("hookq", models.RoleCoordinator, "c-1")
	var page models.EventPage
	ev := s.Do(t, http.MethodGet, "/api/v1/events?since=0&topics=webhooks", coordinator, nil)
	ev.JSON(t, &page)
	if len(page.Events) != 2 || bytes.Contains(ev.Body, []byte("CAPSECRET")) || !bytes.Contains(ev.Body, []byte(`"url":"https://q.example.net/hook?…"`)) {
		t.Fatalf("webhook events as staff read them: %s", ev.Body)
	}
}
