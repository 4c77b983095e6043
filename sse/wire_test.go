package sse

import (
	"strconv"
	"strings"
)

// WireEvent is an event as a WHATWG-conformant client dispatches it.
type WireEvent struct {
	LastEventID string
	Type        string
	Data        string
}

// WirePosition is a frame that set the last event ID without dispatching
// an event (an id field and no data), and how many events came before it.
type WirePosition struct {
	LastEventID string
	After       int
}

// WireParser interprets an event stream as the WHATWG HTML standard says
// (§9.2.6 "Interpreting an event stream"). The tests hold our frames to it.
type WireParser struct {
	Events    []WireEvent
	Positions []WirePosition
	Comments  []string
	Retry     int64 // -1 until a valid retry field

	frameID bool // the frame being read has an id field

	data    strings.Builder
	hasData bool
	typ     string
	idBuf   string
	pending []byte // bytes after the last line terminator
	lastCR  bool   // the previous chunk ended with CR (a CRLF may span chunks)
}

// NewWireParser returns a parser with no retry yet.
func NewWireParser() *WireParser { return &WireParser{Retry: -1} }

// Feed parses a chunk of the stream.
func (p *WireParser) Feed(b []byte) {
	for _, c := range b {
		if p.lastCR {
			p.lastCR = false
			if c == '\n' {
				continue // the LF of a CRLF
			}
		}
		switch c {
		case '\r':
			p.lastCR = true
			p.line(string(p.pending))
			p.pending = p.pending[:0]
		case '\n':
			p.line(string(p.pending))
			p.pending = p.pending[:0]
		default:
			p.pending = append(p.pending, c)
		}
	}
}

// Pending reports whether bytes or an event are waiting for a line end
// or a blank line (an incomplete frame).
func (p *WireParser) Pending() bool { return len(p.pending) > 0 || p.hasData || p.typ != "" }

func (p *WireParser) line(l string) {
	if l == "" {
		p.dispatch()
		return
	}
	if l[0] == ':' {
		p.Comments = append(p.Comments, strings.TrimPrefix(l[1:], " "))
		return
	}
	field, value, ok := strings.Cut(l, ":")
	if ok {
		value = strings.TrimPrefix(value, " ")
	}
	switch field {
	case "event":
		p.typ = value
	case "data":
		p.data.WriteString(value)
		p.data.WriteByte('\n')
		p.hasData = true
	case "id":
		if !strings.ContainsRune(value, 0) {
			p.idBuf = value
			p.frameID = true
		}
	case "retry":
		if n, err := strconv.ParseInt(value, 10, 64); err == nil && value != "" && strings.Trim(value, "0123456789") == "" {
			p.Retry = n
		}
	}
}

func (p *WireParser) dispatch() {
	frameID := p.frameID
	p.frameID = false
	if !p.hasData {
		// The last event ID is set all the same (§9.2.6, dispatch step 1).
		if frameID {
			p.Positions = append(p.Positions, WirePosition{LastEventID: p.idBuf, After: len(p.Events)})
		}
		p.data.Reset()
		p.typ = ""
		return
	}
	d := strings.TrimSuffix(p.data.String(), "\n")
	t := p.typ
	if t == "" {
		t = "message"
	}
	p.Events = append(p.Events, WireEvent{LastEventID: p.idBuf, Type: t, Data: d})
	p.data.Reset()
	p.hasData = false
	p.typ = ""
}
