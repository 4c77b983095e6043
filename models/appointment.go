package models

import (
	"fmt"
	"time"
)

// AppointmentStatus is where an appointment stands.
type AppointmentStatus string

// Appointment statuses.
const (
	AppointmentScheduled      AppointmentStatus = "scheduled"
	AppointmentCheckedIn      AppointmentStatus = "checked_in"
	AppointmentInConsultation AppointmentStatus = "in_consultation"
	AppointmentCompleted      AppointmentStatus = "completed"
	AppointmentCancelled      AppointmentStatus = "cancelled"
	AppointmentNoShow         AppointmentStatus = "no_show"
)

var appointmentMoves = transitions[AppointmentStatus]{
	AppointmentScheduled:      {AppointmentCheckedIn, AppointmentCancelled, AppointmentNoShow},
	AppointmentCheckedIn:      {AppointmentInConsultation, AppointmentCancelled, AppointmentNoShow},
	AppointmentInConsultation: {AppointmentCompleted},
	AppointmentCompleted:      {},
	AppointmentCancelled:      {},
	AppointmentNoShow:         {},
}

// appointmentPath is the forward path a cascade walks.
var appointmentPath = []AppointmentStatus{AppointmentScheduled, AppointmentCheckedIn, AppointmentInConsultation, AppointmentCompleted}

// MinAppointmentLength and MaxAppointmentLength bound ends_at - starts_at:
// at least a minute (a shorter slot, such as half a second, shows as ending
// when it starts on every screen that prints minutes), at most a day.
const (
	MinAppointmentLength = time.Minute
	MaxAppointmentLength = 24 * time.Hour
)

// DefaultBookingPastGrace is how far in the past a booking may start by
// default: a patient booked at the desk for the slot that began ten minutes
// ago is still a booking, one for yesterday is a mistake.
const DefaultBookingPastGrace = 15 * time.Minute

// OccupyingStatuses are the statuses in which an appointment holds its
// slot: scheduled, checked in, in consultation. A completed appointment
// frees the rest of its slot (the visit ended; the doctor is free), a
// no-show's slot may be given to someone else, a cancelled one is gone.
var OccupyingStatuses = []AppointmentStatus{AppointmentScheduled, AppointmentCheckedIn, AppointmentInConsultation}

// Occupies reports whether an appointment in status s holds its slot.
func (s AppointmentStatus) Occupies() bool {
	return s == AppointmentScheduled || s == AppointmentCheckedIn || s == AppointmentInConsultation
}

// Overlaps reports whether a's slot [starts_at, ends_at) and b's intersect.
// Slots are half-open: one that ends at 10:20 and one that starts at 10:20
// do not overlap.
func (a *Appointment) Overlaps(b *Appointment) bool {
	return a.StartsAt.Before(b.EndsAt) && b.StartsAt.Before(a.EndsAt)
}

// MaxBookingAhead is how far ahead of now an appointment may start: five
// years of 365 days. A clinic's diary reaches a year or two; a date beyond
// that is a typo (and a far one, such as year 9999 with a negative UTC
// offset, is not even a time the log can record).
const MaxBookingAhead = 5 * 365 * 24 * time.Hour

// CheckStart refuses a slot that starts more than grace before now or more
// than MaxBookingAhead after it, as EINVALID naming starts_at. It applies to
// a booking and to a reschedule.
func (a *Appointment) CheckStart(now time.Time, grace time.Duration) error {
	if a.StartsAt.Before(now.Add(-grace)) {
		return Invalid("starts_at", fmt.Sprintf("is in the past: an appointment may start at most %s before now", humanDuration(grace)))
	}
	if a.StartsAt.After(now.Add(MaxBookingAhead)) {
		return Invalid("starts_at", "is too far ahead: an appointment may start at most five years from now")
	}
	return nil
}

