package sse

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// FuzzPositionReader holds positionReader to the WHATWG parser of the
// tests (WireParser): whatever the bytes and however they are cut into
// reads, the last frame that set the last event ID without data, and how
// many events came before it, are the same (id lines of maxIDLine bytes
// or more are not kept, by design).
func FuzzPositionReader(f *testing.F) {
	for _, s := range []string{
		"retry: 1000\n\nid: 42\n\n",
		"id: 1\nevent: x\ndata: {}\n\nid: 2\n\n: heartbeat\n\n",
		"id: 7\r\n\r\nid: 8\rdata\r\r",
		"id: 5\n\nid: 6\nevent: e\ndata: {\"partial",
		"id:9\n\nid\n\nid: a\x00b\n\n",
		"data: x\nid: 3\n\n",
	} {
		f.Add([]byte(s), uint16(3))
	}
	f.Fuzz(func(t *testing.T, b []byte, cut uint16) {
		for _, l := range strings.FieldsFunc(string(b), func(r rune) bool { return r == '\r' || r == '\n' }) {
			if strings.HasPrefix(l, "id") && len(l) >= maxIDLine {
				return
			}
		}
		want := NewWireParser()
		want.Feed(b)
		p := &positionReader{ReadCloser: io.NopCloser(bytes.NewReader(b))}
		k := int(cut) % (len(b) + 1)
		buf := make([]byte, max(k, 1))
		for {
			n, err := p.Read(buf)
			if err != nil || n == 0 && len(buf) == 0 {
				break
			}
			buf = make([]byte, len(b)+1)
		}
		id, after, ok := p.position()
		if len(want.Positions) == 0 {
			if ok {
				t.Fatalf("%q: position %q after %d, want none", b, id, after)
			}
			return
		}
		w := want.Positions[len(want.Positions)-1]
		if !ok || id != w.LastEventID || after != int64(w.After) {
			t.Fatalf("%q: position %q after %d (%v), want %q after %d", b, id, after, ok, w.LastEventID, w.After)
		}
	})
}
