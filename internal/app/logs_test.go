package app_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogsHoldNoSecrets: the request log has one line per request with a
// request id, and never a token, a stream ticket, a patient's data or a
// record id — whatever the request carried, in its path, query or body.
func TestLogsHoldNoSecrets(t *testing.T) {
	var buf syncBuffer
	s := apptest.Start(t, func(c *app.Config) { c.Logger = slog.New(slog.NewJSONHandler(&buf, nil)) })
	tok := s.Token("logs", models.RoleAdmin, "admin-7")
	pat := s.Create(t, tok, "patients", map[string]any{"name": "Zelda Quintessa", "phone": "+1 555 0199 ext. Quokka", "mrn": "MRN-SECRET-42"})
	id := pat["id"].(string)
	s.Do(t, http.MethodGet, "/api/v1/patients/"+id+"?mrn=MRN-SECRET-42", tok, nil)
	s.Do(t, http.MethodPatch, "/api/v1/patients/"+id, tok, `{"name": 5}`) // a 400
	s.Do(t, http.MethodGet, "/api/v1/patients", "not-a-token", nil)       // a 401
	r := s.Do(t, http.MethodPost, "/api/v1/stream/tickets", tok, nil)
	var tk struct{ Ticket string }
	r.JSON(t, &tk)
	if tk.Ticket == "" {
		t.Fatalf("no ticket: %s", r.Body)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/v1/stream?ticket="+tk.Ticket, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	// A stream's line is written when its handler returns, which may be
	// just after the client saw the headers.
	for deadline := time.Now().Add(5 * time.Second); strings.Count(buf.String(), `"msg":"request"`) < 6 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	s.Stop()

	logs := buf.String()
	for _, secret := range []string{tok, tk.Ticket, "Zelda", "Quintessa", "Quokka", "MRN-SECRET-42", id, "admin-7", "not-a-token"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
	lines := strings.Count(logs, `"msg":"request"`)
	if lines != 6 || !strings.Contains(logs, `"route":"/api/v1/patients/:id"`) || !strings.Contains(logs, `"status":401`) {
		t.Fatalf("expected one line per request with route and status; got %d:\n%s", lines, logs)
	}
	if strings.Count(logs, `"id":"`) < lines {
		t.Fatalf("request lines without a request id:\n%s", logs)
	}
}
