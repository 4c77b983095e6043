package models

import "time"

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

// MaxAppointmentLength bounds ends_at - starts_at.
const MaxAppointmentLength = 24 * time.Hour

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
	switch {
	case a.StartsAt.IsZero() || a.EndsAt.IsZero():
	case !a.EndsAt.After(a.StartsAt):
		v.Add("ends_at", "must be after starts_at")
	case a.EndsAt.Sub(a.StartsAt) > MaxAppointmentLength:
		v.Add("ends_at", "must be within 24 hours of starts_at")
	}
	checkFreeText(&v, "reason", a.Reason, MaxTextLen, false)
	a.StartsAt, a.EndsAt = Timestamp(a.StartsAt), Timestamp(a.EndsAt)
	return v.Err()
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

// AppointmentUpdate is a partial update of an appointment.
type AppointmentUpdate struct {
	StartsAt *time.Time         `json:"starts_at"`
	EndsAt   *time.Time         `json:"ends_at"`
	Reason   *string            `json:"reason"`
	Status   *AppointmentStatus `json:"status"`
}

// Apply applies the update to a and validates the result.
func (u *AppointmentUpdate) Apply(a *Appointment) error {
	if (u.StartsAt != nil || u.EndsAt != nil) && a.Status != AppointmentScheduled {
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
