package models

import "time"

// VisitStatus is open or closed.
type VisitStatus string

// Visit statuses.
const (
	VisitOpen   VisitStatus = "open"
	VisitClosed VisitStatus = "closed"
)

var visitMoves = transitions[VisitStatus]{
	VisitOpen:   {VisitClosed},
	VisitClosed: {},
}

// Visit is a consultation, opened from a queue entry or an appointment (or
// for a patient and doctor directly).
type Visit struct {
	Meta
	PatientID     string      `json:"patient_id" gorm:"not null"`
	DoctorID      string      `json:"doctor_id" gorm:"not null"`
	QueueEntryID  *string     `json:"queue_entry_id"`
	AppointmentID *string     `json:"appointment_id"`
	Notes         string      `json:"notes" gorm:"not null"`
	Status        VisitStatus `json:"status" gorm:"not null"`
	ClosedAt      *time.Time  `json:"closed_at"`
}

func (*Visit) Entity() string    { return EntityVisit }
func (v *Visit) Patient() string { return v.PatientID }

// Validate checks the fields a client sets, naming every invalid one. A
// visit is opened from queue_entry_id, or appointment_id, or patient_id and
// doctor_id; patient and doctor may be left out when a queue entry or
// appointment names them, and an empty body asks for queue_entry_id.
func (v *Visit) Validate() error {
	var val Validation
	linked := v.QueueEntryID != nil || v.AppointmentID != nil
	if !linked && v.PatientID == "" && v.DoctorID == "" {
		// Nothing names the visit: ask for the usual way first.
		val.Add("queue_entry_id", "is required (or appointment_id, or patient_id and doctor_id for a visit without either)")
	} else {
		checkRef(&val, "patient_id", EntityPatient, v.PatientID, !linked)
		checkRef(&val, "doctor_id", EntityDoctor, v.DoctorID, !linked)
	}
	if v.QueueEntryID != nil {
		checkRef(&val, "queue_entry_id", EntityQueue, *v.QueueEntryID, true)
	}
	if v.AppointmentID != nil {
		checkRef(&val, "appointment_id", EntityAppointment, *v.AppointmentID, true)
	}
	checkFreeText(&val, "notes", v.Notes, MaxTextLen, false)
	return val.Err()
}

// Transition moves the visit to status to at now.
func (v *Visit) Transition(to VisitStatus, now time.Time) error {
	if !visitMoves.known(to) {
		return Invalid("status", "unknown visit status")
	}
	if !visitMoves.allowed(v.Status, to) {
		return transitionError("visit", v.Status, to)
	}
	v.Status = to
	if to == VisitClosed {
		t := Timestamp(now)
		v.ClosedAt = &t
	}
	return nil
}

// VisitUpdate is a partial update of a visit.
type VisitUpdate struct {
	Notes  *string      `json:"notes"`
	Status *VisitStatus `json:"status"`
}

// Apply applies the update to v at now.
func (u *VisitUpdate) Apply(v *Visit, now time.Time) error {
	if u.Notes != nil && v.Status == VisitClosed && *u.Notes != v.Notes {
		return Errorf(ECONFLICT, "a closed visit's notes cannot change")
	}
	set(&v.Notes, u.Notes)
	if err := v.Validate(); err != nil {
		return err
	}
	if u.Status != nil && *u.Status != v.Status {
		return v.Transition(*u.Status, now)
	}
	return nil
}
