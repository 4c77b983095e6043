package sse_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/sse"
)

const tenant = "clinic-a"

var (
	idRE   = regexp.MustCompile(`\b(doc|pat|q|apt|vis|rx|inv)_[0-9a-z]{20}\b`)
	timeRE = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	dayRE  = regexp.MustCompile(`"\d{4}-\d\d-\d\d"`)
)

// normalize replaces what differs between runs (ids, times, the jittered
// retry) with stable placeholders; ids are numbered by first appearance so
// that which record an event is about stays pinned.
func normalize(t *testing.T, b []byte) []byte {
	t.Helper()
	seen := map[string]string{}
	s := idRE.ReplaceAllStringFunc(string(b), func(id string) string {
		if r, ok := seen[id]; ok {
			return r
		}
		p, _, _ := strings.Cut(id, "_")
		n := 1
		for _, v := range seen {
			if strings.HasPrefix(v, "<"+p+"-") {
				n++
			}
		}
		seen[id] = fmt.Sprintf("<%s-%d>", p, n)
		return seen[id]
	})
	s = timeRE.ReplaceAllString(s, "<time>")
	s = dayRE.ReplaceAllString(s, `"<day>"`)
	// An event id's tag hashes its commit time: the golden file keeps the
	// seq and the shape ("id: 3.<tag>"); the envelope checks the value.
	s = regexp.MustCompile(`(?m)^id: (\d+)\.[0-9a-v]{8}$`).ReplaceAllString(s, "id: $1.<tag>")
	s = regexp.MustCompile(`retry: (\d+)`).ReplaceAllStringFunc(s, func(m string) string {
		ms, _ := strconv.Atoi(strings.TrimPrefix(m, "retry: "))
		if ms < 1000 || ms > 5000 {
			t.Errorf("retry %d ms outside [1000, 5000]", ms)
		}
		return "retry: <1000..5000>"
	})
	return []byte(s)
}

// TestStreamGolden pins the response's status, headers and frames: the
// replay of a doctor, a patient and their queue entry, then a live update,
// all exactly as a client reads them. A gzip-accepting client gets the
// stream uncompressed.
func TestStreamGolden(t *testing.T) {
	s := apptest.Start(t)
	tok := s.Token(tenant, models.RoleCoordinator, "coordinator-1")
	doc := doctor(t, s, tok, "Dr. Golden")
	pat := s.Create(t, tok, "patients", map[string]any{"name": "Pat Golden", "mrn": "G-1"})["id"].(string)
	q := s.Create(t, tok, "queue", map[string]any{"patient_id": pat, "doctor_id": doc})["id"].(string)
	h := head(t, s, tenant)

	c := connect(t, s, tok, "since=0", "Accept-Encoding", "gzip")
	got := c.events(int(h), 5*time.Second)
	if r := s.Do(t, http.MethodPatch, "/api/v1/queue/"+q, tok, map[string]any{"status": "called"}); r.Status != http.StatusOK {
		t.Fatalf("call: %d %s", r.Status, r.Body)
	}
	h2 := head(t, s, tenant)
	got = append(got, c.events(int(h2-h), 5*time.Second)...)
	if !equalSeqs(ids(t, got), seqRange(1, h2)) {
		t.Fatalf("seqs %v, want 1..%d", ids(t, got), h2)
	}

	var hdr strings.Builder
	fmt.Fprintf(&hdr, "HTTP %d\n", c.res.StatusCode)
	var names []string
	for k := range c.res.Header {
		if k != "Date" && k != "X-Request-Id" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&hdr, "%s: %s\n", k, strings.Join(c.res.Header[k], ", "))
	}
	fmt.Fprintf(&hdr, "Transfer-Encoding: %s\n\n", strings.Join(c.res.TransferEncoding, ","))
	raw := c.rawBytes()
	if !strings.HasPrefix(string(raw), "retry: ") {
		t.Errorf("the stream does not start with retry: %q", raw[:min(len(raw), 40)])
	}
	sse.Golden(t, "stream.golden", normalize(t, append([]byte(hdr.String()), raw...)))
}

