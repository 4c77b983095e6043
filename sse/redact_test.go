package sse_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// TestActorsRedacted (issue 10, item 7): a coordinator whose subject is an
// e-mail address queues a patient. The waiting-room display's stream and
// the patient's carry every event with actor "" — live, replayed from the
// log and replayed from the hub's memory — while a staff stream, on the
// same batches, still names the actor.
func TestActorsRedacted(t *testing.T) {
	const jane = "jane.doe@clinic-a.example"
	s := apptest.Start(t)
	staff := s.Token(tenant, models.RoleCoordinator, jane)
	doc := doctor(t, s, staff, "Dr. Board")
	alice := s.Create(t, staff, "patients", map[string]any{"name": "Alice"})["id"].(string)
	h0 := head(t, s, tenant)

	display := s.Token(tenant, models.RoleDisplay, "screen-1")
	patient := s.Token(tenant, models.RolePatient, alice)
	liveStaff := connect(t, s, staff, "")
	liveDisplay := connect(t, s, display, "")
	livePatient := connect(t, s, patient, "")
	for _, c := range []*conn{liveStaff, liveDisplay, livePatient} {
		if it, ok := c.next(5 * time.Second); !ok || it.Kind != "retry" {
			t.Fatalf("first item %+v", it)
		}
	}
	q := s.Create(t, staff, "queue", map[string]any{"patient_id": alice, "doctor_id": doc})["id"].(string)
	if r := s.Do(t, http.MethodPatch, "/api/v1/queue/"+q, staff, map[string]any{"status": "called"}); r.Status != http.StatusOK {
		t.Fatalf("call: %d %s", r.Status, r.Body)
	}
	h := head(t, s, tenant)

	// check reads n events from c and wants their actor to be actor.
	check := func(name string, c *conn, n int, actor string) {
		t.Helper()
		got := c.events(n, 10*time.Second)
		for _, it := range got {
			if e := it.envelope(t); e.Actor != actor {
				t.Errorf("%s: event %d %s has actor %q, want %q", name, e.Seq, e.Type, e.Actor, actor)
			}
		}
		if actor == "" && strings.Contains(string(c.rawBytes()), jane) {
			t.Errorf("%s: the stream names %s", name, jane)
		}
	}
	// Live: the staff stream gets every event, the display the boards,
	// the patient Alice's queue entry and the boards.
	check("staff live", liveStaff, int(h-h0), jane)
	check("display live", liveDisplay, 2, "")
	check("patient live", livePatient, int(h-h0), "")

	// Replayed from the log (since=0: before the hub knew the tenant), and
	// from the hub's recent batches (since=h0).
	for _, since := range []int64{0, h0} {
		check(fmt.Sprintf("display replay since=%d", since), connect(t, s, display, fmt.Sprintf("since=%d", since)), 2, "")
		n := int(h - h0)
		if since == 0 {
			n++ // alice's patients.created
		}
		check(fmt.Sprintf("patient replay since=%d", since), connect(t, s, patient, fmt.Sprintf("since=%d", since)), n, "")
		check(fmt.Sprintf("staff replay since=%d", since), connect(t, s, staff, fmt.Sprintf("since=%d", since)), int(h-since), jane)
	}
}
