package polling_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// TestAudiencesGetNoActor: events answered to display and patient tokens
// by /api/v1/events, at once and as long-poll results, carry the actor ""
// (the board is anonymous by contract, and a patient learns no staff
// identity); staff get the actor.
func TestAudiencesGetNoActor(t *testing.T) {
	s := apptest.Start(t)
	const jane = "jane.doe@clinic-a.example"
	coord := s.Token("aud", models.RoleCoordinator, jane)
	doc := s.Create(t, coord, "doctors", map[string]any{"name": "Dr. Board"})["id"].(string)
	p1 := newPatient(t, s, coord, "Pat One")
	q := s.Create(t, coord, "queue", map[string]any{"patient_id": p1, "doctor_id": doc})["id"].(string)
	h := head(t, s, coord)
	waitHead(t, s, coord, h)
	tokens := map[string]string{
		"staff":   s.Token("aud", models.RoleAdmin, "admin"),
		"patient": s.Token("aud", models.RolePatient, p1),
		"display": s.Token("aud", models.RoleDisplay, "screen"),
	}
	check := func(what, who string, body []byte) {
		t.Helper()
		var p page
		if err := json.Unmarshal(body, &p); err != nil || len(p.Events) == 0 {
			t.Fatalf("%s %s: %v %s", who, what, err, body)
		}
		for _, e := range p.Events {
			if want := map[bool]string{true: jane, false: ""}[who == "staff"]; e.Actor != want {
				t.Fatalf("%s %s: %s has actor %q, want %q", who, what, e.Type, e.Actor, want)
			}
		}
		if who != "staff" && strings.Contains(string(body), "jane.doe") {
			t.Fatalf("%s %s names the coordinator: %s", who, what, body)
		}
	}
	held := map[string]<-chan held{}
	for who, tok := range tokens {
		r := s.Do(t, http.MethodGet, "/api/v1/events?since=0", tok, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %d", who, r.Status)
		}
		check("page", who, r.Body)
		held[who] = hold(s, fmt.Sprintf("/api/v1/events?since=%d&wait=30", h), tok)
	}
	waitWaiting(t, s, 3)
	if r := s.Do(t, http.MethodPatch, "/api/v1/queue/"+q, coord, map[string]any{"status": "called"}); r.Status != http.StatusOK {
		t.Fatalf("call: %d %s", r.Status, r.Body)
	}
	for who, ch := range held {
		r := <-ch
		if r.status != http.StatusOK {
			t.Fatalf("%s long-poll: %d %s", who, r.status, r.body)
		}
		check("long-poll", who, r.body)
	}
}

// sseEvent is one event frame of the stream.
type sseEvent struct {
	ID, Event string
	Data      event
}

// openStream opens /api/v1/stream and returns its event frames on a
// channel, closed when the stream ends; cancel the context to end it.
func openStream(t *testing.T, ctx context.Context, s *apptest.Server, query, token string) <-chan sseEvent {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/v1/stream?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("stream: %v %v", res, err)
	}
	ch := make(chan sseEvent, 64)
	go func() {
		defer close(ch)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(nil, 8<<20)
		var cur sseEvent
		var data strings.Builder
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if data.Len() > 0 && cur.Event != "reset" {
					if json.Unmarshal([]byte(data.String()), &cur.Data) == nil {
						ch <- cur
					}
				}
				cur, data = sseEvent{}, strings.Builder{}
			case strings.HasPrefix(line, "id:"):
				cur.ID = strings.TrimSpace(line[3:])
			case strings.HasPrefix(line, "event:"):
				cur.Event = strings.TrimSpace(line[6:])
			case strings.HasPrefix(line, "data:"):
				data.WriteString(strings.TrimPrefix(line[5:], " "))
			}
		}
	}()
	return ch
}

// next returns the stream's next event frame, failing after 10 s.
func next(t *testing.T, ch <-chan sseEvent, who string) sseEvent {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatalf("%s: the stream ended", who)
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no event in 10 s", who)
	}
	panic("unreachable")
}

