package models

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestQueueStateMachine(t *testing.T) {
	all := []QueueStatus{QueueWaiting, QueueCalled, QueueInProgress, QueueCompleted, QueueNoShow, QueueCancelled}
	allowed := map[[2]QueueStatus]bool{
		{QueueWaiting, QueueCalled}: true, {QueueCalled, QueueInProgress}: true, {QueueInProgress, QueueCompleted}: true,
		{QueueWaiting, QueueNoShow}: true, {QueueCalled, QueueNoShow}: true, {QueueWaiting, QueueCancelled}: true,
	}
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	for _, from := range all {
		for _, to := range all {
			q := &QueueEntry{Status: from}
			err := q.Transition(to, now)
			if allowed[[2]QueueStatus{from, to}] != (err == nil) {
				t.Errorf("%s → %s: err=%v", from, to, err)
			}
			if err != nil && ErrorCode(err) != ECONFLICT {
				t.Errorf("%s → %s: code %s, want conflict", from, to, ErrorCode(err))
			}
		}
	}
	q := &QueueEntry{Status: QueueWaiting}
	if !q.AdvanceTo(QueueCompleted, now) || q.CalledAt == nil || q.StartedAt == nil || q.CompletedAt == nil {
		t.Fatalf("AdvanceTo completed: %+v", q)
	}
	if q.AdvanceTo(QueueCalled, now) {
		t.Fatal("AdvanceTo moved backwards")
	}
	c := &QueueEntry{Status: QueueCancelled}
	if c.AdvanceTo(QueueCompleted, now) {
		t.Fatal("AdvanceTo moved a cancelled entry")
	}
}

func TestOrderQueue(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	mk := func(tok int, p Priority, s QueueStatus, min int) *QueueEntry {
		q := &QueueEntry{Token: tok, Priority: p, Status: s}
		q.CreatedAt = t0.Add(time.Duration(min) * time.Minute)
		return q
	}
	es := []*QueueEntry{
		mk(1, PriorityNormal, QueueWaiting, 0), mk(2, PriorityUrgent, QueueWaiting, 1), mk(3, PriorityNormal, QueueCompleted, 2),
		mk(4, PriorityEmergency, QueueWaiting, 3), mk(5, PriorityNormal, QueueInProgress, 4), mk(6, PriorityNormal, QueueWaiting, 5),
	}
	OrderQueue(es, 12)
	var toks []int
	for _, e := range es {
		toks = append(toks, e.Token)
	}
	if want := []int{5, 4, 2, 1, 6, 3}; !slices.Equal(toks, want) {
		t.Fatalf("order %v, want %v", toks, want)
	}
	if es[1].Position != 1 || es[1].EstimatedWaitMinutes != 12 || es[4].Position != 4 || es[4].EstimatedWaitMinutes != 48 || es[0].Position != 0 {
		t.Fatalf("positions: %+v %+v %+v", es[0], es[1], es[4])
	}
	b := NewBoard(&Doctor{Meta: Meta{ID: "doc_1"}, Name: "Dr"}, "2026-11-22", es, 12)
	if *b.NowServing != 5 || !slices.Equal(b.Waiting, []int{4, 2, 1, 6}) || b.WaitingCount != 4 || b.EstimatedWaitMinutes != 60 {
		t.Fatalf("board %+v", b)
	}
}

func TestInvoiceTotal(t *testing.T) {
	inv := &Invoice{PatientID: "pat_00000000000000000000", Currency: "usd", Lines: []InvoiceLine{{"a", 2, 150}, {"b", 1, 99}}}
	if err := inv.Validate(); err != nil || inv.Total != 399 || inv.Currency != "USD" {
		t.Fatalf("total %d currency %s err %v", inv.Total, inv.Currency, err)
	}
	inv.Lines = []InvoiceLine{{"a", 1_000_000, 1 << 53}}
	if err := inv.Validate(); ErrorCode(err) != EINVALID {
		t.Fatalf("overflow: %v", err)
	}
	if err := (&Invoice{PatientID: "pat_00000000000000000000", Currency: "USD", Status: InvoiceDraft}).Transition(InvoiceIssued); ErrorCode(err) != ECONFLICT {
		t.Fatalf("issuing an empty invoice: %v", err)
	}
}

func TestIDs(t *testing.T) {
	id := NewID(IDPrefix(EntityQueue))
	if !ValidID(EntityQueue, id) || ValidID(EntityPatient, id) || ValidID(EntityQueue, id+"x") || ValidID(EntityQueue, "q_../../../../etc/passwd") {
		t.Fatalf("ValidID misjudges %s", id)
	}
}

// TestTextLimits: names and short fields count characters and refuse
// control characters; free text counts bytes and allows line breaks; both
// refuse invalid UTF-8 and NUL.
func TestTextLimits(t *testing.T) {
	rep := func(s string, n int) string { return strings.Repeat(s, n) }
	line := func(s string, max int) string {
		var v Validation
		checkLine(&v, "f", s, max, true)
		if len(v) == 0 {
			return ""
		}
		return v[0].Message
	}
	free := func(s string) string {
		var v Validation
		checkFreeText(&v, "f", s, MaxTextLen, false)
		if len(v) == 0 {
			return ""
		}
		return v[0].Message
	}
	for _, tc := range []struct {
		got, want string // want: "" accepted, else a prefix of the message
	}{
		{line(rep("王", 200), MaxNameLen), ""},
		{line(rep("王", 67), MaxNameLen), ""},
		{line(rep("é", 101), MaxNameLen), ""},
		{line(rep("😀", 200), MaxNameLen), ""},
		{line(rep("王", 201), MaxNameLen), "is too long"},
		{line(rep("a", 201), MaxNameLen), "is too long"},
		{line(rep("٠", 64), maxShort), ""},
		{line(rep("٠", 65), maxShort), "is too long"},
		{line("", MaxNameLen), "is required"},
		{line("  ", MaxNameLen), "is required"},
		{line("a\x00b", MaxNameLen), "must be valid UTF-8"},
		{line("a\nb", MaxNameLen), "must be valid UTF-8"},
		{line("a\u0085b", MaxNameLen), "must be valid UTF-8"},
		{line("bad\xff\xfe", MaxNameLen), "must be valid UTF-8"},
		{line("\xed\xa0\x80", MaxNameLen), "must be valid UTF-8"}, // an encoded surrogate
		{free(rep("王", 21845) + "a"), ""},                         // 65,536 bytes
		{free(rep("王", 21845) + "ab"), "is too long"},             // 65,537 bytes
		{free(rep("a", MaxTextLen)), ""},
		{free(rep("a", MaxTextLen+1)), "is too long"},
		{free("line one\nline two\ttab"), ""},
		{free("x\x00"), "must be valid UTF-8"},
		{free("caf\xc3"), "must be valid UTF-8"},
	} {
		if tc.got == "" && tc.want != "" || tc.want == "" && tc.got != "" || !strings.HasPrefix(tc.got, tc.want) {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	if !ValidLine(rep("王", 64), maxShort) || ValidLine(rep("王", 65), maxShort) || ValidLine("a\x00", 10) || ValidLine("\xff", 10) {
		t.Fatal("ValidLine")
	}
}
