package polling_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// TestConditionalPollRoundTrip: 200 with an ETag; the same poll with
// If-None-Match → 304, no body, no database statement; after a write → 200
// with exactly the new events and a new ETag. The same for a resource list
// and its delta. Last, with the database handle closed, 304s still answer.
func TestConditionalPollRoundTrip(t *testing.T) {
	s, queries := startCounted(t)
	admin := s.Token("rt", models.RoleAdmin, "u_admin")
	newPatient(t, s, admin, "Ada")
	s.Create(t, admin, "doctors", map[string]any{"name": "Dr. Who"})

	r1 := s.Do(t, http.MethodGet, "/api/v1/events?since=0", admin, nil)
	p1 := decodePage(t, r1)
	tag1 := r1.Header.Get("ETag")
	if len(p1.Events) != 2 || p1.HasMore || p1.Cursor != p1.Events[1].Seq {
		t.Fatalf("first poll: %+v", p1)
	}
	if !strings.HasPrefix(tag1, `"`) || !strings.HasSuffix(tag1, `"`) || strings.HasPrefix(tag1, "W/") {
		t.Fatalf("ETag %q is not a strong entity-tag", tag1)
	}
	for h, want := range map[string]string{"Cache-Control": "private, no-cache", "Vary": "Authorization", "X-Poll-Interval": "15", "Content-Type": "application/json"} {
		if got := r1.Header.Get(h); got != want {
			t.Errorf("200 %s = %q, want %q", h, got, want)
		}
	}
	waitHead(t, s, admin, p1.Cursor)

	queries.Store(0)
	for range 20 {
		r := s.Do(t, http.MethodGet, "/api/v1/events?since=0", admin, nil, "If-None-Match", tag1)
		if r.Status != http.StatusNotModified || len(r.Body) != 0 {
			t.Fatalf("repeat: %d %q", r.Status, r.Body)
		}
		if r.Header.Get("ETag") != tag1 || r.Header.Get("Cache-Control") != "private, no-cache" || r.Header.Get("Vary") != "Authorization" || r.Header.Get("X-Poll-Interval") != "15" {
			t.Fatalf("304 headers: %v", r.Header)
		}
	}
	// A list of tags, weak comparison (RFC 9110 §13.1.2).
	if r := s.Do(t, http.MethodGet, "/api/v1/events?since=0", admin, nil, "If-None-Match", `"nope", W/`+tag1); r.Status != http.StatusNotModified {
		t.Fatalf("tag list: %d", r.Status)
	}
	if n := queries.Load(); n != 0 {
		t.Fatalf("304 path ran %d database statements", n)
	}
	// The query counter does see a 200 (the counter works).
	s.Do(t, http.MethodGet, "/api/v1/events?since=0", admin, nil)
	if queries.Load() == 0 {
		t.Fatal("the statement counter saw no statement for a 200")
	}

	id := newPatient(t, s, admin, "Grace")
	deadline := time.Now().Add(5 * time.Second)
	var r2 *apptest.Response
	for {
		r2 = s.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/events?since=%d", p1.Cursor), admin, nil, "If-None-Match", tag1)
		if r2.Status == http.StatusOK || time.Now().After(deadline) {
			break
		}
	}
	p2 := decodePage(t, r2)
	if len(p2.Events) != 1 || p2.Events[0].ID != id || p2.Events[0].Type != "patients.created" || p2.Events[0].Seq != p1.Cursor+1 || p2.Cursor != p2.Events[0].Seq {
		t.Fatalf("after a write: %s", r2.Body)
	}
	if tag2 := r2.Header.Get("ETag"); tag2 == "" || tag2 == tag1 {
		t.Fatalf("ETag after a write: %q (was %q)", tag2, tag1)
	}
	// The first query's tag no longer matches: the log moved.
	waitHead(t, s, admin, p2.Cursor)
	if r := s.Do(t, http.MethodGet, "/api/v1/events?since=0", admin, nil, "If-None-Match", tag1); r.Status != http.StatusOK || len(decodePage(t, r).Events) != 3 {
		t.Fatalf("stale tag: %d %s", r.Status, r.Body)
	}

	// A resource list: snapshot, 304, write, delta.
	l1 := s.Do(t, http.MethodGet, "/api/v1/patients", admin, nil)
	ltag := l1.Header.Get("ETag")
	var snap struct {
		Items  []map[string]any `json:"items"`
		Cursor int64            `json:"cursor"`
	}
	l1.JSON(t, &snap)
	if l1.Status != http.StatusOK || ltag == "" || len(snap.Items) != 2 || snap.Cursor != p2.Cursor {
		t.Fatalf("list: %d %q %s", l1.Status, ltag, l1.Body)
	}
	if l1.Header.Get("Cache-Control") != "private, no-cache" || l1.Header.Get("X-Poll-Interval") != "15" || l1.Header.Get("Vary") != "Authorization" {
		t.Fatalf("list headers: %v", l1.Header)
	}
	before := queries.Load()
	if r := s.Do(t, http.MethodGet, "/api/v1/patients", admin, nil, "If-None-Match", ltag); r.Status != http.StatusNotModified || len(r.Body) != 0 || r.Header.Get("ETag") != ltag {
		t.Fatalf("list repeat: %d %q", r.Status, r.Body)
	}
	if queries.Load() != before {
		t.Fatal("list 304 read the database")
	}
	if r := s.Do(t, http.MethodGet, "/api/v1/patients?limit=1", admin, nil, "If-None-Match", ltag); r.Status != http.StatusOK {
		t.Fatalf("another query must not match: %d", r.Status)
	}
	id3 := newPatient(t, s, admin, "Linus")
	waitHead(t, s, admin, snap.Cursor+1)
	if r := s.Do(t, http.MethodGet, "/api/v1/patients", admin, nil, "If-None-Match", ltag); r.Status != http.StatusOK || r.Header.Get("ETag") == ltag {
		t.Fatalf("list after a write: %d", r.Status)
	}
	d := s.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/patients?since=%d", snap.Cursor), admin, nil)
	var delta struct {
		Items   []map[string]any `json:"items"`
		Deleted []string         `json:"deleted"`
		Cursor  int64            `json:"cursor"`
	}
	d.JSON(t, &delta)
	if d.Status != http.StatusOK || len(delta.Items) != 1 || delta.Items[0]["id"] != id3 || delta.Cursor != snap.Cursor+1 {
		t.Fatalf("delta: %s", d.Body)
	}
	before = queries.Load()
	if r := s.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/patients?since=%d", snap.Cursor), admin, nil, "If-None-Match", d.Header.Get("ETag")); r.Status != http.StatusNotModified {
		t.Fatalf("delta repeat: %d", r.Status)
	}
	if queries.Load() != before {
		t.Fatal("delta 304 read the database")
	}

	// With the database gone, the 304 path still answers; a 200 cannot.
	cur := decodePage(t, s.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/events?since=%d", delta.Cursor), admin, nil))
	r := s.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/events?since=%d", delta.Cursor), admin, nil)
	tag := r.Header.Get("ETag")
	if err := s.App.Store.Close(); err != nil {
		t.Fatal(err)
	}
	if r := s.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/events?since=%d", cur.Cursor), admin, nil, "If-None-Match", tag); r.Status != http.StatusNotModified {
		t.Fatalf("304 with the database closed: %d %s", r.Status, r.Body)
	}
	if r := s.Do(t, http.MethodGet, "/api/v1/events?since=0", admin, nil); r.Status < 500 {
		t.Fatalf("a 200 with the database closed: %d (is the database really closed?)", r.Status)
	}
}

