package webhooks_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/auth"
	"github.com/clinicpulse/clinicpulse/internal/testdb"
	"github.com/clinicpulse/clinicpulse/models"
)

// TestSIGKILLMidDelivery builds the server, runs it as a process, kills it
// with SIGKILL while the receiver holds a delivery unanswered, and starts
// it again on the same database: once the dead instance's lease expires
// the new one goes on from the cursor. Nothing is lost, and the delivery
// that was cut is sent again with the same webhook-id.
func TestSIGKILLMidDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server")
	}
	rc := startReceiver(t, 0)
	bin := filepath.Join(t.TempDir(), "clinicpulse")
	build := exec.Command("go", "build", "-o", bin, "../cmd/clinicpulse")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dbURL, _ := testdb.URL(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const secret = "sigkill-test-secret-0123456789abcdef"
	start := func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "ADDR="+addr, "DATABASE_URL="+dbURL, "JWT_SECRET="+secret, "DEV=0",
			"WEBHOOK_ALLOW_HTTP_HOSTS=127.0.0.1", "WEBHOOK_LEASE=2s", "WEBHOOK_TIMEOUT=1s",
			"WEBHOOK_BACKOFF_MIN=5ms", "WEBHOOK_BACKOFF_MAX=100ms", "WRITE_VISIBILITY_TIMEOUT=off")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		waitFor(t, 20*time.Second, "the server", func() bool {
			r, err := http.Get("http://" + addr + "/readyz")
			if err == nil {
				r.Body.Close()
			}
			return err == nil && r.StatusCode == 200
		})
		return cmd
	}
	tok, _ := auth.New(auth.Config{Secret: []byte(secret)}).Sign(models.Actor{Subject: "a", TenantID: tenant, Role: models.RoleAdmin}, time.Hour)
	post := func(path string, body any) []byte {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out bytes.Buffer
		out.ReadFrom(res.Body)
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("POST %s: %d %s", path, res.StatusCode, out.Bytes())
		}
		return out.Bytes()
	}

	cmd := start()
	var hook struct{ ID, Secret string }
	json.Unmarshal(post("/api/v1/webhooks", map[string]any{"url": rc.URL, "topics": []string{"doctors"}}), &hook)
	rc.do("ok", map[string]any{"cmd": "secrets", "secrets": []string{hook.Secret}})
	rc.do("ok", map[string]any{"cmd": "delay", "ms": 40})
	const n = 120
	for i := range n {
		post("/api/v1/doctors", map[string]any{"name": fmt.Sprintf("Dr. %d", i)})
	}
	// Kill right after the receiver took a delivery it answers 40 ms later.
	waitFor(t, 30*time.Second, "40 deliveries", func() bool { return len(rc.unique()) >= 40 })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killedAt := len(rc.unique())
	rc.do("ok", map[string]any{"cmd": "delay", "ms": 0})
	restart := time.Now()
	start()
	waitFor(t, 60*time.Second, fmt.Sprintf("%d deliveries", n), func() bool { return len(rc.unique()) >= n })
	got := rc.unique()
	for i, l := range got {
		if l.Seq != got[0].Seq+int64(i) || l.Type != "doctors.created" || !strings.HasPrefix(l.ID, "msg_"+hook.ID+"_") {
			t.Fatalf("delivery %d: %+v", i, l)
		}
	}
	rc.mu.Lock()
	dups := len(rc.deliveries) - len(got)
	rc.mu.Unlock()
	if dups < 1 {
		t.Errorf("no delivery was sent again after the kill (killed at %d)", killedAt)
	}
	t.Logf("killed after %d deliveries; the restarted instance finished %s after its start; %d sent again with the same webhook-id", killedAt, time.Since(restart).Round(time.Millisecond), dups)
}
