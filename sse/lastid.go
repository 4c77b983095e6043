package sse

import (
	"bytes"
	"io"
	"sync"
)

// positionReader follows a stream's bytes on their way to the r3labs
// parser and remembers the frames that only set the last event ID (an id
// field and no data: AppendID), which that parser cannot tell from a frame
// cut short by a broken connection. Per WHATWG HTML §9.2.6 a field takes
// effect only at the blank line that ends its frame, so a frame cut short
// never moves the position here.
//
// Lines are read as the standard says (LF, CR or CRLF); only "id" lines
// are kept, up to maxIDLine bytes (ours are a decimal seq): a longer one is
// not a position this client resumes from, and ignoring it costs nothing
// but a longer replay.
type positionReader struct {
	io.ReadCloser

	mu sync.Mutex
	// id is the id of the last complete id-only frame, and after how many
	// complete frames with data it came; set tells whether there was one.
	id        string
	dataCount int64
	set       bool

	// The frame being read.
	line     []byte // the current line, while it may be an id field
	long     bool   // the current line is not one (or too long)
	lastCR   bool   // the previous byte ended a line with CR
	frameID  []byte // the frame's id field, if any
	hasID    bool
	hasData  bool
	complete int64 // complete frames with data so far
}

const maxIDLine = 64

func (p *positionReader) Read(b []byte) (int, error) {
	n, err := p.ReadCloser.Read(b)
	p.mu.Lock()
	for _, c := range b[:n] {
		p.feed(c)
	}
	p.mu.Unlock()
	return n, err
}

func (p *positionReader) feed(c byte) {
	if p.lastCR {
		p.lastCR = false
		if c == '\n' {
			return // the LF of a CRLF
		}
	}
	switch c {
	case '\r', '\n':
		p.lastCR = c == '\r'
		p.endLine()
	default:
		if !p.long {
			if len(p.line) >= maxIDLine {
				p.long = true
			} else {
				p.line = append(p.line, c)
			}
		}
	}
}

// endLine handles a complete line: a field, or the blank line that ends a
// frame.
func (p *positionReader) endLine() {
	line, long := p.line, p.long
	p.line, p.long = p.line[:0], false
	if len(line) == 0 && !long {
		switch {
		case p.hasData:
			p.complete++
		case p.hasID:
			p.id, p.dataCount, p.set = string(p.frameID), p.complete, true
		}
		p.frameID, p.hasID, p.hasData = p.frameID[:0], false, false
		return
	}
	if len(line) >= 4 && string(line[:4]) == "data" && (len(line) == 4 || line[4] == ':') {
		p.hasData = true
		return
	}
	if long || len(line) < 2 || string(line[:2]) != "id" || (len(line) > 2 && line[2] != ':') {
		return // another field, a comment, or an id this client does not keep
	}
	v := line[min(len(line), 3):]
	if len(v) > 0 && v[0] == ' ' {
		v = v[1:]
	}
	if bytes.IndexByte(v, 0) >= 0 {
		return // WHATWG: an id with NULL is ignored
	}
	p.frameID, p.hasID = append(p.frameID[:0], v...), true
}

// position returns the id of the last complete id-only frame and how many
// complete frames with data came before it; ok is false if there was none.
func (p *positionReader) position() (id string, after int64, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.id, p.dataCount, p.set
}