// TestPollIntervals: X-Poll-Interval is 30 for stream=live, 15 without,
// 5 for stream=down, on every poll response of both endpoints.
func TestPollIntervals(t *testing.T) {
	s := apptest.Start(t)
	admin := s.Token("iv", models.RoleAdmin, "u")
	for _, c := range []struct{ query, want string }{{"", "15"}, {"stream=live", "30"}, {"stream=down", "5"}} {
		for _, path := range []string{"/api/v1/events?", "/api/v1/queue?", "/api/v1/patients?since=0&"} {
			r := s.Do(t, http.MethodGet, path+c.query, admin, nil)
			if r.Status != http.StatusOK || r.Header.Get("X-Poll-Interval") != c.want {
				t.Errorf("%s%s: %d X-Poll-Interval %q, want %q", path, c.query, r.Status, r.Header.Get("X-Poll-Interval"), c.want)
			}
			// The ETag does not depend on stream: switching health keeps the 304.
			r2 := s.Do(t, http.MethodGet, path+"stream=down", admin, nil, "If-None-Match", r.Header.Get("ETag"))
			if r2.Status != http.StatusNotModified || r2.Header.Get("X-Poll-Interval") != "5" {
				t.Errorf("%s 304: %d X-Poll-Interval %q", path, r2.Status, r2.Header.Get("X-Poll-Interval"))
			}
		}
	}
}

