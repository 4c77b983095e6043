package sse

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/clinicpulse/clinicpulse/models"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Golden compares got with testdata/name, or rewrites it with -update.
func Golden(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update if the change is intended)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func fixedEvents() []models.Event {
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	return []models.Event{
		{Seq: 1, Type: "doctors.created", Entity: "doctors", ID: "doc_1", Version: 1, At: at, Actor: "coordinator-1",
			Data: json.RawMessage(`{"id":"doc_1","name":"Dr. A \"Ada\" <Lovelace>","specialty":"line one\nline two\r\nthree"}`), TenantID: "t1"},
		{Seq: 2, Type: "queue.board", Entity: "board", ID: "doc_1", Version: 2, At: at, Actor: "coordinator-1",
			Data: json.RawMessage(`{"doctor_id":"doc_1","now_serving":null,"called":[],"waiting":[1],"waiting_count":1}`), TenantID: "t1"},
		{Seq: 3, Type: "patients.deleted", Entity: "patients", ID: "pat_1", Version: 4, At: at, Actor: "admin-1",
			Data: nil, TenantID: "t1", PatientID: "pat_1"},
		{Seq: 4, Type: "visits.updated", Entity: "visits", ID: "vis_1", Version: 2, At: at, Actor: "doctor-1",
			Data: json.RawMessage("{\n  \"notes\": \"pretty\u2028printed\",\r\n  \"n\": 1\n}"), TenantID: "t1", PatientID: "pat_1"},
	}
}

// TestFramesGolden pins the wire format of frames, comments, retry and
// reset lines.
func TestFramesGolden(t *testing.T) {
	var b []byte
	b = AppendRetry(b, 3000)
	for _, e := range fixedEvents() {
		var err error
		if b, err = AppendEvent(b, &e); err != nil {
			t.Fatal(err)
		}
	}
	b = AppendComment(b, "heartbeat")
	b = AppendReset(b, ResetExpired, models.Position{Seq: 42, Tag: "0123abcv"})
	b = AppendComment(b, "stream time limit; reconnect")
	Golden(t, "frames.golden", b)

	p := NewWireParser()
	p.Feed(b)
	if p.Pending() || p.Retry != 3000 || len(p.Events) != 5 || len(p.Comments) != 2 {
		t.Fatalf("parsed %+v", p)
	}
	for i, e := range fixedEvents() {
		w := p.Events[i]
		var got models.Event
		if err := json.Unmarshal([]byte(w.Data), &got); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if w.LastEventID != models.EventPosition(&e).String() || w.Type != e.Type || got.Seq != e.Seq || got.ID != e.ID {
			t.Errorf("event %d: %+v", i, w)
		}
	}
	if r := p.Events[4]; r.Type != ResetEvent || r.LastEventID != "42.0123abcv" || r.Data != `{"reason":"expired","cursor":42}` {
		t.Errorf("reset: %+v", r)
	}
}

// TestAppendEventInvalidData: data that is not JSON (never written by the
// store) is sent as null rather than breaking the frame or losing the seq.
func TestAppendEventInvalidData(t *testing.T) {
	e := models.Event{Seq: 7, Type: "x.updated", Data: json.RawMessage("{\n\"bad")}
	b, err := AppendEvent(nil, &e)
	if err == nil {
		t.Fatal("no error")
	}
	p := NewWireParser()
	p.Feed(b)
	if len(p.Events) != 1 || p.Events[0].LastEventID != models.EventPosition(&e).String() || !strings.Contains(p.Events[0].Data, `"data":null`) {
		t.Fatalf("%q → %+v", b, p.Events)
	}
}

