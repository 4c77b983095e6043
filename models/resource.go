package models

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ListQuery selects a page of a resource's list, or its changes since a cursor.
type ListQuery struct {
	Limit int    // 1..MaxLimit
	After string // the id after which the page starts
	Since int64  // > 0: only records changed after this seq (a delta)
	// Filters holds equality filters by field name (as in Resource.Filters);
	// "date" filters appointments by day and queue entries by day.
	Filters map[string]string
	// Search, for a list that takes ?q=, selects the records it finds.
	Search *Search
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
	// Search reports whether the list takes ?q= (a search, see
	// ParseSearch).
	Search bool
}

// ListParams are the query parameters every list knows besides its
// filters: the page (limit, after), the delta (since), the poll (wait,
// stream), a platform token's tenant (tenant_id) and "_", the cache-buster
// some HTTP clients add.
var ListParams = []string{"limit", "after", "since", "wait", "stream", "tenant_id", "_"}

// KnowsParam reports whether the resource's list takes the query parameter.
func (r *Resource) KnowsParam(name string) bool {
	if _, ok := r.Filters[name]; ok {
		return true
	}
	return slices.Contains(ListParams, name) || (r.Search && name == "q")
}

// CheckParams refuses query parameters that known does not know: a typo
// (?doctorId=, ?name=) must not silently answer the unfiltered list. The
// EINVALID error names every unknown parameter, in name order, each cut
// to 64 characters (a name that is not UTF-8 text is named "query").
func CheckParams(v url.Values, known func(string) bool) error {
	var names []string
	for k := range v {
		if !known(k) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var val Validation
	for _, k := range names {
		if !utf8.ValidString(k) || strings.IndexByte(k, 0) >= 0 {
			k = "query"
		} else if utf8.RuneCountInString(k) > 64 {
			k = string([]rune(k)[:64]) + "…"
		}
		val.Add(k, "is not a known query parameter")
		if len(val) == 20 {
			break
		}
	}
	return val.Err()
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
		Filters: map[string]func(string) bool{"mrn": isShort}, Deletable: true, Search: true,
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

// CursorContextKey is the request-context key (in Echo's context) under which
// a list handler leaves its snapshot's cursor.
const CursorContextKey = "clinicpulse.cursor"
