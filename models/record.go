package models

import (
	"crypto/rand"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Field limits of the contract. Names and short fields count characters
// (Unicode code points); only free text counts bytes, of UTF-8.
const (
	MaxNameLen = 200      // characters in a name, and in a prescription item's fields
	MaxTextLen = 64 << 10 // bytes in a free-text field: 65,536
	maxShort   = 64       // characters in a phone, MRN or room
	maxItems   = 200      // prescription items or invoice lines per record
)

// Meta is what every record carries: its id, tenant, version and times.
type Meta struct {
	ID        string     `json:"id" gorm:"primaryKey"`
	TenantID  string     `json:"-" gorm:"not null"`
	Version   int64      `json:"version" gorm:"not null"`
	CreatedAt time.Time  `json:"created_at" gorm:"not null;autoCreateTime:false"`
	UpdatedAt time.Time  `json:"updated_at" gorm:"not null;autoUpdateTime:false"`
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
}

// Base returns the record's metadata.
func (m *Meta) Base() *Meta { return m }

// Touch stamps a change: version+1 and updated_at (and created_at, id and
// tenant on first save).
func (m *Meta) Touch(tenantID, prefix string, now time.Time) {
	now = Timestamp(now)
	if m.ID == "" || m.Version == 0 {
		m.ID = NewID(prefix)
		m.TenantID = tenantID
		m.CreatedAt = now
		m.Version = 0
		m.DeletedAt = nil
	}
	m.Version++
	m.UpdatedAt = now
}

// Record is implemented by the seven resources.
type Record interface {
	Base() *Meta
	// Entity is the resource name: "patients", "queue", …
	Entity() string
	// Patient is the id of the patient the record concerns, "" for none.
	Patient() string
}

// Timestamp normalises a time as the databases keep it: UTC, microseconds.
func Timestamp(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// IDPrefix returns the id prefix of an entity's records.
func IDPrefix(entity string) string {
	switch entity {
	case EntityPatient:
		return "pat"
	case EntityDoctor:
		return "doc"
	case EntityAppointment:
		return "apt"
	case EntityQueue:
		return "q"
	case EntityVisit:
		return "vis"
	case EntityPrescription:
		return "rx"
	case EntityInvoice:
		return "inv"
	case EntityWebhook:
		return "wh"
	}
	return "x"
}

const idAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// NewID returns a random id with the prefix: "q_9f3k…" (20 characters, 100 bits).
func NewID(prefix string) string {
	var b [20]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = idAlphabet[b[i]&31]
	}
	return prefix + "_" + string(b[:])
}

// ValidID reports whether s has the shape of an id of the entity; anything
// else cannot name a record and answers 404 without a query.
func ValidID(entity, s string) bool {
	p := IDPrefix(entity) + "_"
	if !strings.HasPrefix(s, p) || len(s) != len(p)+20 {
		return false
	}
	for _, c := range s[len(p):] {
		if !strings.ContainsRune(idAlphabet, c) {
			return false
		}
	}
	return true
}

// checkLine validates a single-line field (a name, phone, MRN, room, a
// prescription item's drug or dose): valid UTF-8 without control characters
// (U+0000–U+001F, U+007F–U+009F: no NUL, tab or line break), at most
// maxChars characters (Unicode code points, not bytes: 200 × "王" is 600
// bytes and fits), and not blank if required.
func checkLine(v *Validation, field, s string, maxChars int, required bool) {
	switch {
	case !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0:
		v.Add(field, "must be valid UTF-8 text without control characters (such as NUL, tab or a line break)")
	case strings.IndexFunc(s, hidden) >= 0:
		v.Add(field, "must not hold format, invisible or line-separator characters (such as U+202E, U+200B or U+2028)")
	case utf8.RuneCountInString(s) > maxChars:
		v.Add(field, "is too long: at most "+strconv.Itoa(maxChars)+" characters")
	case required && strings.TrimSpace(s) == "":
		v.Add(field, "is required")
	}
}

// hidden reports the characters a single-line field refuses besides
// controls, by Unicode property (UAX #44), so that a name shows as what it
// is and two names that look equal are equal:
//   - format characters (General_Category Cf): the bidirectional controls
//     (U+202A–U+202E, U+2066–U+2069, U+200E/U+200F, U+061C), which can make
//     a name display as another ("Trojan Source", CVE-2021-42574), and the
//     invisible U+200B, U+2060–U+2064, U+FEFF, U+00AD, U+180E,
//     U+206A–U+206F, U+FFF9–U+FFFB, tag characters (U+E0001, U+E0020–U+E007F)
//     — except U+200C/U+200D (ZWNJ/ZWJ), which Persian and Indic names and
//     emoji sequences need;
//   - line and paragraph separators (Zl, Zp: U+2028, U+2029), which end a
//     line in JavaScript and many viewers;
//   - the other default-ignorable characters (Other_Default_Ignorable_Code_Point:
//     the Hangul fillers U+115F, U+1160, U+3164, U+FFA0, which make a name
//     look blank, U+034F, U+17B4, U+17B5, …).
//
// Variation selectors (U+FE00–U+FE0F, in emoji) stay.
func hidden(r rune) bool {
	if r == 0x200C || r == 0x200D {
		return false
	}
	return unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point)
}

// checkFreeText validates a free-text field (notes, a reason, a specialty,
// a line's description): valid UTF-8 without NUL (line breaks and tabs are
// text here), at most maxBytes bytes of UTF-8, and not blank if required.
func checkFreeText(v *Validation, field, s string, maxBytes int, required bool) {
	switch {
	case !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0:
		v.Add(field, "must be valid UTF-8 text without NUL characters")
	case len(s) > maxBytes:
		v.Add(field, "is too long: at most "+strconv.Itoa(maxBytes)+" bytes of UTF-8")
	case required && strings.TrimSpace(s) == "":
		v.Add(field, "is required")
	}
}

// ValidLine reports whether s is valid UTF-8 without control characters or
// the hidden ones (format, invisible, line separators: see hidden) and at
// most maxChars characters long: what checkLine accepts, for query
// parameters, headers and a token's sub.
func ValidLine(s string, maxChars int) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0 && strings.IndexFunc(s, hidden) < 0 &&
		utf8.RuneCountInString(s) <= maxChars
}

// checkRef validates a reference to another record by id.
func checkRef(v *Validation, field, entity, id string, required bool) {
	switch {
	case id == "" && required:
		v.Add(field, "is required")
	case id != "" && !ValidID(entity, id):
		v.Add(field, "is not a valid id")
	}
}

// transitions is a state machine: the statuses each status may move to.
type transitions[S ~string] map[S][]S

func (t transitions[S]) allowed(from, to S) bool {
	for _, s := range t[from] {
		if s == to {
			return true
		}
	}
	return false
}

func (t transitions[S]) known(s S) bool {
	_, ok := t[s]
	return ok
}

// transitionError is the 409 for a move the table does not allow.
func transitionError[S ~string](entity string, from, to S) error {
	return Errorf(ECONFLICT, "%s cannot move from %s to %s", entity, from, to)
}
