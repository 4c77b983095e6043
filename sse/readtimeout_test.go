package sse

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
)

// TestReadTimeoutLifted: the server's ReadTimeout (1 s here) bounds a
// request's header and body, not a stream: once the stream owns its
// connection, an idle stream lives past it (over 3 s) and then receives
// an event — hijacked HTTP/1.1 on plain TCP (the writer and its one-byte
// reader), HTTP/1.1 left to net/http, hijacked HTTP/1.1 over TLS, and
// HTTP/2 over TLS. (net/http itself clears the connection's read deadline
// when it hijacks or starts its background read, and arms HTTP/2's per
// stream only for a body; the stream clears it explicitly all the same.)
func TestReadTimeoutLifted(t *testing.T) {
	const readTimeout, idle = time.Second, 3200 * time.Millisecond
	for _, tc := range []struct {
		name          string
		tls, h2, keep bool
	}{
		{name: "http1 hijacked"},
		{name: "http1 net/http", keep: true},
		{name: "tls http1 hijacked", tls: true},
		{name: "tls http2", tls: true, h2: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, l := newTestHandler(Config{Heartbeat: time.Minute, NoHijack: tc.keep})
			srv := httptest.NewUnstartedServer(staffEcho(h, models.Actor{Subject: "a", TenantID: "t", Role: models.RoleAdmin}))
			srv.Config.ReadTimeout = readTimeout
			if tc.tls {
				srv.EnableHTTP2 = tc.h2
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			defer h.Shutdown(context.Background())

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/stream", nil)
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if want := map[bool]int{false: 1, true: 2}[tc.h2]; res.ProtoMajor != want {
				t.Fatalf("HTTP/%d, want HTTP/%d", res.ProtoMajor, want)
			}
			events := make(chan WireEvent, 1)
			ended := make(chan error, 1)
			go func() {
				p := NewWireParser()
				buf := make([]byte, 4096)
				for {
					n, err := res.Body.Read(buf)
					p.Feed(buf[:n])
					if len(p.Events) > 0 {
						events <- p.Events[0]
						return
					}
					if err != nil {
						ended <- err
						return
					}
				}
			}()
			start := time.Now()
			select {
			case err := <-ended:
				t.Fatalf("the idle stream ended after %v (ReadTimeout %v): %v", time.Since(start).Round(time.Millisecond), readTimeout, err)
			case <-time.After(idle): // the property under test is this long idle
			}
			l.Append(models.Event{Entity: "queue"})
			select {
			case e := <-events:
				if seqOfID(e.LastEventID) != 1 {
					t.Fatalf("event %+v", e)
				}
			case err := <-ended:
				t.Fatalf("the stream ended before its event: %v", err)
			case <-time.After(5 * time.Second):
				t.Fatal("no event within 5 s")
			}
		})
	}
}