// TestExpiredCursor: a since older than the retained log (or ahead of it)
// is 410 cursor-expired on both endpoints, also for a long-poll.
func TestExpiredCursor(t *testing.T) {
	s := apptest.Start(t)
	admin := s.Token("gone", models.RoleAdmin, "u")
	for i := range 3 {
		newPatient(t, s, admin, fmt.Sprint("P", i))
	}
	h := head(t, s, admin)
	// Let the relay publish first: it reads the log, and pruning at once
	// (retention 0) could delete events before it reads them.
	waitHead(t, s, admin, h)
	if _, err := s.App.Store.Prune(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"/api/v1/events?since=1", "/api/v1/events?since=0", "/api/v1/events?since=1&wait=5",
		"/api/v1/patients?since=1", "/api/v1/patients?since=1&wait=5",
		fmt.Sprintf("/api/v1/events?since=%d", h+5), fmt.Sprintf("/api/v1/patients?since=%d", h+5),
	} {
		start := time.Now()
		r := s.Do(t, http.MethodGet, path, admin, nil)
		var p problem
		r.JSON(t, &p)
		if r.Status != http.StatusGone || !strings.HasSuffix(p.Type, "/cursor-expired") || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s", path, r.Status, r.Body)
		}
		if p.Cursor == nil || *p.Cursor != h {
			t.Errorf("%s: the problem does not carry the head %d: %s", path, h, r.Body)
		}
		if time.Since(start) > 2*time.Second {
			t.Errorf("%s: held %v before answering 410", path, time.Since(start))
		}
	}
	// The head itself is kept: a caught-up client carries on.
	if r := s.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/events?since=%d", h), admin, nil); r.Status != http.StatusOK {
		t.Fatalf("since=head after pruning: %d %s", r.Status, r.Body)
	}
	id := newPatient(t, s, admin, "After")
	p := decodePage(t, s.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/events?since=%d", h), admin, nil))
	if len(p.Events) != 1 || p.Events[0].ID != id {
		t.Fatalf("after pruning: %+v", p)
	}
}

// TestRateLimit: one identity's flood gets 429 with Retry-After (on the events
// endpoint and the lists alike); another identity is not affected.
func TestRateLimit(t *testing.T) {
	s := apptest.Start(t)
	flood := s.Token("rl", models.RoleAdmin, "flood")
	calm := s.Token("rl", models.RoleAdmin, "calm")
	tag := s.Do(t, http.MethodGet, "/api/v1/events", flood, nil).Header.Get("ETag")
	var limited *apptest.Response
	n := 0
	for ; n < 1000 && limited == nil; n++ {
		path := "/api/v1/events"
		if n%2 == 1 {
			path = "/api/v1/queue"
		}
		r := s.Do(t, http.MethodGet, path, flood, nil, "If-None-Match", tag)
		if r.Status == http.StatusTooManyRequests {
			limited = r
		}
	}
	if limited == nil {
		t.Fatal("1,000 polls in a row were never limited")
	}
	if n < 50 {
		t.Fatalf("limited after %d polls: not generous", n)
	}
	var p problem
	limited.JSON(t, &p)
	ra, err := strconv.Atoi(limited.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 60 || !strings.HasSuffix(p.Type, "/rate-limited") || p.Status != 429 {
		t.Fatalf("429: Retry-After %q, %s", limited.Header.Get("Retry-After"), limited.Body)
	}
	t.Logf("limited after %d polls; Retry-After %d s", n, ra)
	if r := s.Do(t, http.MethodGet, "/api/v1/events", calm, nil); r.Status != http.StatusOK {
		t.Fatalf("another token: %d", r.Status)
	}
	// Writes are not poll requests.
	newPatient(t, s, flood, "Still writes")
}

// TestBadParameters: parameters that do not parse or are out of range are
// 400 problem+json naming the parameter, never clamped.
func TestBadParameters(t *testing.T) {
	s := apptest.Start(t)
	admin := s.Token("bad", models.RoleAdmin, "u")
	cases := []struct{ query, field string }{
		{"since=abc", "since"}, {"since=-1", "since"}, {"since=", "since"}, {"since=1.5", "since"},
		{"since=99999999999999999999", "since"}, {"since=1&since=2", "since"},
		{"limit=0", "limit"}, {"limit=1001", "limit"}, {"limit=x", "limit"}, {"limit=", "limit"}, {"limit=-5", "limit"},
		{"wait=56", "wait"}, {"wait=-1", "wait"}, {"wait=x", "wait"}, {"wait=1.5", "wait"}, {"wait=", "wait"}, {"wait=100000", "wait"},
		{"stream=maybe", "stream"}, {"stream=", "stream"}, {"stream=LIVE", "stream"}, {"stream=live&stream=down", "stream"},
	}
	n := 0
	check := func(path, field string) {
		t.Helper()
		n++ // a token per request: this test is not about the rate limit
		r := s.Do(t, http.MethodGet, path, s.Token("bad", models.RoleAdmin, fmt.Sprint("u", n)), nil)
		var p problem
		if r.Status != http.StatusBadRequest || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s", path, r.Status, r.Body)
			return
		}
		r.JSON(t, &p)
		if len(p.Errors) == 0 || p.Errors[0].Field != field {
			t.Errorf("%s: errors %s, want the field %q", path, r.Body, field)
		}
	}
	for _, c := range cases {
		check("/api/v1/events?"+c.query, c.field)
		check("/api/v1/appointments?"+c.query, c.field)
	}
	for _, q := range []string{"topics=bogus", "topics=", "topics=queue,", "topics=queue&topics=visits", "topics=patients,nope"} {
		check("/api/v1/events?"+q, "topics")
	}
	// Valid edges are accepted.
	for _, q := range []string{"since=0", "limit=1", "limit=1000", "wait=0", "stream=live", "stream=down", "topics=queue,visits", "topics=board", "_=1700000000"} {
		if r := s.Do(t, http.MethodGet, "/api/v1/events?"+q, admin, nil); r.Status != http.StatusOK {
			t.Errorf("%s: %d %s", q, r.Status, r.Body)
		}
	}
}