// TestRetryFirstAndHeartbeat: retry: is the first line, before any event,
// and a comment arrives every HEARTBEAT on an idle stream.
func TestRetryFirstAndHeartbeat(t *testing.T) {
	const hb = 150 * time.Millisecond
	s := apptest.Start(t, func(c *app.Config) { c.Heartbeat = hb })
	tok := s.Token(tenant, models.RoleAdmin, "admin-1")
	doctor(t, s, tok, "Dr. One")
	head(t, s, tenant)
	start := time.Now()
	c := connect(t, s, tok, "since=0")
	first, ok := c.next(2 * time.Second)
	if !ok || first.Kind != "retry" {
		t.Fatalf("first item %+v, want retry", first)
	}
	ms, _ := strconv.Atoi(first.Text)
	if ms < 1000 || ms > 5000 {
		t.Errorf("retry %d ms", ms)
	}
	if ev := c.event(2 * time.Second); ev.envelope(t).Seq != 1 {
		t.Fatalf("event %+v", ev)
	}
	var beats []time.Time
	for len(beats) < 4 {
		it, ok := c.next(10 * hb)
		if !ok {
			t.Fatalf("no heartbeat within %v (after %d)", 10*hb, len(beats))
		}
		if it.Kind == "comment" && it.Text == "heartbeat" {
			beats = append(beats, it.At)
		} else {
			t.Fatalf("unexpected %+v", it)
		}
	}
	if d := beats[0].Sub(start); d > 2*hb+500*time.Millisecond {
		t.Errorf("first heartbeat after %v", d)
	}
	for i := 1; i < len(beats); i++ {
		if d := beats[i].Sub(beats[i-1]); d < hb/2 || d > 2*hb+300*time.Millisecond {
			t.Errorf("heartbeat interval %v, want about %v", d, hb)
		}
	}
	t.Logf("heartbeats at %v", func() (out []time.Duration) {
		for _, b := range beats {
			out = append(out, b.Sub(start).Round(time.Millisecond))
		}
		return
	}())
}

