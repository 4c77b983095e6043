package models

import (
	"strconv"
	"time"
)

// ListQuery selects a page of a resource's list, or its changes since a cursor.
type ListQuery struct {
	Limit int    // 1..MaxLimit
	After string // the id after which the page starts
	Since int64  // > 0: only records changed after this seq (a delta)
	// Filters holds equality filters by field name (as in Resource.Filters);
	// "date" filters appointments by day and queue entries by day.
	Filters map[string]string
}

// Limits of a list page.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Page is a list snapshot consistent with Cursor: subscribing from Cursor
// misses nothing. A delta (?since=) always carries "deleted", [] when
// nothing was deleted (Deleted is non-nil); a snapshot never does (nil).
type Page struct {
	Items   []Record `json:"items"`
	Deleted []string `json:"deleted,omitzero"`
	Next    string   `json:"next,omitempty"`
	Cursor  int64    `json:"cursor"`
}

// Resource describes one of the seven resources for the generic handlers.
type Resource struct {
	Name      string
	New       func() Record
	NewUpdate func() any
	// Filters names the query parameters a list accepts, with their check.
	Filters map[string]func(string) bool
	// Deletable reports whether DELETE is allowed at all.
	Deletable bool
}

func isID(entity string) func(string) bool {
	return func(s string) bool { return ValidID(entity, s) }
}

func isDate(s string) bool { _, err := time.Parse(time.DateOnly, s); return err == nil }

func isStatus[S ~string](t transitions[S]) func(string) bool {
	return func(s string) bool { return t.known(S(s)) }
}

func isShort(s string) bool { return ValidLine(s, maxShort) }

// Resources lists the seven resources by name.
var Resources = map[string]*Resource{
	EntityPatient: {
		Name: EntityPatient, New: func() Record { return &Patient{} }, NewUpdate: func() any { return &PatientUpdate{} },
		Filters: map[string]func(string) bool{"mrn": isShort}, Deletable: true,
	},
	EntityDoctor: {
		Name: EntityDoctor, New: func() Record { return &Doctor{} }, NewUpdate: func() any { return &DoctorUpdate{} },
		Filters: map[string]func(string) bool{}, Deletable: true,
	},
	EntityAppointment: {
		Name: EntityAppointment, New: func() Record { return &Appointment{} }, NewUpdate: func() any { return &AppointmentUpdate{} },
		Filters: map[string]func(string) bool{
			"date": isDate, "doctor_id": isID(EntityDoctor), "patient_id": isID(EntityPatient), "status": isStatus(appointmentMoves),
		},
		Deletable: true,
	},
	EntityQueue: {
		Name: EntityQueue, New: func() Record { return &QueueEntry{} }, NewUpdate: func() any { return &QueueUpdate{} },
		Filters: map[string]func(string) bool{
			"date": isDate, "doctor_id": isID(EntityDoctor), "patient_id": isID(EntityPatient), "status": isStatus(queueMoves),
		},
	},
	EntityVisit: {
		Name: EntityVisit, New: func() Record { return &Visit{} }, NewUpdate: func() any { return &VisitUpdate{} },
		Filters: map[string]func(string) bool{
			"doctor_id": isID(EntityDoctor), "patient_id": isID(EntityPatient), "status": isStatus(visitMoves),
			"queue_entry_id": isID(EntityQueue), "appointment_id": isID(EntityAppointment),
		},
	},
	EntityPrescription: {
		Name: EntityPrescription, New: func() Record { return &Prescription{} }, NewUpdate: func() any { return &PrescriptionUpdate{} },
		Filters:   map[string]func(string) bool{"visit_id": isID(EntityVisit), "patient_id": isID(EntityPatient)},
		Deletable: true,
	},
	EntityInvoice: {
		Name: EntityInvoice, New: func() Record { return &Invoice{} }, NewUpdate: func() any { return &InvoiceUpdate{} },
		Filters: map[string]func(string) bool{
			"visit_id": isID(EntityVisit), "patient_id": isID(EntityPatient), "status": isStatus(invoiceMoves),
		},
		Deletable: true,
	},
}

// ParseLimit parses a limit parameter: "" is DefaultLimit; anything else
// must be an integer in 1..MaxLimit.
func ParseLimit(s string) (int, error) {
	if s == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, Invalid("limit", "must be an integer from 1 to 1000")
	}
	return n, nil
}

// ParseCursor parses a since parameter: "" is 0; anything else must be a
// non-negative integer.
func ParseCursor(name, s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, Invalid(name, "must be a non-negative integer sequence number")
	}
	return n, nil
}

// CursorContextKey is the request-context key (in Echo's context) under which
// a list handler leaves its snapshot's cursor.
const CursorContextKey = "clinicpulse.cursor"
