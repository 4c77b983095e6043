package sse_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// startNginx runs nginx on a loopback port in front of upstream with the
// default proxy configuration: proxy_pass and nothing else, so responses
// are buffered (proxy_buffering on) unless they say X-Accel-Buffering: no.
func startNginx(t *testing.T, upstream string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("CI=true but nginx is not installed")
			}
			t.Skip("nginx is not installed")
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	conf := fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
%[2]s
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server {
    listen %[3]s;
    location / { proxy_pass %[4]s; }
  }
}
`, dir, user, addr, upstream)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", path)
	if err := cmd.Start(); err != nil {
		t.Fatalf("nginx: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i > 100 {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not start: %s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "http://" + addr
}

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

// TestThroughDefaultNginx: behind nginx's default proxy configuration the
// first event arrives within 1 s; the stream says X-Accel-Buffering: no so
// that nginx does not hold it in its proxy buffers. (Debian's nginx 1.22
// passes small flushed writes on even without the header; a gzip-enabled
// nginx holds everything back whatever the header says: the browser client
// detects that and long-polls, see e2e/tests/proxy.test.js.)
func TestThroughDefaultNginx(t *testing.T) {
	s := apptest.Start(t)
	tok := s.Token("nginx", models.RoleAdmin, "a")
	proxy := startNginx(t, s.URL)
	d, err := firstData(t, proxy+"/api/v1/stream", tok, func() {
		s.Create(t, tok, "doctors", map[string]any{"name": "Dr. Nginx"})
	})
	if err != nil || d > time.Second {
		t.Fatalf("first event through nginx after %v (%v), want < 1 s", d, err)
	}
	t.Logf("first event through default nginx after %v", d.Round(time.Millisecond))

}
