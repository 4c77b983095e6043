package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/internal/testdb"
	"github.com/clinicpulse/clinicpulse/models"
)

// TestSecurityHeaders: the dashboards carry their Content-Security-Policy
// with frame-ancestors from EmbedOrigins ('self' by default), nosniff and
// no-referrer (issue 10 item 8). The browser test (e2e/tests/shared-desk)
// checks that the pages run under it without a violation.
func TestSecurityHeaders(t *testing.T) {
	for _, c := range []struct {
		embed []string
		want  string
	}{
		{nil, "frame-ancestors 'self'"},
		{[]string{"'self'", "https://portal.example", "https://*.intranet.example:8443"}, "frame-ancestors 'self' https://portal.example https://*.intranet.example:8443"},
	} {
		s := apptest.Start(t, func(cfg *app.Config) { cfg.EmbedOrigins = c.embed })
		tok := s.Token("csp", models.RoleAdmin, "a")
		for _, path := range []string{"/static/frontdesk.html", "/static/index.html", "/static/clinicpulse.js", "/", "/static/missing.html"} {
			r := s.Do(t, http.MethodGet, path, "", nil)
			csp := r.Header.Get("Content-Security-Policy")
			if !strings.HasSuffix(csp, "; "+c.want) || !strings.Contains(csp, "script-src 'self';") ||
				!strings.Contains(csp, "object-src 'none'") || !strings.Contains(csp, "base-uri 'none'") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("%s: CSP %q", path, csp)
			}
		}
		for _, path := range []string{"/static/doctor.html", "/static/style.css", "/"} {
			r := s.Do(t, http.MethodGet, path, tok, nil)
			if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("%s: X-Content-Type-Options %q, Referrer-Policy %q", path, r.Header.Get("X-Content-Type-Options"), r.Header.Get("Referrer-Policy"))
			}
		}
	}
	// An embed origin that is not one is refused at start, not sent.
	url, _ := testdb.URL(t)
	for _, bad := range []string{"https://a.example; script-src *", "https://a.example/path", "*"} {
		if a, err := app.New(context.Background(), app.Config{DatabaseURL: url, JWTSecret: []byte(apptest.Secret), EmbedOrigins: []string{bad}}); err == nil {
			a.Store.Close()
			t.Errorf("EmbedOrigins %q accepted", bad)
		}
	}
}