// TestDoctorDirectoryScope: the doctors are the clinic's public directory.
// A patient token reads them on all five paths — the list, its delta, a
// doctor by id, the events poll and the stream (its replay and live) — and
// nothing of another patient; a display token reads them on none (the
// lists answer 403, the events and the stream carry only the board).
func TestDoctorDirectoryScope(t *testing.T) {
	s := apptest.Start(t)
	admin := s.Token("dir", models.RoleAdmin, "admin")
	d1 := s.Create(t, admin, "doctors", map[string]any{"name": "Dr. Directory", "specialty": "Cardiology", "room": "7"})["id"].(string)
	p1 := newPatient(t, s, admin, "Pat Mine")
	p2 := newPatient(t, s, admin, "Pat Other")
	h0 := head(t, s, admin)
	waitHead(t, s, admin, h0)
	if r := s.Do(t, http.MethodPatch, "/api/v1/doctors/"+d1, admin, map[string]any{"room": "8"}); r.Status != http.StatusOK {
		t.Fatalf("patch doctor: %d %s", r.Status, r.Body)
	}
	d2 := s.Create(t, admin, "doctors", map[string]any{"name": "Dr. Second", "room": "9"})["id"].(string)
	if r := s.Do(t, http.MethodPatch, "/api/v1/patients/"+p2, admin, map[string]any{"phone": "555-0101"}); r.Status != http.StatusOK {
		t.Fatalf("patch patient: %d %s", r.Status, r.Body)
	}
	h1 := head(t, s, admin)
	waitHead(t, s, admin, h1)
	pat := s.Token("dir", models.RolePatient, p1)
	disp := s.Token("dir", models.RoleDisplay, "screen")
	since := fmt.Sprintf("since=%d", h0)

	// 1–3: list, delta, by id.
	var list struct {
		Items []map[string]any `json:"items"`
	}
	s.Do(t, http.MethodGet, "/api/v1/doctors", pat, nil).JSON(t, &list)
	if len(list.Items) != 2 || list.Items[0]["room"] == nil || list.Items[0]["name"] == nil {
		t.Fatalf("patient's doctor list: %+v", list.Items)
	}
	var delta struct {
		Items []map[string]any `json:"items"`
	}
	s.Do(t, http.MethodGet, "/api/v1/doctors?"+since, pat, nil).JSON(t, &delta)
	if len(delta.Items) != 2 {
		t.Fatalf("patient's doctor delta: %+v", delta.Items)
	}
	if r := s.Do(t, http.MethodGet, "/api/v1/doctors/"+d1, pat, nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"room":"8"`) {
		t.Fatalf("patient's doctor by id: %d %s", r.Status, r.Body)
	}
	for _, path := range []string{"/api/v1/doctors", "/api/v1/doctors?" + since, "/api/v1/doctors/" + d1} {
		if r := s.Do(t, http.MethodGet, path, disp, nil); r.Status != http.StatusForbidden {
			t.Fatalf("display %s: %d %s", path, r.Status, r.Body)
		}
	}
	if r := s.Do(t, http.MethodGet, "/api/v1/patients/"+p2, pat, nil); r.Status != http.StatusNotFound {
		t.Fatalf("patient reads another patient: %d", r.Status)
	}

	// 4: the events poll.
	want := []string{"doctors.updated " + d1, "doctors.created " + d2}
	// Boards are everyone's (a doctor's edit refreshes theirs): the
	// directory's own events are what this compares.
	got := func(p page) (out []string) {
		for _, e := range p.Events {
			if e.Type != "queue.board" {
				out = append(out, e.Type+" "+e.ID)
			}
		}
		return out
	}
	if g := got(decodePage(t, s.Do(t, http.MethodGet, "/api/v1/events?"+since, pat, nil))); fmt.Sprint(g) != fmt.Sprint(want) {
		t.Fatalf("patient's events: %v, want %v", g, want)
	}
	if g := got(decodePage(t, s.Do(t, http.MethodGet, "/api/v1/events?"+since, disp, nil))); len(g) != 0 {
		t.Fatalf("display's events: %v", g)
	}

	// 5: the stream, replayed from the log and then live.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ps := openStream(t, ctx, s, since, pat)
	ds := openStream(t, ctx, s, since, disp)
	for _, w := range want {
		e := next(t, ps, "patient")
		for e.Event == "queue.board" {
			e = next(t, ps, "patient")
		}
		if e.Event+" "+e.Data.ID != w || e.Data.Actor != "" {
			t.Fatalf("patient's stream replay: %s %s (actor %q), want %s", e.Event, e.Data.ID, e.Data.Actor, w)
		}
	}
	if r := s.Do(t, http.MethodPatch, "/api/v1/doctors/"+d2, admin, map[string]any{"room": "10"}); r.Status != http.StatusOK {
		t.Fatalf("patch doctor: %d %s", r.Status, r.Body)
	}
	s.Create(t, admin, "queue", map[string]any{"patient_id": p2, "doctor_id": d1})
	if e := next(t, ps, "patient"); e.Event != "doctors.updated" || e.Data.ID != d2 {
		t.Fatalf("patient's live stream: %s %s, want doctors.updated %s", e.Event, e.Data.ID, d2)
	}
	if e := next(t, ps, "patient"); e.Event != "queue.board" {
		t.Fatalf("patient's live stream after the doctor: %s %s (another patient's entry?)", e.Event, e.Data.ID)
	}
	if e := next(t, ds, "display"); e.Event != "queue.board" {
		t.Fatalf("display's stream: %s %s, want only the board", e.Event, e.Data.ID)
	}
}
