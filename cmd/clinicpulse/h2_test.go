package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/sse"
)

// openStream opens /api/v1/stream with client and returns its lines and
// the protocol it runs on.
func openStream(t *testing.T, ctx context.Context, client *http.Client, base, tok string) (<-chan string, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != http.StatusOK {
		t.Fatalf("stream: %d", res.StatusCode)
	}
	return lines(res.Body), res.Proto
}

// curlStream runs the reproduction, `curl -k --http2 -N`, and
// returns its output lines; nil when curl is not installed (outside CI).
func curlStream(t *testing.T, ctx context.Context, base, tok string) <-chan string {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is required under CI (apt-get install curl)")
		}
		t.Log("curl not installed: checking with Go's HTTP/2 client only")
		return nil
	}
	cmd := exec.CommandContext(ctx, "curl", "-k", "--http2", "-N", "-sS", "-H", "Authorization: Bearer "+tok, base+"/api/v1/stream")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 1024)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ch <- sc.Text()
		}
		if err := cmd.Wait(); err != nil && ctx.Err() == nil {
			ch <- "ERROR: curl: " + err.Error() + ": " + strings.TrimSpace(stderr.String())
		}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return ch
}

// TestHTTP2StreamIdle: an idle HTTP/2 stream over TLS lives as long as an
// HTTP/1.1 one (issue 11, item 1: the per-write deadline was never lifted,
// and net/http's HTTP/2 server resets a stream with INTERNAL_ERROR when its
// deadline passes, write pending or not).
//
// With HEARTBEAT 11 s, above the stream write timeout (10 s), the first
// heartbeat comes after the deadline set by the stream's first write: the
// HTTP/2 stream was reset at 10 s. With HEARTBEAT 1 s the heartbeats come
// well inside it; that stream is held over two heartbeats and the write
// timeout too. Each then receives an event. The server's write timeout
// (REQUEST_WRITE_TIMEOUT, 3 s here) is lifted by each stream's first write.
func TestHTTP2StreamIdle(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	hold := sse.DefaultWriteTimeout + 1500*time.Millisecond
	for _, hb := range []string{"11s", "1s"} {
		t.Run("HEARTBEAT="+hb, func(t *testing.T) {
			t.Parallel()
			// A short server write timeout too: the streams must lift it.
			s := startServerWith(t, map[string]string{"TLS_CERT_FILE": certFile, "TLS_KEY_FILE": keyFile, "HEARTBEAT": hb},
				func(sc *serverConfig) { sc.WriteTimeout, sc.App.Polling.MaxWait = 3*time.Second, time.Second })
			tok := s.token(t, "h2")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
			h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool},
				TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
			defer h2.CloseIdleConnections()
			defer h1.CloseIdleConnections()

			streams := map[string]<-chan string{}
			var proto string
			if streams["Go HTTP/2"], proto = openStream(t, ctx, h2, s.base, tok); proto != "HTTP/2.0" {
				t.Fatalf("the HTTP/2 client got %s", proto)
			}
			if streams["Go HTTP/1.1 over TLS"], proto = openStream(t, ctx, h1, s.base, tok); proto != "HTTP/1.1" {
				t.Fatalf("the HTTP/1.1 client got %s", proto)
			}
			if c := curlStream(t, ctx, s.base, tok); c != nil {
				streams["curl --http2"] = c
			}
			for name, ch := range streams {
				waitLine(t, name, ch, 10*time.Second, func(l string) bool { return strings.HasPrefix(l, "retry:") })
			}
			start := time.Now()

			// Idle past the write deadline set by the streams' first write;
			// the heartbeats (and nothing else) arrive meanwhile.
			beats := map[string]int{}
			timer := time.NewTimer(hold)
		idle:
			for {
				select {
				case <-timer.C:
					break idle
				default:
				}
				for name, ch := range streams {
					select {
					case l, ok := <-ch:
						switch {
						case !ok:
							t.Fatalf("%s ended after %v idle", name, time.Since(start).Round(time.Millisecond))
						case strings.HasPrefix(l, "ERROR: "):
							t.Fatalf("%s after %v idle: %s", name, time.Since(start).Round(time.Millisecond), l)
						case l == ": heartbeat":
							beats[name]++
						}
					default:
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
			if hb == "1s" {
				for name := range streams {
					if beats[name] < 2 {
						t.Errorf("%s: %d heartbeats in %v at HEARTBEAT=1s", name, beats[name], hold)
					}
				}
			}
			name := fmt.Sprintf("Dr Idle %s", hb)
			if st, body := s.post(t, h2, tok, "/api/v1/doctors", fmt.Sprintf(`{"name":%q}`, name)); st != http.StatusCreated {
				t.Fatalf("POST: %d %s", st, body)
			}
			for sname, ch := range streams {
				waitLine(t, sname, ch, 10*time.Second, func(l string) bool { return strings.Contains(l, name) })
				t.Logf("%s: received the event after %v idle (%d heartbeats)", sname, hold, beats[sname])
			}
		})
	}
}
