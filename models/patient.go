package models

import (
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Patient is a person the clinic sees. Deleting archives it.
type Patient struct {
	Meta
	Name        string `json:"name" gorm:"not null"`
	DateOfBirth string `json:"date_of_birth" gorm:"not null"`
	Phone       string `json:"phone" gorm:"not null"`
	MRN         string `json:"mrn" gorm:"column:mrn;not null"`
}

func (*Patient) Entity() string    { return EntityPatient }
func (p *Patient) Patient() string { return p.ID }

// Validate checks the fields a client sets.
func (p *Patient) Validate() error {
	var v Validation
	checkLine(&v, "name", p.Name, MaxNameLen, true)
	if p.DateOfBirth != "" {
		if _, err := time.Parse(time.DateOnly, p.DateOfBirth); err != nil {
			v.Add("date_of_birth", "must be a date YYYY-MM-DD")
		}
	}
	checkLine(&v, "phone", p.Phone, maxShort, false)
	checkLine(&v, "mrn", p.MRN, maxShort, false)
	return v.Err()
}

// PatientUpdate is a partial update of a patient.
type PatientUpdate struct {
	Name        *string `json:"name"`
	DateOfBirth *string `json:"date_of_birth"`
	Phone       *string `json:"phone"`
	MRN         *string `json:"mrn"`
}

// Apply applies the update to p and validates the result.
func (u *PatientUpdate) Apply(p *Patient) error {
	set(&p.Name, u.Name)
	set(&p.DateOfBirth, u.DateOfBirth)
	set(&p.Phone, u.Phone)
	set(&p.MRN, u.MRN)
	if u.MRN != nil && *u.MRN == "" {
		return Invalid("mrn", "cannot be empty")
	}
	return p.Validate()
}

func set[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

// Patient search (GET /api/v1/patients?q=). A patient is found by
//   - a prefix of each word of the query among the words of the name
//     ("mar gon" finds "María José González");
//   - the exact MRN;
//   - the trailing digits of the phone, four or more ("0100" or
//     "555-0100" find "+1 555 0100").
//
// Matching ignores case and accents: text is normalised by Fold (NFD,
// combining marks removed, NFC, Unicode case folding; golang.org/x/text).
// The store keeps the patient's SearchTokens in a token table maintained in
// the write's transaction and matches a query's tokens by exact value or by
// a byte range (prefix) on its primary-key index.

// Limits of a search query.
const (
	MaxSearchLen   = 100 // characters of q
	MaxSearchWords = 6   // words of q used for the name match
	maxTokenLen    = 40  // characters kept of a name word
	minPhoneDigits = 4
)

// Token kinds, the first byte of a search token.
const (
	tokenName  = "n:"
	tokenMRN   = "m:"
	tokenPhone = "p:" // the phone's digits, reversed: a suffix is a prefix
)

// Fold normalises text for search: no accents, case-folded ("Ñúñez" →
// "nunez", "STRASSE" and "Straße" → "strasse"). A chain holds buffers and
// state, so each call builds its own (it is not safe to share).
func Fold(s string) string {
	folder := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC, cases.Fold())
	out, _, err := transform.String(folder, s)
	if err != nil {
		return strings.ToLower(s)
	}
	return out
}

// words splits folded text into words of letters and digits.
func words(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) })
}

func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

func digits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func reverse(s string) string {
	b := []byte(s) // ASCII digits
	slices.Reverse(b)
	return string(b)
}

// SearchTokens returns the tokens the store indexes the patient under,
// distinct: its name words, its MRN and its phone digits reversed.
func (p *Patient) SearchTokens() []string {
	var out []string
	for _, w := range words(Fold(p.Name)) {
		out = append(out, tokenName+cut(w, maxTokenLen))
	}
	if m := strings.TrimSpace(Fold(p.MRN)); m != "" {
		out = append(out, tokenMRN+cut(m, maxShort))
	}
	if d := digits(p.Phone); len(d) >= minPhoneDigits {
		out = append(out, tokenPhone+reverse(d))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Search is a parsed ?q=. A patient matches when every one of NamePrefixes
// is a prefix of one of its tokens, or its MRN token is MRN, or (Phone not
// "") its phone token starts with Phone.
type Search struct {
	NamePrefixes []string
	MRN          string
	Phone        string
}

// ParseSearch parses q: at most MaxSearchLen characters of UTF-8 text
// without control characters, with at least one letter or digit. Anything
// else is EINVALID naming q.
func ParseSearch(q string) (*Search, error) {
	switch {
	case !utf8.ValidString(q) || strings.IndexFunc(q, unicode.IsControl) >= 0:
		return nil, Invalid("q", "must be UTF-8 text without control characters")
	case utf8.RuneCountInString(q) > MaxSearchLen:
		return nil, Invalid("q", "is too long: at most "+strconv.Itoa(MaxSearchLen)+" characters")
	}
	f := Fold(q)
	ws := words(f)
	if len(ws) == 0 {
		return nil, Invalid("q", "must hold a letter or digit: part of a name, an MRN or a phone number")
	}
	s := &Search{MRN: tokenMRN + cut(strings.TrimSpace(f), maxShort)}
	for _, w := range ws[:min(len(ws), MaxSearchWords)] {
		s.NamePrefixes = append(s.NamePrefixes, tokenName+cut(w, maxTokenLen))
	}
	if strings.Trim(q, "0123456789 +-().") == "" {
		if d := digits(q); len(d) >= minPhoneDigits {
			s.Phone = tokenPhone + reverse(d)
		}
	}
	return s, nil
}

// PrefixEnd returns the least string above every string that starts with
// p, in byte (and so code point) order: p followed by U+10FFFF, the largest
// code point, which no token holds.
func PrefixEnd(p string) string { return p + "\U0010FFFF" }
