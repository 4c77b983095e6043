package webhooks_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/internal/nodetest"
	"github.com/clinicpulse/clinicpulse/models"
)

const receiverDir = "testdata/receiver"

// requireNode readies node and the locked npm packages (nodetest.Require).
func requireNode(t *testing.T) string {
	t.Helper()
	return nodetest.Require(t, receiverDir, "standardwebhooks", "webhook receiver test")
}

// line is one report of the receiver.
type line struct {
	Kind    string            `json:"kind"`
	ID      string            `json:"id"`
	Dup     bool              `json:"dup"`
	Seq     int64             `json:"seq"`
	Type    string            `json:"type"`
	Status  int               `json:"status"`
	Error   *string           `json:"error"`
	Port    int               `json:"port"`
	UA      string            `json:"ua"`
	CType   string            `json:"ctype"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// receiver is the Node receiver process.
type receiver struct {
	t     *testing.T
	URL   string
	stdin io.WriteCloser
	ctrl  chan line

	mu         sync.Mutex
	deliveries []line // verified deliveries, duplicates included
	rejected   []line // requests that failed verification
	requests   int
}

// startReceiver starts the Node receiver on a loopback port (0: any); it
// stops when the test ends.
func startReceiver(t *testing.T, port int) *receiver {
	t.Helper()
	node := requireNode(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, "receiver.mjs", fmt.Sprint(port))
	cmd.Dir = receiverDir
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, stdin: stdin, ctrl: make(chan line, 16)}
	t.Cleanup(func() { stdin.Close(); cancel(); cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			var l line
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				continue
			}
			r.mu.Lock()
			switch l.Kind {
			case "delivery":
				r.deliveries = append(r.deliveries, l)
				r.requests++
			case "request":
				r.requests++
				if l.Status == 400 {
					r.rejected = append(r.rejected, l)
				}
			}
			r.mu.Unlock()
			if l.Kind != "delivery" && l.Kind != "request" {
				r.ctrl <- l
			}
		}
		close(r.ctrl)
	}()
	l := r.next("listening")
	r.URL = fmt.Sprintf("http://127.0.0.1:%d/hook", l.Port)
	return r
}

// next waits for the receiver's next control line of the kind.
func (r *receiver) next(kind string) line {
	r.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-r.ctrl:
			if !ok {
				r.t.Fatalf("the receiver exited while waiting for %q", kind)
			}
			if l.Kind == kind {
				return l
			}
		case <-timeout:
			r.t.Fatalf("the receiver did not report %q", kind)
		}
	}
}

// do sends a command and waits for its acknowledgement kind.
func (r *receiver) do(kind string, cmd map[string]any) line {
	r.t.Helper()
	b, _ := json.Marshal(cmd)
	if _, err := r.stdin.Write(append(b, '\n')); err != nil {
		r.t.Fatal(err)
	}
	return r.next(kind)
}

// unique returns the verified deliveries deduplicated by webhook-id, in
// the order first received.
func (r *receiver) unique() []line {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	var out []line
	for _, l := range r.deliveries {
		if !seen[l.ID] {
			seen[l.ID] = true
			out = append(out, l)
		}
	}
	return out
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fast is the delivery configuration of tests: loopback allowed, short
// backoffs and timeouts.
func fast(c *app.Config) {
	c.Webhooks.Policy.AllowHTTPHosts = map[string]bool{"127.0.0.1": true}
	c.Webhooks.BackoffMin = 5 * time.Millisecond
	c.Webhooks.BackoffMax = 100 * time.Millisecond
	c.Webhooks.Timeout = 2 * time.Second
	c.Webhooks.Lease = 3 * time.Second
	c.Webhooks.Scan = 200 * time.Millisecond
	c.Webhooks.MaxFailures = 100000
}

// createHook registers a subscription and returns its id and secret.
func createHook(t *testing.T, s *apptest.Server, tok, url string, topics ...string) (id, secret string) {
	t.Helper()
	body := map[string]any{"url": url}
	if topics != nil {
		body["topics"] = topics
	}
	r := s.Do(t, http.MethodPost, "/api/v1/webhooks", tok, body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create webhook: %d %s", r.Status, r.Body)
	}
	var v struct{ ID, Secret string }
	r.JSON(t, &v)
	if !strings.HasPrefix(v.Secret, "whsec_") || v.ID == "" {
		t.Fatalf("create webhook answered %s", r.Body)
	}
	return v.ID, v.Secret
}

const tenant = "t_hooks"

func adminToken(s *apptest.Server) string { return s.Token(tenant, models.RoleAdmin, "admin-1") }
