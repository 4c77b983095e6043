package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// Token labels (issue 13): every queue entry and board carries labels such
// as "A3" — the doctor's prefix of the day and the token — unique among a
// tenant's doctors on one day, the same all day, on SQLite and Postgres.

// boardOf is the part of GET /queue/board these tests read.
type boardOf struct {
	DoctorID        string   `json:"doctor_id"`
	Day             string   `json:"day"`
	TokenPrefix     string   `json:"token_prefix"`
	NowServing      *int     `json:"now_serving"`
	NowServingLabel *string  `json:"now_serving_label"`
	Waiting         []int    `json:"waiting"`
	WaitingLabels   []string `json:"waiting_labels"`
	Called          []int    `json:"called"`
	CalledLabels    []string `json:"called_labels"`
	LastCall        *struct {
		Token      int    `json:"token"`
		TokenLabel string `json:"token_label"`
	} `json:"last_call"`
}

func boards(t *testing.T, s *apptest.Server, token string) map[string]boardOf {
	t.Helper()
	r := s.Do(t, http.MethodGet, "/api/v1/queue/board", token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("board: %d %s", r.Status, r.Body)
	}
	var b struct{ Boards []boardOf }
	r.JSON(t, &b)
	out := map[string]boardOf{}
	for _, x := range b.Boards {
		out[x.DoctorID] = x
	}
	return out
}

