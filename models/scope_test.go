package models

import "testing"

// TestScopeReach: every audience sees the board; staff see everything; a
// display nothing else; a patient their own records and the doctor
// directory whole — and Visible follows Reach, within the topics.
func TestScopeReach(t *testing.T) {
	staff, patient, display := Scope{}, Scope{PatientID: "p1"}, Scope{BoardOnly: true}
	for _, e := range append(append([]string{}, Entities...), EntityBoard) {
		want := map[string]Reach{"staff": ReachAll, "display": ReachNone, "patient": ReachOwn}
		switch e {
		case EntityBoard:
			want = map[string]Reach{"staff": ReachAll, "display": ReachAll, "patient": ReachAll}
		case EntityDoctor:
			want["patient"] = ReachAll
		}
		for name, s := range map[string]Scope{"staff": staff, "patient": patient, "display": display} {
			if got := s.Reach(e); got != want[name] {
				t.Errorf("%s reaches %s: %d, want %d", name, e, got, want[name])
			}
		}
	}
	cases := []struct {
		scope  Scope
		ev     Event
		topics Topics
		want   bool
	}{
		{patient, Event{Entity: EntityDoctor}, nil, true},
		{patient, Event{Entity: EntityDoctor}, Topics{EntityQueue: true}, false},
		{patient, Event{Entity: EntityQueue, PatientID: "p1"}, nil, true},
		{patient, Event{Entity: EntityQueue, PatientID: "p2"}, nil, false},
		{patient, Event{Entity: EntityInvoice}, nil, false}, // no patient: not theirs
		{patient, Event{Entity: EntityBoard}, Topics{EntityBoard: true}, true},
		{display, Event{Entity: EntityDoctor}, nil, false},
		{display, Event{Entity: EntityBoard}, nil, true},
		{staff, Event{Entity: EntityInvoice, PatientID: "p2"}, nil, true},
	}
	for _, c := range cases {
		if got := c.scope.Visible(&c.ev, c.topics); got != c.want {
			t.Errorf("%+v sees %s of %q (topics %s): %v, want %v", c.scope, c.ev.Entity, c.ev.PatientID, c.topics.Key(), got, c.want)
		}
	}
}