// CheckOverlap applies the booking rule to a (a new or rescheduled
// appointment) against others, the appointments that might collide with it:
// neither a's doctor nor a's patient may hold another occupying appointment
// whose slot overlaps a's. The answer is ECONFLICT naming doctor_id when
// the doctor is busy (else patient_id), and every colliding appointment's
// id in Conflicts, earliest first.
func CheckOverlap(a *Appointment, others []*Appointment) error {
	var doctor, patient []*Appointment
	for _, o := range others {
		if o.ID == a.ID || o.DeletedAt != nil || !o.Status.Occupies() || !a.Overlaps(o) {
			continue
		}
		if o.DoctorID == a.DoctorID {
			doctor = append(doctor, o)
		} else if o.PatientID == a.PatientID {
			patient = append(patient, o)
		}
	}
	field, list, who := "doctor_id", doctor, "the doctor"
	if len(doctor) == 0 {
		field, list, who = "patient_id", patient, "the patient"
	}
	if len(list) == 0 {
		return nil
	}
	ids := make([]string, 0, len(list)+len(patient))
	for _, o := range list {
		ids = append(ids, o.ID)
	}
	if field == "doctor_id" {
		for _, o := range patient {
			ids = append(ids, o.ID)
		}
	}
	o := list[0]
	msg := fmt.Sprintf("%s already has appointment %s from %s to %s, which overlaps %s to %s",
		who, o.ID, o.StartsAt.UTC().Format(time.RFC3339), o.EndsAt.UTC().Format(time.RFC3339),
		a.StartsAt.UTC().Format(time.RFC3339), a.EndsAt.UTC().Format(time.RFC3339))
	if n := len(ids) - 1; n > 0 {
		msg += fmt.Sprintf(" (and %d more: see conflicts)", n)
	}
	return Conflict(field, msg, ids...)
}

// ArchivedPatient is the 409 for rescheduling or checking in an
// appointment of an archived patient. A new booking or queue entry naming
// an archived patient answers 404, as GET /patients/{id} does.
func ArchivedPatient(p *Patient) *Error {
	return Conflict("patient_id", fmt.Sprintf("patient %s is archived and takes no bookings or check-ins", p.ID))
}

// humanDuration renders d as "15 minutes", "1 hour", "90 seconds".
func humanDuration(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprint(n, " ", one, "s")
	}
	switch {
	case d <= 0:
		return "0 minutes"
	case d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return unit(int64(d/time.Minute), "minute")
	case d%time.Second == 0:
		return unit(int64(d/time.Second), "second")
	}
	return d.String()
}

// Appointment is a booked slot of a patient with a doctor.
type Appointment struct {
	Meta
	PatientID string            `json:"patient_id" gorm:"not null"`
	DoctorID  string            `json:"doctor_id" gorm:"not null"`
	StartsAt  time.Time         `json:"starts_at" gorm:"not null"`
	EndsAt    time.Time         `json:"ends_at" gorm:"not null"`
	Reason    string            `json:"reason" gorm:"not null"`
	Status    AppointmentStatus `json:"status" gorm:"not null"`
}

func (*Appointment) Entity() string    { return EntityAppointment }
func (a *Appointment) Patient() string { return a.PatientID }

// Validate checks the fields a client sets.
func (a *Appointment) Validate() error {
	var v Validation
	checkRef(&v, "patient_id", EntityPatient, a.PatientID, true)
	checkRef(&v, "doctor_id", EntityDoctor, a.DoctorID, true)
	if a.StartsAt.IsZero() {
		v.Add("starts_at", "is required")
	}
	if a.EndsAt.IsZero() {
		v.Add("ends_at", "is required")
	}
	// RFC 3339 allows offsets that put a time outside years 0001–9999 in
	// UTC, which no JSON envelope of the log can carry.
	for _, f := range []struct {
		name string
		t    time.Time
	}{{"starts_at", a.StartsAt}, {"ends_at", a.EndsAt}} {
		if y := f.t.UTC().Year(); !f.t.IsZero() && (y < 1 || y > 9999) {
			v.Add(f.name, "must be a time between the years 0001 and 9999 in UTC")
		}
	}
	switch {
	case a.StartsAt.IsZero() || a.EndsAt.IsZero():
	case !a.EndsAt.After(a.StartsAt):
		v.Add("ends_at", "must be after starts_at")
	case a.EndsAt.Sub(a.StartsAt) < MinAppointmentLength:
		v.Add("ends_at", "must be at least one minute after starts_at")
	case a.EndsAt.Sub(a.StartsAt) > MaxAppointmentLength:
		v.Add("ends_at", "must be within 24 hours of starts_at")
	}
	checkFreeText(&v, "reason", a.Reason, MaxTextLen, false)
	a.StartsAt, a.EndsAt = Timestamp(a.StartsAt), Timestamp(a.EndsAt)
	return v.Err()
}

