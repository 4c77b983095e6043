package sse

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/clinicpulse/clinicpulse/models"
)

// The wire format (WHATWG HTML, "Server-sent events", §9.2.5–9.2.6): a
// line ends at LF, CR or CRLF; a blank line dispatches the event; a line
// starting with ':' is a comment. One stray CR or LF inside a value would
// end the field and start another one ("id:", "event:", "retry:"), so
// nothing a caller passes may put one on the wire.

// AppendFrame appends one event frame to dst:
//
//	id: <id>
//	event: <typ>
//	data: <data>
//	<blank line>
//
// id is the client's position after the event: "<seq>" or "<seq>.<tag>"
// (models.Position); a client sends it back as Last-Event-ID.
//
// Framing holds whatever the input: a CR or LF in typ or data is written as
// a space. data is meant to be JSON, where a raw line break can only be
// insignificant whitespace between tokens (inside a string it must be
// escaped), so the substitution keeps valid JSON valid and equal in meaning.
// json.Marshal never emits one, so for our envelopes it never fires.
func AppendFrame(dst []byte, id models.Position, typ string, data []byte) []byte {
	dst = append(dst, "id: "...)
	dst = appendPosition(dst, id)
	dst = append(dst, "\nevent: "...)
	dst = appendLine(dst, typ)
	dst = append(dst, "\ndata: "...)
	dst = appendLine(dst, data)
	return append(dst, "\n\n"...)
}

// appendLine appends s with every CR and LF replaced by a space.
func appendLine[T ~string | ~[]byte](dst []byte, s T) []byte {
	start := len(dst)
	dst = append(dst, s...)
	tail := dst[start:]
	for {
		i := bytes.IndexAny(tail, "\r\n")
		if i < 0 {
			return dst
		}
		tail[i] = ' '
		tail = tail[i+1:]
	}
}

// AppendComment appends a comment line and a blank line. Comments are
// ignored by clients; they keep proxies and load balancers from timing out
// an idle connection and let a client notice a dead one.
func AppendComment(dst []byte, text string) []byte {
	dst = append(dst, ": "...)
	dst = appendLine(dst, text)
	return append(dst, "\n\n"...)
}

// AppendRetry appends the reconnection delay a client should wait after
// the connection ends.
func AppendRetry(dst []byte, ms int64) []byte {
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, ms, 10)
	return append(dst, "\n\n"...)
}

// AppendID appends a frame that only sets the client's last event ID:
//
//	id: <id>
//	<blank line>
//
// WHATWG HTML §9.2.6: the blank line sets the last event ID to the id
// buffer and, the data buffer being empty, dispatches no event. A client
// that reconnects after it sends id as Last-Event-ID.
func AppendID(dst []byte, id models.Position) []byte {
	dst = append(dst, "id: "...)
	dst = appendPosition(dst, id)
	return append(dst, "\n\n"...)
}

// appendPosition appends p as Position.String does, without allocating.
// A tag holds only [0-9a-v] (ParsePosition and EventTag see to it).
func appendPosition(dst []byte, p models.Position) []byte {
	dst = strconv.AppendInt(dst, p.Seq, 10)
	if p.Tag != "" {
		dst = append(dst, '.')
		dst = appendLine(dst, p.Tag)
	}
	return dst
}

// AppendEvent appends the frame of an envelope: id is its position (seq and
// tag, models.EventPosition), event its type, data its JSON on one line. Data that is not valid JSON (which the
// store never writes) cannot be sent as is: the frame then carries
// "data": null and the error says so, so that the seq is still delivered
// and the gap-free promise holds.
func AppendEvent(dst []byte, e *models.Event) ([]byte, error) {
	j, err := json.Marshal(e)
	if err != nil {
		c := *e
		c.Data = nil
		j, _ = json.Marshal(&c)
		err = fmt.Errorf("sse: encode event %d: %w", e.Seq, err)
	}
	dst = append(dst, "id: "...)
	dst = strconv.AppendInt(dst, e.Seq, 10)
	dst = append(dst, '.')
	dst = models.AppendEventTag(dst, e)
	dst = append(dst, "\nevent: "...)
	dst = appendLine(dst, e.Type)
	dst = append(dst, "\ndata: "...)
	dst = appendLine(dst, j)
	return append(dst, "\n\n"...), err
}

// Reset reasons, in the data of an "event: reset" frame.
const (
	ResetInvalid = "invalid" // the cursor is not a sequence number
	ResetExpired = "expired" // older than the retained log
	ResetAhead   = "ahead"   // ahead of the log (a restored database)
	// ResetHistory: the cursor's tag names an event this log does not have
	// at that seq (the database was restored from a backup, or the cursor
	// came from another deployment).
	ResetHistory = "history"
)

// ResetEvent is the type of the frame telling a client its cursor cannot be
// resumed: it must refetch its snapshots, then carry on from Cursor.
const ResetEvent = "reset"

// Reset is the data of a reset frame: why, and the seq the stream goes on
// from.
type Reset struct {
	Reason string `json:"reason"`
	Cursor int64  `json:"cursor"`
}

// AppendReset appends a reset frame. Its id is the position the stream
// continues from, so a client that reconnects after it resumes there.
func AppendReset(dst []byte, reason string, p models.Position) []byte {
	j, _ := json.Marshal(Reset{Reason: reason, Cursor: p.Seq})
	return AppendFrame(dst, p, ResetEvent, j)
}
