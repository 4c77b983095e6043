package app_test

import (
	"bufio"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// seriesOf counts the samples of the clinicpulse_http_* families.
func seriesOf(t *testing.T, s *apptest.Server) (int, string) {
	t.Helper()
	r := s.Do(t, http.MethodGet, "/metrics", "", nil)
	if r.Status != 200 {
		t.Fatalf("/metrics: %d", r.Status)
	}
	n := 0
	for _, line := range strings.Split(string(r.Body), "\n") {
		if strings.HasPrefix(line, "clinicpulse_http_") {
			n++
		}
	}
	return n, string(r.Body)
}

// rawRequest writes one request line by hand (Go's client would send the
// method as is too; this also works for methods of any size) and reads the
// status line of the answer.
func rawRequest(t *testing.T, s *apptest.Server, method, path string, headers ...string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := method + " " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	for i := 0; i+1 < len(headers); i += 2 {
		req += headers[i] + ": " + headers[i+1] + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("%.20s… %s: %v", method, path, err)
	}
	return status
}

// TestHostileMethodsAndPathsMakeNoSeries: 2,000 requests with random
// methods and random paths, and methods of 500 kB, add no series to
// /metrics (methods outside the routed set count as "other", paths as their
// route pattern or "unmatched") and no log line over a few hundred bytes
// (issue 10 item 1).
func TestHostileMethodsAndPathsMakeNoSeries(t *testing.T) {
	var buf syncBuffer
	s := apptest.Start(t, func(c *app.Config) { c.Logger = slog.New(slog.NewJSONHandler(&buf, nil)) })
	// Each kind of request once first, and a scrape: their series exist
	// from then on.
	rng := rand.New(rand.NewPCG(1, 2))
	hostile := func(i int) {
		method := fmt.Sprintf("M%d", rng.IntN(1<<30))
		path := "/healthz"
		switch i % 4 {
		case 1:
			path = fmt.Sprintf("/nothing/%d", rng.IntN(1<<30))
		case 2:
			path = fmt.Sprintf("/api/v1/patients/pat_%d", rng.IntN(1<<30))
			method = http.MethodGet
		case 3:
			path = fmt.Sprintf("/static/%d.html", rng.IntN(1<<30))
		}
		if st := rawRequest(t, s, method, path); !strings.Contains(st, " 40") {
			t.Fatalf("%s %s: %s", method, path, st)
		}
	}
	for i := range 4 {
		hostile(i)
	}
	seriesOf(t, s)
	before, _ := seriesOf(t, s)
	for i := range 2000 {
		hostile(i)
	}
	big := "M" + strings.Repeat("X", 500<<10)
	for range 3 {
		if st := rawRequest(t, s, big, "/healthz"); !strings.Contains(st, " 405 ") {
			t.Fatalf("a 500 kB method: %q", st)
		}
	}
	after, exposition := seriesOf(t, s)
	if after != before {
		t.Errorf("/metrics has %d clinicpulse_http_* samples after the hostile requests, %d before:\n%s", after, before, grepHTTP(exposition))
	}
	if len(exposition) > 256<<10 {
		t.Errorf("/metrics is %d bytes", len(exposition))
	}
	if m := regexp.MustCompile(`method="M\d|route="/nothing|route="/static/\d|pat_\d`).FindString(exposition); m != "" {
		t.Errorf("/metrics holds a caller's method or path: %q", m)
	}
	if got := scrape(t, s, `clinicpulse_http_requests_total{method="other",route="/healthz",status="405"}`); got < 500 {
		t.Errorf("other/405 on /healthz counted %v times", got)
	}

	s.Stop()
	logs := buf.String()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if len(lines) < 2000 {
		t.Fatalf("%d log lines", len(lines))
	}
	for _, l := range lines {
		if len(l) > 512 {
			t.Fatalf("a log line of %d bytes: %.300s…", len(l), l)
		}
	}
	if strings.Contains(logs, "XXXXXXXX") || strings.Contains(logs, "/nothing/") || strings.Contains(logs, "pat_") {
		t.Errorf("the log holds a caller's method or path")
	}
}

// TestRequestIDIsBounded: a caller's X-Request-ID reaches the log and the
// response only when it is a short token of [A-Za-z0-9._-]; anything else
// is replaced with a generated id.
func TestRequestIDIsBounded(t *testing.T) {
	var buf syncBuffer
	s := apptest.Start(t, func(c *app.Config) { c.Logger = slog.New(slog.NewJSONHandler(&buf, nil)) })
	tok := s.Token("rid", models.RoleAdmin, "a")
	safe := regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	hostile := []string{
		strings.Repeat("a", 65),
		strings.Repeat("b", 100<<10),
		`x","level":"ERROR","msg":"forged`,
		"has space",
		"semi;colon",
		"<script>alert(1)</script>",
		"caf\u00e9",
		"tab\there",
		"../../etc/passwd",
	}
	for _, h := range hostile {
		r := s.Do(t, http.MethodGet, "/api/v1/patients", tok, nil, "X-Request-ID", h)
		got := r.Header.Get("X-Request-ID")
		if got == h || !safe.MatchString(got) {
			t.Errorf("X-Request-ID %.40q answered with %.80q", h, got)
		}
	}
	for _, ok := range []string{"abc-123", "req_9.Z", strings.Repeat("c", 64)} {
		if got := s.Do(t, http.MethodGet, "/healthz", "", nil, "X-Request-ID", ok).Header.Get("X-Request-ID"); got != ok {
			t.Errorf("a safe X-Request-ID %q answered with %q", ok, got)
		}
	}
	// Two X-Request-ID fields: neither is trusted.
	if st := rawRequest(t, s, http.MethodGet, "/healthz", "X-Request-ID", "one", "X-Request-ID", "two"); !strings.Contains(st, " 200 ") {
		t.Fatalf("two request ids: %s", st)
	}
	s.Stop()
	logs := buf.String()
	for _, h := range hostile {
		if strings.Contains(logs, h) {
			t.Errorf("the log holds the hostile X-Request-ID %.40q", h)
		}
	}
	if strings.Contains(logs, `"forged`) || strings.Contains(logs, `"id":"one"`) || strings.Contains(logs, `"id":"two"`) {
		t.Errorf("the log holds a forged field or a duplicated id:\n%s", logs)
	}
	if !strings.Contains(logs, `"id":"abc-123"`) {
		t.Errorf("a safe request id is not logged:\n%.2000s", logs)
	}
}

func grepHTTP(exposition string) string {
	var out []string
	for _, l := range strings.Split(exposition, "\n") {
		if strings.HasPrefix(l, "clinicpulse_http_requests_total") {
			out = append(out, l)
		}
	}
	if len(out) > 20 {
		out = append(out[:20], fmt.Sprintf("… %d more", len(out)-20))
	}
	return strings.Join(out, "\n")
}