func TestTokenLabels(t *testing.T) {
	s := apptest.Start(t)
	c := newClinic(t, s, "labels") // its doctor is "Dr. labels"
	doctor := func(name string) string {
		return c.create(t, "doctors", map[string]any{"name": name, "room": name[4:]})["id"].(string)
	}
	// Board order is by name: Dr. Adams, Dr. Baker, Dr. Cole, Dr. labels.
	cole, adams, baker := doctor("Dr. Cole"), doctor("Dr. Adams"), doctor("Dr. Baker")
	walkIn := func(doc string) map[string]any {
		p := c.create(t, "patients", map[string]any{"name": "Pat " + models.NewID("x")[2:8]})["id"]
		return c.create(t, "queue", map[string]any{"patient_id": p, "doctor_id": doc})
	}
	label := func(q map[string]any) string { return q["token_label"].(string) }

	since := c.head(t)
	// Baker's first entry of the day: Baker is second in board order: B.
	b1 := walkIn(baker)
	a1, a2 := walkIn(adams), walkIn(adams)
	b2 := walkIn(baker)
	c1 := walkIn(cole)
	got := []string{label(b1), label(a1), label(a2), label(b2), label(c1)}
	if want := []string{"B1", "A1", "A2", "B2", "C1"}; !slices.Equal(got, want) {
		t.Fatalf("labels %v, want %v", got, want)
	}
	if b1["token"].(float64) != 1 || b2["token"].(float64) != 2 {
		t.Fatalf("integer tokens changed: %v %v", b1["token"], b2["token"])
	}
	// The label is on the entry wherever it is read: by id, in lists, in
	// list deltas and in the queue.created event.
	if got := c.get(t, "queue", a2["id"].(string))["token_label"]; got != "A2" {
		t.Fatalf("GET by id: token_label %v", got)
	}
	r := c.do(t, http.MethodGet, "/api/v1/queue?doctor_id="+baker, nil)
	if !strings.Contains(string(r.Body), `"token_label":"B2"`) {
		t.Fatalf("list: %s", r.Body)
	}
	r = c.do(t, http.MethodGet, fmt.Sprintf("/api/v1/queue?since=%d", since), nil)
	if !strings.Contains(string(r.Body), `"token_label":"C1"`) {
		t.Fatalf("delta: %s", r.Body)
	}
	evs, err := s.App.Store.ReadEvents(t.Context(), models.EventQuery{TenantID: c.tenant, After: since, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range evs {
		if e.Type == "queue.created" && e.ID == a1["id"] {
			found = strings.Contains(string(e.Data), `"token_label":"A1"`)
		}
	}
	if !found {
		t.Fatal("queue.created of A1 carries no token_label A1")
	}

	// The board: prefix, labels beside the tokens, now serving and the
	// last call as labels.
	c.patch(t, "queue", a1["id"].(string), map[string]any{"status": "called"}, 200)
	display := s.Token(c.tenant, models.RoleDisplay, "screen-1")
	bs := boards(t, s, display)
	ba := bs[adams]
	if ba.TokenPrefix != "A" || ba.NowServingLabel == nil || *ba.NowServingLabel != "A1" || *ba.NowServing != 1 ||
		!slices.Equal(ba.WaitingLabels, []string{"A2"}) || !slices.Equal(ba.CalledLabels, []string{"A1"}) ||
		ba.LastCall == nil || ba.LastCall.TokenLabel != "A1" {
		t.Fatalf("Adams's board %+v", ba)
	}
	// Before its first entry a doctor has no prefix and empty label lists.
	if bl := bs[c.doctor]; bl.TokenPrefix != "" || bl.NowServingLabel != nil || bl.WaitingLabels == nil || len(bl.WaitingLabels) != 0 {
		t.Fatalf("board before the first entry %+v", bl)
	}

	// Stable all day: a doctor who sorts first joins at noon and takes the
	// first free prefix (A is Adams's today); Cole is archived; nobody's
	// prefix moves, and a check-in (appointment → entry) is labelled too.
	aaron := doctor("Dr. Aaron")
	c.patch(t, "queue", c1["id"].(string), map[string]any{"status": "cancelled"}, 200)
	if r := c.do(t, http.MethodDelete, "/api/v1/doctors/"+cole, nil); r.Status != http.StatusNoContent {
		t.Fatalf("archive Cole: %d %s", r.Status, r.Body)
	}
	if got := label(walkIn(aaron)); got != "D1" {
		t.Fatalf("a doctor added at noon: %s, want D1 (A, B, C are taken today)", got)
	}
	if got := label(walkIn(adams)); got != "A3" {
		t.Fatalf("Adams after the roster changed: %s, want A3", got)
	}
	if got := label(walkIn(c.doctor)); got != "E1" {
		t.Fatalf("Dr. labels: %s, want E1 (its place, D, is Aaron's today)", got)
	}
	start := time.Now().UTC().Add(time.Hour).Truncate(time.Minute)
	appt := c.create(t, "appointments", c.book(c.patient, baker, start, 20))
	c.patch(t, "appointments", appt["id"].(string), map[string]any{"status": "checked_in"}, 200)
	r = c.do(t, http.MethodGet, "/api/v1/queue?doctor_id="+baker+"&patient_id="+c.patient, nil)
	var list struct{ Items []map[string]any }
	r.JSON(t, &list)
	if len(list.Items) != 1 || list.Items[0]["token_label"] != "B3" {
		t.Fatalf("checked-in entry: %s", r.Body)
	}

	// Prefixes belong to a tenant: another clinic's first doctor is A too.
	o := newClinic(t, s, "labels-other")
	q := o.create(t, "queue", map[string]any{"patient_id": o.patient, "doctor_id": o.doctor})
	if q["token_label"] != "A1" {
		t.Fatalf("another tenant: %v, want A1", q["token_label"])
	}
	// A client cannot choose a label: the server sets it.
	q = c.create(t, "queue", map[string]any{"patient_id": c.patient2, "doctor_id": adams, "token_label": "Z9"})
	if q["token_label"] != "A4" {
		t.Fatalf("client-sent token_label kept: %v", q["token_label"])
	}
}

// TestTokenPrefixRace: eight doctors' first entries of a day, sent at
// once, take eight different prefixes, when the prefixes their places
// prefer are all taken (they fall back to the same "first free" one);
// three days in a row. Each day eight blockers, first in board order, take
// A–H and are archived; then eight new doctors, now first in board order,
// race.
func TestTokenPrefixRace(t *testing.T) {
	clk := newClock()
	s := apptest.Start(t, withClock(clk))
	c := newClinic(t, s, "race")
	const n = 8
	var pats []string
	for i := range n {
		pats = append(pats, c.create(t, "patients", map[string]any{"name": fmt.Sprintf("Pat %02d", i)})["id"].(string))
	}
	for day := range 3 {
		staff := s.Token(c.tenant, models.RoleCoordinator, "desk-1") // valid on the server's clock
		do := func(method, path string, body any, want int) map[string]any {
			r := s.Do(t, method, path, staff, body)
			if r.Status != want {
				t.Fatalf("%s %s: %d %s", method, path, r.Status, r.Body)
			}
			var m map[string]any
			if len(r.Body) > 0 {
				r.JSON(t, &m)
			}
			return m
		}
		name := fmt.Sprintf("Dr. %d-", 9-day) // sorts before the doctors of earlier days
		for i := range n {
			b := do("POST", "/api/v1/doctors", map[string]any{"name": fmt.Sprintf("%sa%d", name, i), "room": "x"}, 201)["id"].(string)
			q := do("POST", "/api/v1/queue", map[string]any{"patient_id": pats[i], "doctor_id": b}, 201)
			if want := models.TokenPrefixAt(i) + "1"; q["token_label"] != want {
				t.Fatalf("day %d: blocker %d got %v, want %s", day, i, q["token_label"], want)
			}
			do("PATCH", "/api/v1/queue/"+q["id"].(string), map[string]any{"status": "cancelled"}, 200)
			do("DELETE", "/api/v1/doctors/"+b, nil, 204)
		}
		var docs []string
		for i := range n {
			docs = append(docs, do("POST", "/api/v1/doctors", map[string]any{"name": fmt.Sprintf("%sb%d", name, i), "room": "y"}, 201)["id"].(string))
		}
		rs := race(t, s, staff, n, func(i int) (string, string, any) {
			return http.MethodPost, "/api/v1/queue", map[string]any{"patient_id": pats[i], "doctor_id": docs[i]}
		})
		seen := map[string]string{}
		for i, r := range rs {
			if r.status != http.StatusCreated {
				t.Fatalf("day %d, request %d: %d %s", day, i, r.status, r.body)
			}
			var q struct {
				DoctorID   string `json:"doctor_id"`
				Token      int    `json:"token"`
				TokenLabel string `json:"token_label"`
			}
			if err := json.Unmarshal(r.body, &q); err != nil {
				t.Fatal(err)
			}
			prefix := strings.TrimSuffix(q.TokenLabel, "1")
			if q.Token != 1 || prefix == "" || prefix == q.TokenLabel || prefix < "J" {
				t.Fatalf("day %d: entry %+v (A–H are the blockers')", day, q)
			}
			if other, dup := seen[prefix]; dup {
				t.Fatalf("day %d: prefix %s given to %s and %s", day, prefix, other, q.DoctorID)
			}
			seen[prefix] = q.DoctorID
		}
		// The boards agree with the entries.
		bs := boards(t, s, staff)
		for p, id := range seen {
			if bs[id].TokenPrefix != p {
				t.Fatalf("day %d: board of %s has prefix %q, its entry %q", day, id, bs[id].TokenPrefix, p)
			}
		}
		clk.Advance(24 * time.Hour)
	}
}