// TestResume covers every way a client comes back.
func TestResume(t *testing.T) {
	s := apptest.Start(t)
	tok := s.Token(tenant, models.RoleCoordinator, "c")
	for i := range 5 {
		doctor(t, s, tok, fmt.Sprintf("Dr. %d", i))
	}
	head(t, s, tenant)

	// live creates a doctor and expects it next on c.
	live := func(t *testing.T, c *conn) {
		t.Helper()
		doctor(t, s, tok, "Dr. Live")
		h := head(t, s, tenant)
		if ev := c.event(5 * time.Second); seqOf(ev.ID) != h {
			t.Fatalf("live event %s, want %d", ev.ID, h)
		}
	}
	// reset expects a reset frame to the current head first.
	reset := func(t *testing.T, c *conn, reason string) {
		t.Helper()
		h := head(t, s, tenant)
		ev := c.event(5 * time.Second)
		var r sse.Reset
		if err := json.Unmarshal([]byte(ev.Data), &r); err != nil || ev.Event != "reset" || r.Reason != reason ||
			r.Cursor != h || seqOf(ev.ID) != h {
			t.Fatalf("got %+v, want reset (%s) to %d", ev, reason, h)
		}
	}
	// connected waits for the retry line: the stream is registered.
	connected := func(t *testing.T, c *conn) {
		t.Helper()
		if it, ok := c.next(5 * time.Second); !ok || it.Kind != "retry" {
			t.Fatalf("first item %+v", it)
		}
	}

	t.Run("Last-Event-ID", func(t *testing.T) {
		c := connect(t, s, tok, "", "Last-Event-ID", "2")
		if got := ids(t, c.events(3, 5*time.Second)); !equalSeqs(got, []int64{3, 4, 5}) {
			t.Fatalf("replayed %v", got)
		}
		live(t, c)
	})
	t.Run("since", func(t *testing.T) {
		h := head(t, s, tenant)
		c := connect(t, s, tok, "since=2")
		if got := ids(t, c.events(int(h-2), 5*time.Second)); !equalSeqs(got, seqRange(3, h)) {
			t.Fatalf("replayed %v", got)
		}
		live(t, c)
	})
	t.Run("header wins over since", func(t *testing.T) {
		h := head(t, s, tenant)
		c := connect(t, s, tok, "since=1", "Last-Event-ID", strconv.FormatInt(h-1, 10))
		if got := ids(t, c.events(1, 5*time.Second)); !equalSeqs(got, []int64{h}) {
			t.Fatalf("replayed %v", got)
		}
		live(t, c)
	})
	t.Run("at head", func(t *testing.T) {
		h := head(t, s, tenant)
		c := connect(t, s, tok, "", "Last-Event-ID", strconv.FormatInt(h, 10))
		connected(t, c)
		live(t, c)
	})
	t.Run("no cursor is live only", func(t *testing.T) {
		c := connect(t, s, tok, "")
		connected(t, c)
		live(t, c)
	})
	t.Run("garbage Last-Event-ID", func(t *testing.T) {
		c := connect(t, s, tok, "since=1", "Last-Event-ID", "abc")
		reset(t, c, sse.ResetInvalid)
		live(t, c)
	})
	t.Run("garbage since", func(t *testing.T) {
		for _, v := range []string{"x", "-1", "1.5", "99999999999999999999"} {
			c := connect(t, s, tok, "since="+v)
			reset(t, c, sse.ResetInvalid)
			c.close()
		}
	})
	t.Run("ahead of the log", func(t *testing.T) {
		c := connect(t, s, tok, "", "Last-Event-ID", "1000000")
		reset(t, c, sse.ResetAhead)
		live(t, c)
	})
	t.Run("foreign cursor is ahead for an empty tenant", func(t *testing.T) {
		other := s.Token("clinic-empty", models.RoleAdmin, "a")
		c := connect(t, s, other, "since=3")
		ev := c.event(5 * time.Second)
		if ev.Event != "reset" || !strings.Contains(ev.Data, `"ahead"`) {
			t.Fatalf("got %+v", ev)
		}
	})
	t.Run("expired", func(t *testing.T) {
		time.Sleep(10 * time.Millisecond) // the events are strictly older than now
		if _, err := s.App.Store.Prune(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
		h := head(t, s, tenant)
		c := connect(t, s, tok, "since=1")
		reset(t, c, sse.ResetExpired)
		live(t, c)
		// The head itself is still a good cursor: nothing after it is gone.
		c2 := connect(t, s, tok, "since="+strconv.FormatInt(h+1, 10))
		connected(t, c2)
		live(t, c2)
	})
}

// patientOf names the patient an envelope is about, as a client sees it.
func patientOf(e models.Event) string {
	if e.Entity == models.EntityPatient {
		return e.ID
	}
	var d struct {
		PatientID string `json:"patient_id"`
	}
	_ = json.Unmarshal(e.Data, &d)
	return d.PatientID
}

// TestRoleScoping: a patient's stream carries only their own records, the
// anonymous board and the doctor directory, a display's only the board (no
// names), a foreign
// tenant's nothing, a platform token the tenant it names, ?topics= only
// its entities, and replay is scoped exactly like live delivery.
func TestRoleScoping(t *testing.T) {
	s := apptest.Start(t)
	staff := s.Token(tenant, models.RoleCoordinator, "c")
	doc := doctor(t, s, staff, "Dr. Public")
	alice := s.Create(t, staff, "patients", map[string]any{"name": "Alice Secretname"})["id"].(string)
	bob := s.Create(t, staff, "patients", map[string]any{"name": "Bob Hiddenname"})["id"].(string)
	h0 := head(t, s, tenant)

	all := connect(t, s, staff, "since=0")
	patient := connect(t, s, s.Token(tenant, models.RolePatient, alice), "since=0")
	display := connect(t, s, s.Token(tenant, models.RoleDisplay, "screen-1"), "since=0")
	foreign := connect(t, s, s.Token("clinic-b", models.RoleAdmin, "b"), "")
	platform := connect(t, s, s.Token("", models.RolePlatform, "op"), "since=0&tenant_id="+tenant)
	doctors := connect(t, s, staff, "since=0&topics=doctors")
	patientQueue := connect(t, s, s.Token(tenant, models.RolePatient, alice), "since=0&topics=queue")
	for _, c := range []*conn{foreign} {
		if it, ok := c.next(5 * time.Second); !ok || it.Kind != "retry" {
			t.Fatalf("first item %+v", it)
		}
	}

	qa := s.Create(t, staff, "queue", map[string]any{"patient_id": alice, "doctor_id": doc})["id"].(string)
	qb := s.Create(t, staff, "queue", map[string]any{"patient_id": bob, "doctor_id": doc})["id"].(string)
	for _, q := range []string{qb, qa} {
		if r := s.Do(t, http.MethodPatch, "/api/v1/queue/"+q, staff, map[string]any{"status": "called"}); r.Status != http.StatusOK {
			t.Fatalf("call: %d %s", r.Status, r.Body)
		}
	}
	if r := s.Do(t, http.MethodPatch, "/api/v1/patients/"+bob, staff, map[string]any{"phone": "555-0100"}); r.Status != http.StatusOK {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	doctor(t, s, staff, "Dr. Second")
	h := head(t, s, tenant)

	every := all.events(int(h), 10*time.Second)
	if !equalSeqs(ids(t, every), seqRange(1, h)) {
		t.Fatalf("staff got %v, want 1..%d", ids(t, every), h)
	}
	if got := ids(t, platform.events(int(h), 10*time.Second)); !equalSeqs(got, seqRange(1, h)) {
		t.Fatalf("platform got %v", got)
	}
	var envs []models.Event
	for _, it := range every {
		envs = append(envs, it.envelope(t))
	}
	// want returns the seqs of envs a predicate keeps.
	want := func(keep func(models.Event) bool) (out []int64) {
		for _, e := range envs {
			if keep(e) {
				out = append(out, e.Seq)
			}
		}
		return
	}
	check := func(name string, c *conn, seqs []int64, forbidden ...string) {
		t.Helper()
		if len(seqs) == 0 {
			t.Fatalf("%s: the test expects some events", name)
		}
		got := c.events(len(seqs), 10*time.Second)
		if !equalSeqs(ids(t, got), seqs) {
			t.Fatalf("%s got %v, want %v", name, ids(t, got), seqs)
		}
		for _, it := range got {
			for _, f := range forbidden {
				if strings.Contains(it.Data, f) {
					t.Errorf("%s: event %s %s carries %q: %s", name, it.ID, it.Event, f, it.Data)
				}
			}
		}
		c.quiet(300 * time.Millisecond)
	}
	board := func(e models.Event) bool { return e.Type == "queue.board" }
	mine := func(e models.Event) bool { return board(e) || e.Entity == models.EntityDoctor || patientOf(e) == alice }
	check("patient", patient, want(mine), bob, "Bob", qb)
	check("display", display, want(board), "Alice", "Bob", alice, bob, qa, qb)
	check("topics=doctors", doctors, want(func(e models.Event) bool { return e.Entity == models.EntityDoctor }))
	check("patient topics=queue", patientQueue, want(func(e models.Event) bool {
		return board(e) || (e.Entity == models.EntityQueue && patientOf(e) == alice)
	}), bob, qb)
	foreign.quiet(300 * time.Millisecond)
	if len(want(func(e models.Event) bool { return e.Seq > h0 && board(e) })) == 0 {
		t.Fatal("no board event to test with")
	}

	// Replay is scoped the same way, from the log (since=0: before the
	// hub's memory of this tenant) and from the hub's recent batches
	// (since=h0: the first streams connected then).
	again := connect(t, s, s.Token(tenant, models.RolePatient, alice), "since=0")
	check("patient replay from the log", again, want(mine), bob, "Bob")
	recent := connect(t, s, s.Token(tenant, models.RolePatient, alice), fmt.Sprintf("since=%d", h0))
	check("patient replay from memory", recent, want(func(e models.Event) bool { return e.Seq > h0 && mine(e) }), bob, "Bob")
	recentDisplay := connect(t, s, s.Token(tenant, models.RoleDisplay, "screen-2"), fmt.Sprintf("since=%d", h0))
	check("display replay from memory", recentDisplay, want(func(e models.Event) bool { return e.Seq > h0 && board(e) }), "Alice", "Bob")
	if got := connect(t, s, s.Token("clinic-b", models.RoleAdmin, "b"), "since=0"); true {
		if it, ok := got.next(5 * time.Second); !ok || it.Kind != "retry" {
			t.Fatalf("first item %+v", it)
		}
		got.quiet(300 * time.Millisecond)
	}
}

// TestStreamRequests covers what is answered before the stream starts.
func TestStreamRequests(t *testing.T) {
	s := apptest.Start(t)
	tok := s.Token(tenant, models.RoleAdmin, "a")
	for _, tc := range []struct {
		name, token, query string
		status             int
		detail             string
	}{
		{"no token", "", "", http.StatusUnauthorized, ""},
		{"bad token", "x.y.z", "", http.StatusUnauthorized, ""},
		{"unknown topic", tok, "topics=queue,bogus", http.StatusBadRequest, "topics"},
		{"platform without tenant", s.Token("", models.RolePlatform, "op"), "", http.StatusBadRequest, "tenant_id"},
		{"spent or forged ticket", "", "ticket=abc.def", http.StatusUnauthorized, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, res := tryConnect(t, http.DefaultClient, s.URL, tc.token, tc.query)
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status || res.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(b), tc.detail) {
				t.Fatalf("%d %s %s", res.StatusCode, res.Header.Get("Content-Type"), b)
			}
		})
	}
}

