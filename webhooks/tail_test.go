package webhooks

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/clinicpulse/clinicpulse/models"
)

func evs(from, to int64, entity string) []models.Event {
	var out []models.Event
	for s := from; s <= to; s++ {
		out = append(out, models.Event{Seq: s, Entity: entity, Type: entity + ".created", ID: "x", Data: json.RawMessage(`{}`)})
	}
	return out
}

func seqs(es []*entry) []int64 {
	var out []int64
	for _, e := range es {
		out = append(out, e.ev.Seq)
	}
	return out
}

// TestTail: the tail serves a cursor inside it (the topics' events, where
// the cursor may move after them, a limit), sends a cursor older than it
// to the log, starts over after a hole, keeps within its bounds, stops
// before a change of the subscription itself, and encodes each event once
// as /events does.
func TestTail(t *testing.T) {
	var tl tail
	all := filter{limit: 100}
	if _, _, _, ok := tl.after(0, all); ok {
		t.Fatal("an empty tail served a read")
	}
	tl.add(evs(11, 15, models.EntityDoctor))
	tl.add(append(evs(16, 17, models.EntityPatient), evs(18, 20, models.EntityDoctor)...))
	if _, _, _, ok := tl.after(9, all); ok {
		t.Error("a cursor before the tail was served (event 10 is not in it)")
	}
	if es, through, change, ok := tl.after(10, all); !ok || len(es) != 10 || through != 20 || change != 0 {
		t.Errorf("after 10: %v %d %d %v", seqs(es), through, change, ok)
	}
	if es, through, _, ok := tl.after(20, all); !ok || len(es) != 0 || through != 20 {
		t.Errorf("caught up: %v %d %v", seqs(es), through, ok)
	}
	patients := filter{topics: models.Topics{models.EntityPatient: true}, limit: 100}
	if es, through, _, _ := tl.after(12, patients); len(es) != 2 || es[0].ev.Seq != 16 || through != 20 {
		t.Errorf("patients after 12: %v through %d", seqs(es), through)
	}
	if es, through, _, _ := tl.after(12, filter{limit: 3}); len(es) != 3 || through != 15 {
		t.Errorf("limit 3: %v through %d", seqs(es), through)
	}

	// The subscription's own change stops the read before it, once.
	tl.add([]models.Event{{Seq: 21, Entity: models.EntityWebhook, ID: "wh_me"}, {Seq: 22, Entity: models.EntityWebhook, ID: "wh_other"}})
	tl.add(evs(23, 24, models.EntityDoctor))
	me := filter{topics: models.Topics{models.EntityDoctor: true}, self: "wh_me", checked: 20, limit: 100}
	if es, through, change, _ := tl.after(18, me); len(seqs(es)) != 2 || through != 20 || change != 21 {
		t.Errorf("before its change: %v through %d change %d", seqs(es), through, change)
	}
	me.checked = 21
	if es, through, change, _ := tl.after(20, me); len(es) != 2 || es[0].ev.Seq != 23 || through != 24 || change != 0 {
		t.Errorf("after its change: %v through %d change %d", seqs(es), through, change)
	}

	// A hole (pruned before the relay dispatched it) starts over.
	tl.add(evs(30, 31, models.EntityDoctor))
	if _, _, _, ok := tl.after(24, all); ok {
		t.Error("a cursor before a hole was served")
	}
	if es, _, _, ok := tl.after(29, all); !ok || len(es) != 2 {
		t.Errorf("after the hole: %v %v", seqs(es), ok)
	}

	// Bounds: events, then bytes.
	tl.add(evs(32, 32+tailEvents, models.EntityDoctor))
	if n := len(tl.entries); n > tailEvents || n < tailEvents/2 || tl.entries[n-1].ev.Seq != 32+tailEvents {
		t.Errorf("%d entries after %d events, last %d", n, tailEvents+3, tl.entries[n-1].ev.Seq)
	}
	big := evs(33+tailEvents, 32+2*tailEvents, models.EntityDoctor)
	for i := range big {
		big[i].Data = json.RawMessage(`"` + string(bytes.Repeat([]byte("x"), 16<<10)) + `"`)
	}
	tl.add(big)
	if tl.bytes > tailBytes || len(tl.entries) == 0 || tl.entries[len(tl.entries)-1].ev.Seq != 32+2*tailEvents {
		t.Errorf("%d bytes in %d entries", tl.bytes, len(tl.entries))
	}

	// One encoding per event, the envelope of /events.
	e := &entry{ev: models.Event{Seq: 7, Type: "doctors.created", Entity: "doctors", ID: "doc_1", Actor: "a", Data: json.RawMessage(`{"name":"N"}`)}}
	b1, _ := e.json()
	b2, _ := e.json()
	want, _ := json.Marshal(e.ev)
	if &b1[0] != &b2[0] || !bytes.Equal(b1, want) {
		t.Errorf("encoded %s, want %s once", b1, want)
	}
}
