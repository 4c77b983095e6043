package api_test

import (
	"net/http"
	"testing"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// TestWebhookCreateIdempotencyKey: a repeated Idempotency-Key on a create
// writes nothing and answers 409 naming the header (the first answer held
// the secret, shown once), never a subscription without an id or a secret
// that signs nothing; the same key with another body is 422.
func TestWebhookCreateIdempotencyKey(t *testing.T) {
	s := apptest.Start(t)
	admin := s.Token("idem", models.RoleAdmin, "admin-1")
	const body = `{"url":"https://example.com/hook"}`
	first := s.Do(t, http.MethodPost, "/api/v1/webhooks", admin, body, "Idempotency-Key", "create-1")
	var wh struct{ ID, Secret string }
	first.JSON(t, &wh)
	if first.Status != http.StatusCreated || wh.ID == "" || wh.Secret == "" {
		t.Fatalf("first create: %d %s", first.Status, first.Body)
	}
	again := s.Do(t, http.MethodPost, "/api/v1/webhooks", admin, body, "Idempotency-Key", "create-1")
	var p struct {
		Errors []models.FieldError
	}
	again.JSON(t, &p)
	if again.Status != http.StatusConflict || len(p.Errors) != 1 || p.Errors[0].Field != "Idempotency-Key" {
		t.Errorf("repeat: %d %s", again.Status, again.Body)
	}
	if r := s.Do(t, http.MethodPost, "/api/v1/webhooks", admin, `{"url":"https://example.com/other"}`, "Idempotency-Key", "create-1"); r.Status != http.StatusUnprocessableEntity {
		t.Errorf("same key, another body: %d %s", r.Status, r.Body)
	}
	var list struct{ Items []struct{ ID string } }
	s.Do(t, http.MethodGet, "/api/v1/webhooks", admin, nil).JSON(t, &list)
	if len(list.Items) != 1 || list.Items[0].ID != wh.ID {
		t.Errorf("subscriptions after the repeats: %+v, want only %s", list.Items, wh.ID)
	}
}
