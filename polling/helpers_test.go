package polling_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/internal/testdb"
	"github.com/clinicpulse/clinicpulse/models"
	"gorm.io/gorm"
)

// event is an envelope as a client decodes it.
type event struct {
	Seq     int64           `json:"seq"`
	Type    string          `json:"type"`
	Entity  string          `json:"entity"`
	ID      string          `json:"id"`
	Version int64           `json:"version"`
	Actor   string          `json:"actor"`
	Data    json.RawMessage `json:"data"`
}

// page is a poll response as a client decodes it.
type page struct {
	Events   []event `json:"events"`
	Cursor   int64   `json:"cursor"`
	Position string  `json:"position"`
	HasMore  bool    `json:"has_more"`
}

type problem struct {
	Type   string `json:"type"`
	Status int    `json:"status"`
	Cursor *int64 `json:"cursor"`
	Errors []struct {
		Field string `json:"field"`
	} `json:"errors"`
}

func decodePage(t testing.TB, r *apptest.Response) page {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("poll: status %d %s", r.Status, r.Body)
	}
	var p page
	r.JSON(t, &p)
	if p.Events == nil {
		t.Fatalf("poll: events is null, want []: %s", r.Body)
	}
	return p
}

// startCounted starts a server like apptest.Start, with a counter of the
// database statements run on behalf of requests (the ones whose context
// carries an actor; the relay's reads and scans are left out). GORM's
// callbacks cannot be registered while statements run, so the counter is
// installed between app.New and Start, before any background work.
func startCounted(t testing.TB) (*apptest.Server, *atomic.Int64) {
	t.Helper()
	url, dialect := testdb.URL(t)
	ctx := context.Background()
	a, err := app.New(ctx, app.Config{DatabaseURL: url, JWTSecret: []byte(apptest.Secret), RelayScan: 500 * time.Millisecond, Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	fn := func(tx *gorm.DB) {
		if tx.Statement == nil || tx.Statement.Context == nil {
			return
		}
		if _, ok := models.ActorFromContext(tx.Statement.Context); ok {
			n.Add(1)
		}
	}
	cb := a.Store.DB().Callback()
	const name = "polltest:count"
	for _, err := range []error{
		cb.Query().Before("gorm:query").Register(name, fn),
		cb.Row().Before("gorm:row").Register(name, fn),
		cb.Raw().Before("gorm:raw").Register(name, fn),
		cb.Create().Before("gorm:create").Register(name, fn),
		cb.Update().Before("gorm:update").Register(name, fn),
		cb.Delete().Before("gorm:delete").Register(name, fn),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return apptest.Serve(t, a, dialect), &n
}

// rawGet is a goroutine-safe GET (no t.Fatal): status, headers, body.
func rawGet(ctx context.Context, url, token string, headers ...string) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b, err
}

func newPatient(t testing.TB, s *apptest.Server, token, name string) string {
	t.Helper()
	return s.Create(t, token, "patients", map[string]any{"name": name})["id"].(string)
}

func head(t testing.TB, s *apptest.Server, token string) int64 {
	t.Helper()
	return decodePage(t, s.Do(t, http.MethodGet, "/api/v1/events?limit=1000", token, nil)).Cursor
}

// waitHead waits until the poller's in-memory head reaches n (the relay
// publishes shortly after a commit).
func waitHead(t testing.TB, s *apptest.Server, token string, n int64) {
	t.Helper()
	actor, err := s.App.Auth.Verify(token)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		// A 304 for a page's own tag can come from the database's head
		// while the head in memory still lags: wait for the relay too.
		if s.App.Relay.Head(actor.TenantID) < n {
			if time.Now().After(deadline) {
				t.Fatalf("head did not reach %d", n)
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		r := s.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/events?since=%d", n), token, nil)
		if r.Status == http.StatusOK {
			et := r.Header.Get("ETag")
			if s.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/events?since=%d", n), token, nil, "If-None-Match", et).Status == http.StatusNotModified {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("head did not reach %d", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func hasToken(list, want string) bool {
	for _, v := range strings.Split(list, ",") {
		if strings.EqualFold(strings.TrimSpace(v), want) {
			return true
		}
	}
	return false
}

func jsonBody(s string) io.Reader { return strings.NewReader(s) }
