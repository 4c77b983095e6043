package polling

import (
	"crypto/sha256"
	"encoding/base64"
	"strconv"

	"github.com/clinicpulse/clinicpulse/models"
)

// tagger computes the strong ETags (RFC 9110 §8.8.3) of one caller's view of
// one endpoint and normalised query. The tag is a hash of everything that
// decides the body: the tenant, the endpoint, the normalised query, the
// caller's scope and role, and the log position the body reflects. Two
// responses with equal tags are byte-for-byte equal, and any commit in the
// tenant changes the tag, so If-None-Match can be answered from the
// in-memory head alone. The hash is deterministic, so instances sharing one
// database give the same tag for the same state.
type tagger struct {
	prefix []byte // tenant, endpoint, query, scope, role: fixed per request
}

func newTagger(a models.Actor, endpoint, query string) tagger {
	b := make([]byte, 0, 16+len(a.TenantID)+len(endpoint)+len(query)+len(a.Subject))
	b = append(b, "cp1\x00"...)
	b = append(b, a.TenantID...)
	b = append(b, 0)
	b = append(b, endpoint...)
	b = append(b, 0)
	b = append(b, query...)
	b = append(b, 0)
	b = append(b, a.Scope().Key()...)
	b = append(b, 0)
	b = append(b, a.Role...)
	b = append(b, 0)
	return tagger{prefix: b}
}

// at is the tag of the body that reflects the log up to head: every body
// whose content is decided by the head alone (a page with has_more false, a
// list snapshot or delta).
func (t tagger) at(head int64) string { return t.sum('h', head) }

// more is the tag of a page with has_more true that ends at seq: its body is
// decided by the query alone, whatever the head. It never equals an at() tag,
// so such a page is never answered 304 from the head.
func (t tagger) more(seq int64) string { return t.sum('m', seq) }

func (t tagger) sum(kind byte, n int64) string {
	var buf [256]byte
	b := append(buf[:0], t.prefix...)
	b = append(b, kind)
	b = strconv.AppendInt(b, n, 10)
	h := sha256.Sum256(b)
	var out [2 + 22]byte
	out[0] = '"'
	base64.RawURLEncoding.Encode(out[1:23], h[:16])
	out[23] = '"'
	return string(out[:])
}

// ifNoneMatch reports whether an If-None-Match field value matches tag, by
// the weak comparison RFC 9110 §13.1.2 prescribes for it: a W/ prefix is
// ignored. "*" matches any current representation.
func ifNoneMatch(field, tag string) bool {
	for i := 0; i < len(field); {
		switch c := field[i]; {
		case c == ' ' || c == '\t' || c == ',':
			i++
			continue
		case c == '*':
			return true
		}
		if len(field)-i >= 2 && field[i] == 'W' && field[i+1] == '/' {
			i += 2
		}
		if i >= len(field) || field[i] != '"' {
			return false // not an entity-tag: ignore the rest
		}
		end := i + 1
		for end < len(field) && field[end] != '"' {
			end++
		}
		if end >= len(field) {
			return false
		}
		if field[i:end+1] == tag {
			return true
		}
		i = end + 1
	}
	return false
}
