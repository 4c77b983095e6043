package doctest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/internal/doctest"
	"github.com/clinicpulse/clinicpulse/models"
)

// do sends a request with a bearer token and returns the status, headers
// and body.
func do(ctx context.Context, method, url, token, body string, headers ...string) (int, http.Header, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b), err
}

// call is do, failing the test on a transport error.
func call(t *testing.T, ctx context.Context, method, url, token, body string, headers ...string) (int, http.Header, string) {
	t.Helper()
	st, h, b, err := do(ctx, method, url, token, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return st, h, b
}

// frames reads SSE lines from r into ch until r ends.
func frames(r io.Reader) <-chan string {
	ch := make(chan string, 256)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// next returns the first line of ch with the prefix, failing after d.
func next(t *testing.T, ch <-chan string, prefix string, d time.Duration) string {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-ch:
			if !ok {
				t.Fatalf("the stream ended before a %q line", prefix)
			}
			if strings.HasPrefix(line, prefix) {
				return strings.TrimPrefix(line, prefix)
			}
		case <-timer.C:
			t.Fatalf("no %q line within %v", prefix, d)
		}
	}
}

// TestDeploySingle runs the nginx configuration docs/deploy.md recommends
// for one instance (its "single" block, read from the document) and checks
// what the document says of it: /metrics stays inside, a long-poll is held
// and answered as soon as something happens, a stream resumes with
// Last-Event-ID, and a write repeated with its Idempotency-Key is not
// repeated — all through the proxy.
func TestDeploySingle(t *testing.T) {
	s := apptest.Start(t)
	proxy := doctest.Nginx(t, doctest.DocBlock(t, "deploy.md", "nginx", "single"), s.URL)
	tok := s.Token("deploy", models.RoleAdmin, "admin-1")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	if st, _, _ := call(t, ctx, http.MethodGet, proxy+"/metrics", "", ""); st != http.StatusNotFound {
		t.Errorf("/metrics through the proxy: %d, want 404", st)
	}
	if st, _, body := call(t, ctx, http.MethodGet, s.URL+"/metrics", "", ""); st != http.StatusOK || !strings.Contains(body, "clinicpulse_streams_open") {
		t.Errorf("/metrics on the instance: %d", st)
	}

	// A write repeated with its key: one doctor.
	key := []string{"Idempotency-Key", "deploy-doctor-1", "Content-Type", "application/json"}
	st1, h1, b1 := call(t, ctx, http.MethodPost, proxy+"/api/v1/doctors", tok, `{"name":"Dr. Proxy"}`, key...)
	st2, _, b2 := call(t, ctx, http.MethodPost, proxy+"/api/v1/doctors", tok, `{"name":"Dr. Proxy"}`, key...)
	if st1 != http.StatusCreated || st2 != http.StatusCreated || b1 != b2 {
		t.Fatalf("a repeated write: %d %s, then %d %s", st1, b1, st2, b2)
	}
	_, _, list := call(t, ctx, http.MethodGet, proxy+"/api/v1/doctors", tok, "")
	if n := strings.Count(list, `"name":"Dr. Proxy"`); n != 1 {
		t.Errorf("%d doctors after a repeated write: %s", n, list)
	}
	cursor := h1.Get("X-Cursor")

	// A long-poll held by the proxy, answered by a write 500 ms later.
	type answer struct {
		status int
		body   string
		took   time.Duration
		err    error
	}
	polled := make(chan answer, 1)
	go func() {
		start := time.Now()
		st, _, body, err := do(ctx, http.MethodGet, proxy+"/api/v1/events?wait=20&since="+cursor, tok, "")
		polled <- answer{st, body, time.Since(start), err}
	}()
	time.Sleep(500 * time.Millisecond)
	s.Create(t, tok, "doctors", map[string]any{"name": "Dr. Woken"})
	a := <-polled
	if a.err != nil || a.status != http.StatusOK || !strings.Contains(a.body, "Dr. Woken") || a.took > 5*time.Second {
		t.Errorf("long-poll through the proxy: %d after %v (%v): %s", a.status, a.took, a.err, a.body)
	}

	// A stream through the proxy, cut, and resumed with Last-Event-ID.
	open := func(lastID string) (<-chan string, context.CancelFunc) {
		sctx, stop := context.WithCancel(ctx)
		req, _ := http.NewRequestWithContext(sctx, http.MethodGet, proxy+"/api/v1/stream", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("stream through the proxy: %v %v", res, err)
		}
		return frames(res.Body), func() { stop(); res.Body.Close() }
	}
	lines, stop := open("")
	last := next(t, lines, "id: ", 5*time.Second) // the position, at once
	s.Create(t, tok, "doctors", map[string]any{"name": "Dr. Live"})
	last = next(t, lines, "id: ", 5*time.Second)
	if data := next(t, lines, "data: ", time.Second); !strings.Contains(data, "Dr. Live") {
		t.Fatalf("the live event: %s", data)
	}
	stop()
	s.Create(t, tok, "doctors", map[string]any{"name": "Dr. Missed"})
	lines, stop = open(last)
	defer stop()
	var e models.Event
	if err := json.Unmarshal([]byte(next(t, lines, "data: ", 5*time.Second)), &e); err != nil {
		t.Fatal(err)
	}
	if e.Type != "doctors.created" || !strings.Contains(string(e.Data), "Dr. Missed") {
		t.Errorf("the first event after resuming: %s %s, want Dr. Missed's doctors.created", e.Type, e.Data)
	}
}

// TestLocalize: the rules that put a document's configuration on this
// machine, and their refusals.
func TestLocalize(t *testing.T) {
	conf := "upstream u {\n    server 10.0.0.11:8080 max_fails=1;\n    server 10.0.0.12:8080;\n}\nserver {\n    listen 80;\n    location / { proxy_pass http://u; }\n}\n"
	got, err := doctest.Localize(conf, "127.0.0.1:9", "http://127.0.0.1:1", "http://127.0.0.1:2")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"server 127.0.0.1:1 max_fails=1;", "server 127.0.0.1:2;", "listen 127.0.0.1:9;", "proxy_pass http://u;"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	if _, err := doctest.Localize(conf, "127.0.0.1:9", "http://127.0.0.1:1"); err == nil {
		t.Error("two upstream servers localized with one address")
	}
	single := "server {\n    listen 80;\n    location / { proxy_pass http://127.0.0.1:8080; }\n}\n"
	if got, err := doctest.Localize(single, "127.0.0.1:9", "http://127.0.0.1:7"); err != nil || !strings.Contains(got, "proxy_pass http://127.0.0.1:7;") {
		t.Errorf("single: %q %v", got, err)
	}
	if _, err := doctest.Localize("server { location / {} }", "127.0.0.1:9"); err == nil {
		t.Error("a configuration without listen was accepted")
	}
}
