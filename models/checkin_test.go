package models

import (
	"testing"
	"time"
)

// TestCheckInWindow: an appointment is checked in on its own day in the
// clinic's zone, or within CheckInWindow of its start across midnight;
// another day's appointment further away is refused.
func TestCheckInWindow(t *testing.T) {
	loc := time.FixedZone("clinic", 2*3600)
	now := time.Date(2026, 11, 29, 23, 50, 0, 0, loc)
	for _, tc := range []struct {
		starts time.Time
		ok     bool
	}{
		{time.Date(2026, 11, 29, 8, 0, 0, 0, loc), true},   // earlier today
		{time.Date(2026, 11, 30, 0, 10, 0, 0, loc), true},  // just after midnight
		{time.Date(2026, 11, 30, 2, 50, 0, 0, loc), true},  // at the edge of the window
		{time.Date(2026, 11, 30, 2, 51, 0, 0, loc), false}, // tomorrow, beyond it
		{time.Date(2026, 12, 6, 10, 0, 0, 0, loc), false},  // next week
	} {
		a := &Appointment{StartsAt: tc.starts}
		a.ID = "apt_x"
		if err := a.CheckIn(now, loc); (err == nil) != tc.ok {
			t.Errorf("starts %v, now %v: %v, want ok=%v", tc.starts, now, err, tc.ok)
		}
	}
	// Just after midnight, last night's late appointment still checks in.
	after := time.Date(2026, 11, 30, 0, 20, 0, 0, loc)
	late := &Appointment{StartsAt: time.Date(2026, 11, 29, 23, 0, 0, 0, loc)}
	early := &Appointment{StartsAt: time.Date(2026, 11, 29, 9, 0, 0, 0, loc)}
	if late.CheckIn(after, loc) != nil || early.CheckIn(after, loc) == nil {
		t.Error("after midnight: 23:00 must check in, 09:00 of the day before must not")
	}
}
