package models

import (
	"fmt"
	"strconv"
)

// Doctor is a clinician who takes a queue. Deleting archives it: an
// archived doctor keeps their records but takes no booking, check-in, queue
// entry or visit, and leaves the boards.
type Doctor struct {
	Meta
	Name      string `json:"name" gorm:"not null"`
	Specialty string `json:"specialty" gorm:"not null"`
	Room      string `json:"room" gorm:"not null"`
	// DefaultConsultMinutes is this doctor's usual consultation, the prior
	// of the wait estimate (see ConsultMinutes); 0 takes the clinic's.
	DefaultConsultMinutes int `json:"default_consult_minutes" gorm:"not null"`
}

func (*Doctor) Entity() string  { return EntityDoctor }
func (*Doctor) Patient() string { return "" }

// Validate checks the fields a client sets.
func (d *Doctor) Validate() error {
	var v Validation
	checkLine(&v, "name", d.Name, MaxNameLen, true)
	checkFreeText(&v, "specialty", d.Specialty, MaxTextLen, false)
	checkLine(&v, "room", d.Room, maxShort, false)
	if d.DefaultConsultMinutes < 0 || d.DefaultConsultMinutes > MaxConsultMinutes {
		v.Add("default_consult_minutes", "must be from 1 to "+strconv.Itoa(MaxConsultMinutes)+" minutes, or 0 for the clinic's default")
	}
	return v.Err()
}

// ConsultDefault returns the doctor's default consultation in minutes:
// their own, else clinic (the configured default), else
// DefaultConsultMinutes.
func (d *Doctor) ConsultDefault(clinic int) int {
	switch {
	case d != nil && d.DefaultConsultMinutes > 0:
		return d.DefaultConsultMinutes
	case clinic > 0:
		return clinic
	}
	return DefaultConsultMinutes
}

// Archived reports whether the doctor was archived (deleted).
func (d *Doctor) Archived() bool { return d.DeletedAt != nil }

// ArchivedDoctor is the 409 for work given to an archived doctor through a
// record that still names them (checking in or rescheduling one of their
// appointments, opening a visit). A new record naming an archived doctor
// answers 404, as GET /doctors/{id} does.
func ArchivedDoctor(d *Doctor) *Error {
	return Conflict("doctor_id", fmt.Sprintf("%s (%s) is archived and takes no bookings, check-ins, queue entries or visits", d.Name, d.ID))
}

// DoctorUpdate is a partial update of a doctor.
type DoctorUpdate struct {
	Name                  *string `json:"name"`
	Specialty             *string `json:"specialty"`
	Room                  *string `json:"room"`
	DefaultConsultMinutes *int    `json:"default_consult_minutes"`
}

// Apply applies the update to d and validates the result.
func (u *DoctorUpdate) Apply(d *Doctor) error {
	set(&d.Name, u.Name)
	set(&d.Specialty, u.Specialty)
	set(&d.Room, u.Room)
	set(&d.DefaultConsultMinutes, u.DefaultConsultMinutes)
	return d.Validate()
}

// ArchiveBlockers is the 409 for archiving a doctor or a patient (named
// name) who still has work: active queue entries today (entries),
// appointments that hold a slot and have not ended (appointments) and open
// visits (visits). Their ids go in Conflicts, in that order, at most
// MaxConflicts; the message gives the counts. It returns nil when all three
// are empty.
func ArchiveBlockers(name string, entries, appointments, visits []string, entryCount, appointmentCount, visitCount int64) error {
	if entryCount == 0 && appointmentCount == 0 && visitCount == 0 {
		return nil
	}
	msg := fmt.Sprintf("%s still has %d active queue %s today, %d upcoming %s and %d open %s; complete, cancel or mark them no-show, and close the visits, first",
		name, entryCount, plural(entryCount, "entry", "entries"), appointmentCount, plural(appointmentCount, "appointment", "appointments"),
		visitCount, plural(visitCount, "visit", "visits"))
	ids := append(append(append([]string{}, entries...), appointments...), visits...)
	return Conflict("", msg, ids[:min(len(ids), MaxConflicts)]...)
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
