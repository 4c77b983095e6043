package polling_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// TestCORS: a front end on another origin can poll: the preflight allows
// the headers polling needs, and the answers (200, 304, 429) expose ETag,
// X-Poll-Interval and Retry-After to the page. Other origins get nothing.
func TestCORS(t *testing.T) {
	const origin = "https://app.example"
	s := apptest.Start(t, func(c *app.Config) { c.CORSOrigins = []string{origin} })
	admin := s.Token("cors", models.RoleAdmin, "u")

	for _, path := range []string{"/api/v1/events?since=0&wait=30", "/api/v1/queue?since=0", "/api/v1/patients/p_1", "/api/v1/stream"} {
		r := s.Do(t, http.MethodOptions, path, "", nil,
			"Origin", origin, "Access-Control-Request-Method", "GET",
			"Access-Control-Request-Headers", "authorization,if-none-match,if-match,idempotency-key,content-type,last-event-id")
		if r.Status != http.StatusNoContent && r.Status != http.StatusOK {
			t.Errorf("preflight %s: %d %s", path, r.Status, r.Body)
		}
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != origin {
			t.Errorf("preflight %s: Allow-Origin %q", path, got)
		}
		for _, h := range []string{"Authorization", "If-None-Match", "If-Match", "Idempotency-Key", "Content-Type", "Last-Event-ID"} {
			if !hasToken(r.Header.Get("Access-Control-Allow-Headers"), h) {
				t.Errorf("preflight %s: Allow-Headers %q lacks %s", path, r.Header.Get("Access-Control-Allow-Headers"), h)
			}
		}
		for _, m := range []string{"GET", "POST", "PATCH", "DELETE"} {
			if !hasToken(r.Header.Get("Access-Control-Allow-Methods"), m) {
				t.Errorf("preflight %s: Allow-Methods %q lacks %s", path, r.Header.Get("Access-Control-Allow-Methods"), m)
			}
		}
	}

	exposed := func(what string, r *apptest.Response, headers ...string) {
		t.Helper()
		if r.Header.Get("Access-Control-Allow-Origin") != origin {
			t.Errorf("%s: Allow-Origin %q", what, r.Header.Get("Access-Control-Allow-Origin"))
		}
		for _, h := range headers {
			if !hasToken(r.Header.Get("Access-Control-Expose-Headers"), h) {
				t.Errorf("%s: Expose-Headers %q lacks %s", what, r.Header.Get("Access-Control-Expose-Headers"), h)
			}
			if r.Header.Get(h) == "" {
				t.Errorf("%s: no %s to expose", what, h)
			}
		}
		if vary := strings.Join(r.Header.Values("Vary"), ","); !hasToken(vary, "Origin") || !hasToken(vary, "Authorization") {
			t.Errorf("%s: Vary %q", what, vary)
		}
	}
	r := s.Do(t, http.MethodGet, "/api/v1/events", admin, nil, "Origin", origin)
	exposed("200", r, "ETag", "X-Poll-Interval")
	r = s.Do(t, http.MethodGet, "/api/v1/events", admin, nil, "Origin", origin, "If-None-Match", r.Header.Get("ETag"))
	if r.Status != http.StatusNotModified {
		t.Fatalf("cross-origin 304: %d", r.Status)
	}
	exposed("304", r, "ETag", "X-Poll-Interval")
	exposed("list", s.Do(t, http.MethodGet, "/api/v1/queue", admin, nil, "Origin", origin), "ETag", "X-Poll-Interval")
	for range 200 {
		if r = s.Do(t, http.MethodGet, "/api/v1/events", admin, nil, "Origin", origin); r.Status == http.StatusTooManyRequests {
			break
		}
	}
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("no 429: %d", r.Status)
	}
	exposed("429", r, "Retry-After")

	// Another origin is not allowed.
	other := s.Do(t, http.MethodOptions, "/api/v1/events", "", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "GET")
	if other.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("another origin allowed: %v", other.Header)
	}
}

// TestCurlClient: curl, a client that is not ours, gets a 200 with an ETag,
// then a 304 with no body for If-None-Match, then a 200 after a write.
// Without curl the test skips, except under CI=true where it fails.
func TestCurlClient(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is required under CI=true")
		}
		t.Skip("curl not installed")
	}
	s := apptest.Start(t)
	admin := s.Token("curl", models.RoleAdmin, "u")
	newPatient(t, s, admin, "Curl")
	h := head(t, s, admin)
	waitHead(t, s, admin, h)
	url := fmt.Sprintf("%s/api/v1/events?since=%d&stream=live", s.URL, h-1)
	curl := func(headers ...string) (int, textproto.MIMEHeader, []byte) {
		t.Helper()
		args := []string{"-s", "-i", "--max-time", "10", "-H", "Authorization: Bearer " + admin}
		for _, h := range headers {
			args = append(args, "-H", h)
		}
		out, err := exec.Command("curl", append(args, url)...).Output()
		if err != nil {
			t.Fatalf("curl: %v", err)
		}
		res, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
		if err != nil {
			t.Fatalf("curl output: %v\n%s", err, out)
		}
		defer res.Body.Close()
		var body bytes.Buffer
		if _, err := body.ReadFrom(res.Body); err != nil && !errors.Is(err, http.ErrBodyReadAfterClose) {
			t.Fatal(err)
		}
		if i := bytes.Index(out, []byte("\r\n\r\n")); i >= 0 && res.StatusCode == http.StatusNotModified && len(out) > i+4 {
			t.Fatalf("304 with bytes after the headers: %q", out[i+4:])
		}
		return res.StatusCode, textproto.MIMEHeader(res.Header), body.Bytes()
	}
	st, hdr, body := curl()
	tag := hdr.Get("ETag")
	if st != http.StatusOK || tag == "" || !strings.Contains(string(body), `"patients.created"`) || hdr.Get("X-Poll-Interval") != "30" {
		t.Fatalf("curl 1: %d %v %s", st, hdr, body)
	}
	st, hdr, body = curl("If-None-Match: " + tag)
	if st != http.StatusNotModified || len(body) != 0 || hdr.Get("ETag") != tag {
		t.Fatalf("curl 2: %d %v %q", st, hdr, body)
	}
	newPatient(t, s, admin, "Curl 2")
	waitHead(t, s, admin, h+1)
	st, hdr, body = curl("If-None-Match: " + tag)
	if st != http.StatusOK || hdr.Get("ETag") == tag || strings.Count(string(body), `"patients.created"`) != 2 {
		t.Fatalf("curl 3: %d %v %s", st, hdr, body)
	}
}
