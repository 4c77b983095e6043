package models

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"strconv"
	"strings"
)

// Position is a client's place in a tenant's change log: the seq of the last
// event it has (everything up to Seq delivered or skipped), and optionally
// the tag of the event at Seq.
//
// A tag ties the cursor to one history of the log. Seqs alone cannot tell two
// histories apart: after a database is restored from a backup taken at head
// 3, new commits reuse seqs 4, 5, … for other events, and a client holding
// cursor 8 from before the restore would resume after 8 and never see the new
// 4–8. The stream's event ids carry the tag ("8.k3f9a2q1"); a tagged cursor
// whose tag does not match the event at its seq answers a reset (stream) or
// 410 (poll). A plain integer cursor ("8") is accepted as before, unchecked.
type Position struct {
	Seq int64
	Tag string
}

// TagLen is the length of an event tag: 8 characters of lowercase base32hex
// (40 bits of SHA-256), enough that two histories' events at one seq collide
// with probability 2⁻⁴⁰.
const TagLen = 8

// tagDigits is base32hex (RFC 4648 §7) in lowercase.
const tagDigits = "0123456789abcdefghijklmnopqrstuv"

// EventTag returns the tag of an event as read from the log: a hash of its
// seq, commit time (microseconds), type, record id and version, which two
// histories of a log never share at one seq. It is the first 40 bits of
// SHA-256(seq as 8 bytes big-endian ‖ UnixMicro(at) as 8 bytes ‖ type ‖ 0 ‖
// id ‖ 0 ‖ version in decimal), in lowercase base32hex without padding.
func EventTag(e *Event) string {
	var b [TagLen]byte
	return string(AppendEventTag(b[:0], e))
}

// AppendEventTag appends EventTag(e) to dst without allocating (for ids and
// fields of usual length).
func AppendEventTag(dst []byte, e *Event) []byte {
	var stack [128]byte
	in := binary.BigEndian.AppendUint64(stack[:0], uint64(e.Seq))
	in = binary.BigEndian.AppendUint64(in, uint64(e.At.UnixMicro()))
	in = append(in, e.Type...)
	in = append(in, 0)
	in = append(in, e.ID...)
	in = append(in, 0)
	in = strconv.AppendInt(in, e.Version, 10)
	sum := sha256.Sum256(in)
	v := uint64(sum[0])<<32 | uint64(sum[1])<<24 | uint64(sum[2])<<16 | uint64(sum[3])<<8 | uint64(sum[4])
	for i := TagLen - 1; i >= 0; i-- {
		dst = append(dst, tagDigits[(v>>(5*uint(i)))&31])
	}
	return dst
}

// EventPosition returns the position just after e: its seq and tag.
func EventPosition(e *Event) Position { return Position{Seq: e.Seq, Tag: EventTag(e)} }

// String renders the position as an SSE event id / since value: "8" or
// "8.k3f9a2q1".
func (p Position) String() string {
	s := strconv.FormatInt(p.Seq, 10)
	if p.Tag != "" {
		s += "." + p.Tag
	}
	return s
}

// ParsePosition parses a cursor from a client ("", "8" or "8.k3f9a2q1":
// a non-negative int64 in decimal, optionally a dot and TagLen characters of
// [0-9a-v]); "" is the zero position. Anything else is an EINVALID error naming the
// parameter.
func ParsePosition(name, s string) (Position, error) {
	if s == "" {
		return Position{}, nil
	}
	num, tag, tagged := strings.Cut(s, ".")
	bad := func() (Position, error) {
		return Position{}, Invalid(name, `must be a sequence number, optionally with its tag ("8" or "8.k3f9a2q1")`)
	}
	// Leading zeros are accepted ("007" is 7), as integer cursors always
	// were; the digits are bounded before they are parsed.
	if num == "" || len(num) > 32 {
		return bad()
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return bad()
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return bad()
	}
	if tagged {
		if len(tag) != TagLen {
			return bad()
		}
		for i := 0; i < len(tag); i++ {
			if c := tag[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'v') {
				return bad()
			}
		}
	}
	return Position{Seq: n, Tag: tag}, nil
}

// WritePosition is where a write left the tenant's change log: Seq is the
// seq of the last event the write appended — or, for a write that appended
// none (an Idempotency-Key replay, a change that changed nothing), the
// tenant's head when it answered, which is at or after the write's own
// events. A read at a cursor ≥ Seq reflects the write.
type WritePosition struct {
	Seq int64
	// Tag is the tag of the event at Seq (EventTag), "" when unknown.
	Tag string
}

type writePositionKey struct{}

// NewContextWithWritePosition returns a context whose writes fill in p once
// they commit.
func NewContextWithWritePosition(ctx context.Context, p *WritePosition) context.Context {
	return context.WithValue(ctx, writePositionKey{}, p)
}

// WritePositionFromContext returns the position a write should fill in.
func WritePositionFromContext(ctx context.Context) (*WritePosition, bool) {
	p, ok := ctx.Value(writePositionKey{}).(*WritePosition)
	return p, ok && p != nil
}
