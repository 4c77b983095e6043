package sse_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/internal/testdb"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/sse"
)

// TestCursorAfterRestore (issue 11, item 4): back up at head 3, commit 4–8
// (a client's cursor is 8), restore the backup, restart, commit 8 new
// events. A tagged cursor from the lost history ("8.<tag>", the id the
// stream sent) never resumes silently: the stream answers a reset (reason
// "history") to the new head, polls and list deltas 410 carrying it. A
// tagged cursor from before the backup is still this history and replays
// the new 4–11; a plain integer cursor resumes unchecked, as the contract
// has always said. On both databases.
func TestCursorAfterRestore(t *testing.T) {
	dbURL, dialect := testdb.URL(t)
	s := apptest.StartURL(t, dbURL, dialect)
	tok := s.Token(tenant, models.RoleAdmin, "admin-1")
	for i := range 8 {
		doctor(t, s, tok, fmt.Sprintf("Dr. Before %d", i))
	}
	if h := head(t, s, tenant); h != 8 {
		t.Fatalf("head %d", h)
	}
	c := connect(t, s, tok, "since=0")
	old := c.events(8, 5*time.Second)
	c.close()
	lost, atThree := old[7].ID, old[2].ID

	// The restore: the log and the records as a backup at head 3 holds them.
	db := s.App.Store.DB()
	for _, q := range []string{
		"DELETE FROM events WHERE tenant_id = ? AND seq > 3",
		"DELETE FROM doctors WHERE tenant_id = ? AND name NOT IN ('Dr. Before 0', 'Dr. Before 1', 'Dr. Before 2')",
		"UPDATE tenant_heads SET seq = 3 WHERE tenant_id = ?",
	} {
		if err := db.Exec(q, tenant).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Stop()
	s = apptest.StartURL(t, dbURL, dialect)
	for i := range 8 {
		doctor(t, s, tok, fmt.Sprintf("Dr. After %d", i))
	}
	h := head(t, s, tenant)
	if h != 11 {
		t.Fatalf("head after the restore %d, want 11", h)
	}
	fresh := connect(t, s, tok, "since=0")
	now := fresh.events(11, 5*time.Second)
	fresh.close()
	if now[7].ID == lost {
		t.Fatalf("seq 8 has the same id %s in both histories", lost)
	}

	t.Run("stream, Last-Event-ID from the lost history", func(t *testing.T) {
		c := connect(t, s, tok, "", "Last-Event-ID", lost)
		ev := c.event(5 * time.Second)
		var r sse.Reset
		if err := json.Unmarshal([]byte(ev.Data), &r); err != nil || ev.Event != sse.ResetEvent ||
			r.Reason != sse.ResetHistory || r.Cursor != h || ev.ID != now[10].ID {
			t.Fatalf("got %+v, want a reset (history) to %s", ev, now[10].ID)
		}
		// Then live.
		doctor(t, s, tok, "Dr. Live")
		if e := c.event(5 * time.Second); e.envelope(t).Seq != h+1 {
			t.Fatalf("after the reset: %+v", e)
		}
	})
	h = head(t, s, tenant)
	t.Run("stream, ?since= from the lost history", func(t *testing.T) {
		c := connect(t, s, tok, "since="+url.QueryEscape(lost))
		if ev := c.event(5 * time.Second); ev.Event != sse.ResetEvent || seqOf(ev.ID) != h {
			t.Fatalf("got %+v, want a reset to %d", ev, h)
		}
	})
	t.Run("stream, a tagged cursor from before the backup", func(t *testing.T) {
		c := connect(t, s, tok, "", "Last-Event-ID", atThree)
		if got := ids(t, c.events(int(h-3), 5*time.Second)); !equalSeqs(got, seqRange(4, h)) {
			t.Fatalf("replayed %v, want 4..%d", got, h)
		}
	})
	t.Run("stream, a plain integer cursor is unchecked", func(t *testing.T) {
		c := connect(t, s, tok, "", "Last-Event-ID", "8")
		if got := ids(t, c.events(int(h-8), 5*time.Second)); !equalSeqs(got, seqRange(9, h)) {
			t.Fatalf("replayed %v, want 9..%d", got, h)
		}
	})
	t.Run("stream, a wrong tag at the head", func(t *testing.T) {
		// The hub's memory answers (the head's batch is recent). The
		// reset's id is the head's real position, never the client's
		// wrong tag echoed back (its next reconnect would reset again).
		want, err := s.App.Store.PositionAt(t.Context(), tenant, h)
		if err != nil || want.Tag == "" {
			t.Fatalf("head position %v %v", want, err)
		}
		c := connect(t, s, tok, "", "Last-Event-ID", fmt.Sprintf("%d.aaaaaaaa", h))
		ev := c.event(5 * time.Second)
		if ev.Event != sse.ResetEvent || !json.Valid([]byte(ev.Data)) || ev.ID != want.String() {
			t.Fatalf("got %+v, want a reset to %s", ev, want)
		}
		again := connect(t, s, tok, "", "Last-Event-ID", ev.ID)
		doctor(t, s, tok, "Dr. After the reset")
		if e := again.event(5 * time.Second); e.Event == sse.ResetEvent || e.envelope(t).Seq != h+1 {
			t.Fatalf("reconnecting from the reset's id: %+v, want the next event", e)
		}
	})
	h = head(t, s, tenant)
	t.Run("stream, a repeated cursor is no cursor", func(t *testing.T) {
		for _, c := range []*conn{
			connect(t, s, tok, "since=2&since=3"),
			connect(t, s, tok, "", "Last-Event-ID", "2", "Last-Event-ID", "3"),
		} {
			var r sse.Reset
			ev := c.event(5 * time.Second)
			if err := json.Unmarshal([]byte(ev.Data), &r); err != nil || ev.Event != sse.ResetEvent || r.Reason != sse.ResetInvalid || r.Cursor != h {
				t.Fatalf("got %+v, want a reset (invalid) to %d", ev, h)
			}
			c.close()
		}
	})
	for _, path := range []string{"/api/v1/events?since=", "/api/v1/doctors?since="} {
		t.Run("poll "+path, func(t *testing.T) {
			r := s.Do(t, "GET", path+url.QueryEscape(lost), tok, nil)
			var p struct {
				Type   string `json:"type"`
				Cursor int64  `json:"cursor"`
			}
			r.JSON(t, &p)
			if r.Status != 410 || p.Cursor != h {
				t.Fatalf("%d %s, want 410 carrying the head %d", r.Status, r.Body, h)
			}
			if r = s.Do(t, "GET", path+url.QueryEscape(atThree), tok, nil); r.Status != 200 {
				t.Fatalf("a cursor of this history: %d %s", r.Status, r.Body)
			}
		})
	}
	t.Run("poll position", func(t *testing.T) {
		r := s.Do(t, "GET", "/api/v1/events?since="+url.QueryEscape(atThree), tok, nil)
		var page models.EventPage
		r.JSON(t, &page)
		last := page.Events[len(page.Events)-1]
		if page.Cursor != h || page.Position != models.EventPosition(&last).String() {
			t.Fatalf("cursor %d position %q, want %d and the last event's id", page.Cursor, page.Position, h)
		}
		// At the head, with nothing after it: the position is still tagged.
		r = s.Do(t, "GET", "/api/v1/events?since="+url.QueryEscape(page.Position), tok, nil)
		var atHead models.EventPage
		r.JSON(t, &atHead)
		if r.Status != 200 || len(atHead.Events) != 0 || atHead.Position != page.Position {
			t.Fatalf("%d: %+v, want no events at %s", r.Status, atHead, page.Position)
		}
	})
}