// TestTickets: a bearer caller mints a ticket; it opens one stream of the
// caller's tenant and scope, once, within 60 s; it authenticates nothing
// else.
func TestTickets(t *testing.T) {
	s := apptest.Start(t)
	staff := s.Token(tenant, models.RoleCoordinator, "c")
	alice := s.Create(t, staff, "patients", map[string]any{"name": "Alice"})["id"].(string)
	bob := s.Create(t, staff, "patients", map[string]any{"name": "Bob"})["id"].(string)
	head(t, s, tenant)

	mint := func(token string, query string) sse.Ticket {
		t.Helper()
		r := s.Do(t, http.MethodPost, "/api/v1/stream/tickets"+query, token, nil)
		if r.Status != http.StatusCreated {
			t.Fatalf("mint: %d %s", r.Status, r.Body)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q", cc)
		}
		var tk sse.Ticket
		r.JSON(t, &tk)
		if tk.Ticket == "" || time.Until(tk.ExpiresAt) > 61*time.Second || time.Until(tk.ExpiresAt) < 30*time.Second {
			t.Fatalf("ticket %+v", tk)
		}
		return tk
	}
	tk := mint(s.Token(tenant, models.RolePatient, alice), "")
	c := connect(t, s, "", "since=0&ticket="+tk.Ticket)
	got := c.events(1, 5*time.Second)
	if e := got[0].envelope(t); e.ID != alice {
		t.Fatalf("patient ticket stream got %+v", e)
	}
	c.quiet(200 * time.Millisecond)
	_ = bob

	// Single use: EventSource's automatic reconnect with the same URL is
	// refused, and the client mints a new ticket.
	_, res := tryConnect(t, http.DefaultClient, s.URL, "", "since=0&ticket="+tk.Ticket)
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("second use: %d", res.StatusCode)
	}
	// A ticket is no bearer token for the rest of the API.
	tk = mint(staff, "")
	if r := s.Do(t, http.MethodGet, "/api/v1/doctors?ticket="+tk.Ticket, "", nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("ticket on the API: %d", r.Status)
	}
	// Minting needs a bearer token, not a ticket.
	if r := s.Do(t, http.MethodPost, "/api/v1/stream/tickets?ticket="+tk.Ticket, "", nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("mint with a ticket: %d", r.Status)
	}
	// A platform ticket is bound to the tenant it named.
	tk = mint(s.Token("", models.RolePlatform, "op"), "?tenant_id="+tenant)
	c = connect(t, s, "", "since=0&ticket="+tk.Ticket)
	if got := ids(t, c.events(2, 5*time.Second)); !equalSeqs(got, []int64{1, 2}) {
		t.Fatalf("platform ticket got %v", got)
	}
}