// TestScopes: another tenant sees nothing and never shares a tag; a patient
// sees only their own events and the board; a display only the board; topics
// filter server-side; a platform token names its tenant.
func TestScopes(t *testing.T) {
	s := apptest.Start(t)
	admin := s.Token("clinic-a", models.RoleAdmin, "u_admin")
	doc := s.Create(t, admin, "doctors", map[string]any{"name": "Dr. A"})["id"].(string)
	p1 := newPatient(t, s, admin, "Alice Secret")
	p2 := newPatient(t, s, admin, "Bob Private")
	s.Create(t, admin, "queue", map[string]any{"patient_id": p1, "doctor_id": doc})
	s.Create(t, admin, "queue", map[string]any{"patient_id": p2, "doctor_id": doc})

	all := decodePage(t, s.Do(t, http.MethodGet, "/api/v1/events", admin, nil))
	if len(all.Events) < 7 {
		t.Fatalf("staff sees %d events", len(all.Events))
	}
	waitHead(t, s, admin, all.Cursor)
	staffTag := s.Do(t, http.MethodGet, "/api/v1/events", admin, nil).Header.Get("ETag")

	// Another tenant: nothing, and the same query never shares a tag.
	other := s.Token("clinic-b", models.RoleAdmin, "u_admin")
	r := s.Do(t, http.MethodGet, "/api/v1/events", other, nil, "If-None-Match", staffTag)
	if pb := decodePage(t, r); len(pb.Events) != 0 || pb.Cursor != 0 || r.Header.Get("ETag") == staffTag {
		t.Fatalf("tenant b: %s", r.Body)
	}
	if r := s.Do(t, http.MethodGet, "/api/v1/patients", other, nil); !strings.Contains(string(r.Body), `"items":[]`) {
		t.Fatalf("tenant b patients: %s", r.Body)
	}

	// A patient: own records, the board and the doctor directory only.
	pat := s.Token("clinic-a", models.RolePatient, p1)
	r = s.Do(t, http.MethodGet, "/api/v1/events", pat, nil, "If-None-Match", staffTag)
	pp := decodePage(t, r)
	if r.Header.Get("ETag") == staffTag || strings.Contains(string(r.Body), "Bob") || strings.Contains(string(r.Body), p2) {
		t.Fatalf("patient sees another's data: %s", r.Body)
	}
	var own, board, doctors int
	for _, e := range pp.Events {
		switch {
		case e.Entity == models.EntityBoard:
			board++
		case e.Entity == models.EntityDoctor:
			doctors++
		case e.ID == p1 || strings.Contains(string(e.Data), p1):
			own++
		default:
			t.Errorf("patient sees %s %s", e.Type, e.ID)
		}
	}
	if own != 2 || board != 2 || doctors != 1 || pp.Cursor != all.Cursor {
		t.Fatalf("patient: own %d board %d doctors %d cursor %d: %s", own, board, doctors, pp.Cursor, r.Body)
	}
	ptag := r.Header.Get("ETag")
	if s.Do(t, http.MethodGet, "/api/v1/events", pat, nil, "If-None-Match", ptag).Status != http.StatusNotModified {
		t.Fatal("patient 304")
	}
	// Another patient's tag for the same query differs.
	pat2 := s.Token("clinic-a", models.RolePatient, p2)
	if s.Do(t, http.MethodGet, "/api/v1/events", pat2, nil, "If-None-Match", ptag).Status != http.StatusOK {
		t.Fatal("a patient's tag matched another patient's poll")
	}
	if r := s.Do(t, http.MethodGet, "/api/v1/patients", pat, nil); strings.Contains(string(r.Body), "Bob") || !strings.Contains(string(r.Body), "Alice") {
		t.Fatalf("patient list: %s", r.Body)
	}

	// A display: the board only; the lists refuse it.
	disp := s.Token("clinic-a", models.RoleDisplay, "screen-1")
	dp := decodePage(t, s.Do(t, http.MethodGet, "/api/v1/events", disp, nil))
	for _, e := range dp.Events {
		if e.Entity != models.EntityBoard || strings.Contains(string(e.Data), "Alice") {
			t.Fatalf("display sees %s: %s", e.Type, e.Data)
		}
	}
	if len(dp.Events) != 2 {
		t.Fatalf("display sees %d board events", len(dp.Events))
	}
	if r := s.Do(t, http.MethodGet, "/api/v1/patients", disp, nil); r.Status != http.StatusForbidden {
		t.Fatalf("display list: %d", r.Status)
	}

	// Topics filter in the server; the cursor still reaches the head.
	tp := decodePage(t, s.Do(t, http.MethodGet, "/api/v1/events?topics=doctors", admin, nil))
	if len(tp.Events) != 1 || tp.Events[0].ID != doc || tp.Cursor != all.Cursor {
		t.Fatalf("topics=doctors: %+v", tp)
	}
	tq := decodePage(t, s.Do(t, http.MethodGet, "/api/v1/events?topics=queue", admin, nil))
	for _, e := range tq.Events {
		if e.Entity != models.EntityQueue && e.Entity != models.EntityBoard {
			t.Fatalf("topics=queue: %s", e.Type)
		}
	}

	// A platform operator names the tenant.
	plat := s.Token("ops", models.RolePlatform, "op")
	if pa := decodePage(t, s.Do(t, http.MethodGet, "/api/v1/events?tenant_id=clinic-a", plat, nil)); len(pa.Events) != len(all.Events) {
		t.Fatalf("platform ?tenant_id: %d events", len(pa.Events))
	}
	if pa := decodePage(t, s.Do(t, http.MethodGet, "/api/v1/events", plat, nil, "X-Tenant-ID", "clinic-b")); len(pa.Events) != 0 {
		t.Fatalf("platform X-Tenant-ID: %d events", len(pa.Events))
	}
}

// TestPaging: has_more pages the log; each page's cursor is the next since.
func TestPaging(t *testing.T) {
	s := apptest.Start(t)
	admin := s.Token("page", models.RoleAdmin, "u")
	for i := range 7 {
		newPatient(t, s, admin, fmt.Sprint("P", i))
	}
	var got []int64
	since := int64(0)
	for i := 0; ; i++ {
		r := s.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/events?since=%d&limit=3", since), admin, nil)
		p := decodePage(t, r)
		for _, e := range p.Events {
			got = append(got, e.Seq)
		}
		if p.HasMore {
			// Its body is fixed by the query; the tag says so (read, then 304).
			if r2 := s.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/events?since=%d&limit=3", since), admin, nil, "If-None-Match", r.Header.Get("ETag")); r2.Status != http.StatusNotModified {
				t.Fatalf("has_more page repeat: %d", r2.Status)
			}
		}
		since = p.Cursor
		if !p.HasMore {
			break
		}
		if i > 10 {
			t.Fatal("paging does not end")
		}
	}
	if len(got) != 7 {
		t.Fatalf("pages gave %v", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("pages gave %v", got)
		}
	}
}
