package sse_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/internal/doctest"
	"github.com/clinicpulse/clinicpulse/models"
)

// firstData returns how long after start the first "data:" line arrived.
func firstData(t *testing.T, url, token string, write func()) (time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	start := time.Now()
	write()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data:") {
			return time.Since(start), nil
		}
	}
	return 0, fmt.Errorf("no data line: %v", sc.Err())
}

// TestThroughDefaultNginx: behind the nginx configuration docs/deploy.md
// recommends (its "single" block, read from the document: proxy_buffering
// left on, nginx's default) the first event arrives within 1 s; the stream
// says X-Accel-Buffering: no so that nginx does not hold it in its proxy
// buffers. (Debian's nginx 1.22 passes small flushed writes on even without
// the header; a gzip-enabled nginx holds everything back whatever the
// header says: the browser client detects that and long-polls, see
// e2e/tests/proxy.test.js and the document's "buffering" block.)
func TestThroughDefaultNginx(t *testing.T) {
	s := apptest.Start(t)
	tok := s.Token("nginx", models.RoleAdmin, "a")
	proxy := doctest.Nginx(t, doctest.DocBlock(t, "deploy.md", "nginx", "single"), s.URL)
	d, err := firstData(t, proxy+"/api/v1/stream", tok, func() {
		s.Create(t, tok, "doctors", map[string]any{"name": "Dr. Nginx"})
	})
	if err != nil || d > time.Second {
		t.Fatalf("first event through nginx after %v (%v), want < 1 s", d, err)
	}
	t.Logf("first event through default nginx after %v", d.Round(time.Millisecond))

}