// TestMaxDuration: with STREAM_MAX_DURATION each response ends cleanly
// (a last comment, then the end of the body) after 85–100% of it, and a
// client that resumes with its cursor misses nothing across several cuts.
func TestMaxDuration(t *testing.T) {
	const maxd = 400 * time.Millisecond
	s := apptest.Start(t, func(c *app.Config) { c.StreamMaxDuration = maxd; c.Heartbeat = time.Minute })
	tok := s.Token(tenant, models.RoleAdmin, "a")

	var lasted []time.Duration
	for range 4 {
		start := time.Now()
		c := connect(t, s, tok, "")
		if err := c.waitEnd(5 * time.Second); err != io.EOF {
			t.Fatalf("stream ended with %v, want a clean end", err)
		}
		lasted = append(lasted, time.Since(start))
		raw := string(c.rawBytes())
		if !strings.HasSuffix(raw, ": stream time limit; reconnect\n\n") {
			t.Fatalf("stream ended with %q", raw)
		}
	}
	for _, d := range lasted {
		if d < maxd*85/100-20*time.Millisecond || d > maxd+300*time.Millisecond {
			t.Errorf("a stream lasted %v, want 85–100%% of %v", d, maxd)
		}
	}
	t.Logf("streams lasted %v", lasted)

	// Follow resumes across the cuts: every event once, in order.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 30
	got := make(chan int64, 1000)
	done := make(chan error, 1)
	go func() {
		done <- sse.Follow(ctx, sse.ClientConfig{URL: s.URL + "/api/v1/stream", Token: tok, LastEventID: "0",
			MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
			func(m sse.Message) error {
				var e models.Event
				if err := json.Unmarshal(m.Data, &e); err != nil {
					return err
				}
				got <- e.Seq
				return nil
			})
	}()
	for i := range n {
		doctor(t, s, tok, fmt.Sprintf("Dr. %d", i))
		time.Sleep(40 * time.Millisecond)
	}
	var seqs []int64
	timeout := time.After(15 * time.Second)
	for len(seqs) < n {
		select {
		case q := <-got:
			seqs = append(seqs, q)
		case <-timeout:
			t.Fatalf("got %v", seqs)
		}
	}
	cancel()
	<-done
	if !equalSeqs(seqs, seqRange(1, n)) {
		t.Fatalf("got %v, want 1..%d", seqs, n)
	}
}

// TestShutdown: shutdown ends every stream cleanly (a last comment, then
// the end of the body), a stream opened while it runs ends at once, and
// no goroutine is left behind.
func TestShutdown(t *testing.T) {
	// Let earlier tests' connections wind down before the count.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	// settle waits until at most max goroutines run (max < 0: until the
	// count holds still for 100 ms), for 5 s at most.
	settle := func(max int) int {
		n, still := runtime_NumGoroutine(), 0
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			if max >= 0 && n <= max || max < 0 && still >= 5 {
				break
			}
			time.Sleep(20 * time.Millisecond)
			m := runtime_NumGoroutine()
			if m == n {
				still++
			} else {
				still = 0
			}
			n = m
		}
		return n
	}
	before := settle(-1)

	s := apptest.Start(t, func(c *app.Config) { c.Heartbeat = 50 * time.Millisecond; c.Streams = unlimited })
	tok := s.Token(tenant, models.RoleAdmin, "a")
	doctor(t, s, tok, "Dr. One")
	head(t, s, tenant)
	tr := &http.Transport{}
	client := &http.Client{Transport: tr}
	var conns []*conn
	for i := range 20 {
		q := ""
		if i%2 == 0 {
			q = "since=0"
		}
		c, res := tryConnect(t, client, s.URL, tok, q)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d", res.StatusCode)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		if it, ok := c.next(5 * time.Second); !ok || it.Kind != "retry" {
			t.Fatalf("first item %+v", it)
		}
	}
	during := runtime_NumGoroutine()

	// The shutdown hooks run before the listener closes: a stream opened
	// now is told to go elsewhere.
	start := time.Now()
	for _, fn := range s.App.Closers() {
		fn(context.Background())
	}
	hooks := time.Since(start)
	late, res := tryConnect(t, client, s.URL, tok, "")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	for _, c := range append(conns, late) {
		if err := c.waitEnd(5 * time.Second); err != io.EOF {
			t.Fatalf("stream ended with %v, want a clean end", err)
		}
		if raw := string(c.rawBytes()); !strings.Contains(raw, ": server shutting down") {
			t.Fatalf("stream ended with %q", raw[max(0, len(raw)-80):])
		}
	}
	s.Stop()
	for _, c := range conns {
		c.close()
	}
	tr.CloseIdleConnections()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	after := settle(before)
	t.Logf("goroutines: %d before, %d with 20 streams, %d after shutdown; hooks took %v", before, during, after, hooks)
	if after > before {
		t.Fatalf("%d goroutines left behind:\n%s", after-before, goroutineDump())
	}
	if during < before+20 {
		t.Errorf("only %d goroutines with 20 streams open (before: %d)", during, before)
	}
}
