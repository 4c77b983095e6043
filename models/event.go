package models

import (
	"encoding/json"
	"strings"
	"time"
)

// Entity names, as they appear in event envelopes, topics and URLs.
const (
	EntityPatient      = "patients"
	EntityDoctor       = "doctors"
	EntityAppointment  = "appointments"
	EntityQueue        = "queue"
	EntityVisit        = "visits"
	EntityPrescription = "prescriptions"
	EntityInvoice      = "invoices"
	// EntityBoard carries the anonymous waiting-room board of one doctor
	// (event type "queue.board"); the "queue" topic includes it.
	EntityBoard = "board"
)

// Entities lists the seven resources in a stable order.
var Entities = []string{EntityPatient, EntityDoctor, EntityAppointment, EntityQueue, EntityVisit, EntityPrescription, EntityInvoice}

// Event operations.
const (
	OpCreated = "created"
	OpUpdated = "updated"
	OpDeleted = "deleted"
	OpBoard   = "board"
)

// Event is one entry of a tenant's change log, and the envelope sent on the
// stream and in poll responses alike.
type Event struct {
	Seq     int64           `json:"seq"`
	Type    string          `json:"type"`
	Entity  string          `json:"entity"`
	ID      string          `json:"id"`
	Version int64           `json:"version"`
	At      time.Time       `json:"at"`
	Actor   string          `json:"actor"`
	Data    json.RawMessage `json:"data"`

	// TenantID and PatientID scope the event; they are not part of the
	// envelope. PatientID names the patient the record is about ("" for
	// records that concern no single patient, such as doctors).
	TenantID  string `json:"-"`
	PatientID string `json:"-"`
}

// EventType returns the envelope type of an operation on an entity:
// "queue.updated", "appointments.created", "queue.board".
func EventType(entity, op string) string {
	if entity == EntityBoard {
		return EntityQueue + "." + OpBoard
	}
	return entity + "." + op
}

// topicOrder is the canonical order of topic names.
var topicOrder = append(append([]string{}, Entities...), EntityBoard, EntityWebhook)

// Topics is a set of entity names an audience asked for; nil means all.
type Topics map[string]bool

// ParseTopics parses a comma-separated topic list. Unknown names are an
// EINVALID error naming the "topics" parameter.
func ParseTopics(s string) (Topics, error) {
	if s == "" {
		return nil, nil
	}
	t := Topics{}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if !knownEntity(name) && name != EntityBoard && name != EntityWebhook {
			return nil, Invalid("topics", "unknown topic "+quoteShort(name))
		}
		t[name] = true
		if name == EntityQueue {
			t[EntityBoard] = true
		}
	}
	return t, nil
}

// Key returns the topics in canonical order, for ETags and cache keys.
func (t Topics) Key() string {
	if t == nil {
		return "*"
	}
	var parts []string
	for _, e := range topicOrder {
		if t[e] {
			parts = append(parts, e)
		}
	}
	return strings.Join(parts, ",")
}

// List returns the entity names of t, nil for all.
func (t Topics) List() []string {
	if t == nil {
		return nil
	}
	var out []string
	for _, e := range topicOrder {
		if t[e] {
			out = append(out, e)
		}
	}
	return out
}

// Reach is how much of one entity's events a scope sees.
type Reach int

// The reaches of a scope over an entity.
const (
	ReachNone Reach = iota // none of them
	ReachOwn               // those about the scope's patient (Event.PatientID)
	ReachAll               // all of them
)

// Reach returns how much of the entity's events (and records) the scope
// sees. Every audience sees the anonymous board; staff see everything; a
// display sees nothing else; a patient sees their own records and the
// doctor directory (name, specialty, room: the clinic's public directory,
// which the board shows too), and nothing about other patients.
func (s Scope) Reach(entity string) Reach {
	switch {
	case entity == EntityBoard:
		return ReachAll
	case entity == EntityWebhook && !s.SeesActors():
		// Subscriptions are the tenant's administration: staff only.
		return ReachNone
	case s.BoardOnly:
		return ReachNone
	case s.PatientID != "":
		if entity == EntityDoctor {
			return ReachAll
		}
		return ReachOwn
	}
	return ReachAll
}

// Visible reports whether an audience with this scope and topics sees e
// (see Reach).
func (s Scope) Visible(e *Event, topics Topics) bool {
	if topics != nil && !topics[e.Entity] {
		return false
	}
	switch s.Reach(e.Entity) {
	case ReachAll:
		return true
	case ReachOwn:
		return e.PatientID != "" && e.PatientID == s.PatientID
	}
	return false
}

func knownEntity(name string) bool {
	for _, e := range Entities {
		if e == name {
			return true
		}
	}
	return false
}

func quoteShort(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// EventQuery selects events of one tenant's log.
type EventQuery struct {
	TenantID string
	After    int64 // events with seq > After
	Until    int64 // and seq <= Until, when > 0
	Limit    int
	Scope    Scope
	Topics   Topics
}

// EventPage is a poll's answer: events after a cursor and the new cursor.
type EventPage struct {
	Events []Event `json:"events"`
	Cursor int64   `json:"cursor"`
	// Position is Cursor with the tag of the event at it ("11.k3f9a2q1",
	// see Position), or the plain seq when that event is no longer in the
	// log. A client that polls with since=<position> learns of a restored
	// database (410) instead of resuming in another history of the log.
	Position string `json:"position"`
	HasMore  bool   `json:"has_more"`
}

// SeesActors reports whether the audience is staff, who see who made each
// change. Display and patient audiences do not: the board is anonymous by
// contract, and a patient learns no staff identity from an event.
func (s Scope) SeesActors() bool { return !s.BoardOnly && s.PatientID == "" }

// ForAudience returns e as the scope receives it: for display and patient
// audiences the actor is "" (the log keeps it for the staff's audit trail).
func (s Scope) ForAudience(e Event) Event {
	if !s.SeesActors() {
		e.Actor = ""
	}
	return e
}