// CheckInWindow is how near its start an appointment of another day may be
// checked in: a patient who arrives at 23:50 for 00:10 is not sent away.
const CheckInWindow = 3 * time.Hour

// CheckIn refuses (ECONFLICT naming status) checking the appointment in at
// now unless it is on the clinic's day of now (in loc, CLINIC_TIMEZONE) or
// starts within CheckInWindow of now. Checking in queues the patient for
// today, so next week's appointment checked in today would put the patient
// in today's queue and leave next week's slot looking kept.
func (a *Appointment) CheckIn(now time.Time, loc *time.Location) error {
	today, day := now.In(loc).Format(time.DateOnly), a.StartsAt.In(loc).Format(time.DateOnly)
	if d := a.StartsAt.Sub(now); day == today || (d <= CheckInWindow && d >= -CheckInWindow) {
		return nil
	}
	return Conflict("status", "appointment "+a.ID+" is on "+day+", not today ("+today+"); check it in on its day (or within 3 hours of its start), or reschedule it first", a.ID)
}

// Transition moves the appointment to status to, or answers ECONFLICT.
func (a *Appointment) Transition(to AppointmentStatus) error {
	if !appointmentMoves.known(to) {
		return Invalid("status", "unknown appointment status")
	}
	if !appointmentMoves.allowed(a.Status, to) {
		return transitionError("appointment", a.Status, to)
	}
	a.Status = to
	return nil
}

// AdvanceTo walks the forward path up to status to, for cross-entity rules.
// It reports whether the status changed; an appointment already past to,
// or off the path (cancelled, no-show), is left alone.
func (a *Appointment) AdvanceTo(to AppointmentStatus) bool {
	return advance(appointmentPath, &a.Status, to)
}

// Terminal reports whether no move is left.
func (a *Appointment) Terminal() bool { return len(appointmentMoves[a.Status]) == 0 }

// Reschedules reports whether the update moves a's slot.
func (u *AppointmentUpdate) Reschedules(a *Appointment) bool {
	return (u.StartsAt != nil && !Timestamp(*u.StartsAt).Equal(a.StartsAt)) ||
		(u.EndsAt != nil && !Timestamp(*u.EndsAt).Equal(a.EndsAt))
}

// AppointmentUpdate is a partial update of an appointment.
type AppointmentUpdate struct {
	StartsAt *time.Time         `json:"starts_at"`
	EndsAt   *time.Time         `json:"ends_at"`
	Reason   *string            `json:"reason"`
	Status   *AppointmentStatus `json:"status"`
}

// Apply applies the update to a and validates the result.
func (u *AppointmentUpdate) Apply(a *Appointment) error {
	if u.Reschedules(a) && a.Status != AppointmentScheduled {
		return Errorf(ECONFLICT, "a %s appointment cannot be rescheduled", a.Status)
	}
	set(&a.StartsAt, u.StartsAt)
	set(&a.EndsAt, u.EndsAt)
	set(&a.Reason, u.Reason)
	if err := a.Validate(); err != nil {
		return err
	}
	if u.Status != nil && *u.Status != a.Status {
		return a.Transition(*u.Status)
	}
	return nil
}

// advance moves *cur along path up to to, if cur is on the path before to.
func advance[S comparable](path []S, cur *S, to S) bool {
	ci, ti := -1, -1
	for i, s := range path {
		if s == *cur {
			ci = i
		}
		if s == to {
			ti = i
		}
	}
	if ci < 0 || ti <= ci {
		return false
	}
	*cur = to
	return true
}