// FuzzFrame proves the framing: whatever the type and data, a frame is
// exactly one event with our id, its type and data intact unless they held
// a CR or LF (then those become spaces, which keeps valid JSON valid and
// equal), with no CR on the wire and nothing before or after it. Then the
// same for a whole envelope: what a client parses decodes to the event.
func FuzzFrame(f *testing.F) {
	f.Add(int64(1), "queue.updated", []byte(`{"a":1}`), "q_1", "actor")
	f.Add(int64(0), "", []byte(""), "", "")
	f.Add(int64(42), "x\ry", []byte("\r"), "a\rid: 9", "\n\nevent: evil")
	f.Add(int64(-5), "event: a\n\ndata: b", []byte(":comment\r\nid: 7\n\ndata: x"), "\u2028", "\x00")
	f.Add(int64(9), "t", []byte("{\r\n \"a\" :\r[1,\n2]\n}\r"), "é", "\xff\xfe")
	f.Fuzz(func(t *testing.T, id int64, typ string, data []byte, entityID, actor string) {
		frame := AppendFrame(nil, models.Position{Seq: id}, typ, data)
		if bytes.IndexByte(frame, '\r') >= 0 {
			t.Fatalf("CR on the wire: %q", frame)
		}
		if n := bytes.Count(frame, []byte("\n")); n != 4 || !bytes.HasSuffix(frame, []byte("\n\n")) {
			t.Fatalf("%d line ends, want 3 lines and a blank one: %q", n, frame)
		}
		p := NewWireParser()
		p.Feed(frame)
		if p.Pending() || len(p.Comments) != 0 || p.Retry != -1 || len(p.Events) != 1 {
			t.Fatalf("frame %q parsed as %+v", frame, p)
		}
		ev := p.Events[0]
		wantType := strings.NewReplacer("\r", " ", "\n", " ").Replace(typ)
		if wantType == "" {
			wantType = "message"
		}
		wantData := string(bytes.NewBuffer(bytes.Map(func(r rune) rune {
			if r == '\r' || r == '\n' {
				return ' '
			}
			return r
		}, data)).Bytes())
		if !utf8.Valid(data) {
			// bytes.Map rewrites invalid bytes; compare raw instead.
			wantData = string(bytes.ReplaceAll(bytes.ReplaceAll(data, []byte("\r"), []byte(" ")), []byte("\n"), []byte(" ")))
		}
		if ev.LastEventID != strconv.FormatInt(id, 10) || ev.Type != wantType || ev.Data != wantData {
			t.Fatalf("frame %q parsed as %+v", frame, ev)
		}
		if json.Valid(data) {
			var a, b any
			if json.Unmarshal(data, &a) != nil || json.Unmarshal([]byte(ev.Data), &b) != nil || !reflect.DeepEqual(a, b) {
				t.Fatalf("valid JSON %q changed meaning: %q", data, ev.Data)
			}
		}

		// A whole envelope, with arbitrary strings and data.
		e := models.Event{Seq: id, Type: typ, Entity: "visits", ID: entityID, Version: id, At: time.Unix(0, id).UTC(), Actor: actor}
		if json.Valid(data) {
			e.Data = data
		} else {
			e.Data, _ = json.Marshal(string(data))
		}
		fb, err := AppendEvent(nil, &e)
		if err != nil {
			t.Fatal(err)
		}
		p = NewWireParser()
		p.Feed(fb)
		if p.Pending() || len(p.Events) != 1 || bytes.IndexByte(fb, '\r') >= 0 || bytes.Count(fb, []byte("\n")) != 4 {
			t.Fatalf("envelope frame %q parsed as %+v", fb, p)
		}
		var got models.Event
		if err := json.Unmarshal([]byte(p.Events[0].Data), &got); err != nil {
			t.Fatalf("envelope data %q: %v", p.Events[0].Data, err)
		}
		// What json.Marshal sends (invalid UTF-8 becomes U+FFFD) is what
		// the client must decode.
		sent, _ := json.Marshal(&e)
		var want models.Event
		if err := json.Unmarshal(sent, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(want, got) || p.Events[0].LastEventID != models.EventPosition(&e).String() {
			t.Fatalf("envelope round trip: sent %s, got %+v", sent, got)
		}
	})
}

// BenchmarkAppendEvent: the cost of an event's frame with its tagged id (a
// SHA-256 of ~60 bytes, once per batch and audience form, never per
// subscriber) beside the same frame with a plain seq id.
func BenchmarkAppendEvent(b *testing.B) {
	e := fixedEvents()[0]
	j, err := json.Marshal(&e)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 4096)
	b.Run("tagged", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf, _ = AppendEvent(buf[:0], &e)
		}
	})
	b.Run("plain-id", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			j, _ := json.Marshal(&e)
			buf = AppendFrame(buf[:0], models.Position{Seq: e.Seq}, e.Type, j)
		}
	})
	_ = j
}
