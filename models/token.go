package models

import "strconv"

// Token labels. Tokens are numbered per doctor per day (1, 2, 3, …), so one
// waiting-room screen would show several "1". A label puts the doctor's
// letter of the day before the number — A1, B1, B2 — and is what every
// screen shows; the integer token stays for clients that order by it.
//
// The rule, per tenant and day:
//
//   - A doctor gets a prefix with their first queue entry of the day and
//     keeps it all day: every entry of the doctor's day carries it (stored
//     with the entry), so a doctor added or archived at noon changes no
//     label already handed out.
//   - The prefix preferred is the one at the doctor's place in the board's
//     order (active doctors by name, then id: the first doctor A, the second
//     B); when another doctor already holds it that day, the first free one
//     in order. So two doctors never share a prefix on one day, and with a
//     steady roster the letters follow the display's cards.
//   - Prefixes are TokenLetters (A…Z without I and O, which read as 1 and
//     0 beside a number), then two letters (AA, AB, …) past the 24th doctor.
//
// Entries queued before labels existed have no prefix: their label is the
// bare number, and the doctor's later entries that day keep it so.

// TokenLetters are the letters prefixes are made of.
const TokenLetters = "ABCDEFGHJKLMNPQRSTUVWXYZ"

// TokenPrefixAt returns the n-th prefix (n ≥ 0) in order: A, B, …, Z
// (TokenLetters), then AA, AB, …, ZZ, AAA, … (bijective base 24). A
// negative n answers "".
func TokenPrefixAt(n int) string {
	if n < 0 {
		return ""
	}
	const k = len(TokenLetters)
	var b []byte
	for n++; n > 0; n = (n - 1) / k {
		b = append([]byte{TokenLetters[(n-1)%k]}, b...)
	}
	return string(b)
}

// ChooseTokenPrefix picks the prefix of a doctor's first entry of a day.
// rank is the doctor's place (0-based) among the tenant's active doctors in
// board order (name, id), or -1 when the doctor is not among them; used
// holds the prefixes other doctors already have that day ("" entries are
// ignored). It answers TokenPrefixAt(rank) when that one is free, else the
// first free prefix in order; the answer is never "" and never in used.
func ChooseTokenPrefix(rank int, used []string) string {
	taken := make(map[string]bool, len(used))
	for _, u := range used {
		taken[u] = true
	}
	if p := TokenPrefixAt(rank); p != "" && !taken[p] {
		return p
	}
	for n := 0; ; n++ {
		if p := TokenPrefixAt(n); !taken[p] {
			return p
		}
	}
}

// TokenLabel is what a screen shows for token: the prefix and the number,
// "A3"; without a prefix, the number alone, "3".
func TokenLabel(prefix string, token int) string {
	return prefix + strconv.Itoa(token)
}

// Label returns the entry's token label (token_label), computing it from
// the prefix and token when the entry has not been stored yet.
func (q *QueueEntry) Label() string {
	if q.TokenLabel != "" {
		return q.TokenLabel
	}
	return TokenLabel(q.TokenPrefix, q.Token)
}
