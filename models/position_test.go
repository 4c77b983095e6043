package models

import (
	"strings"
	"testing"
	"time"
)

func TestParsePosition(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Position
		ok   bool
	}{
		{"", Position{}, true},
		{"0", Position{}, true},
		{"8", Position{Seq: 8}, true},
		{"8.k3f9a2q1", Position{Seq: 8, Tag: "k3f9a2q1"}, true},
		{"9223372036854775807", Position{Seq: 9223372036854775807}, true},
		{"9223372036854775808", Position{}, false},
		{"-1", Position{}, false},
		{"+1", Position{}, false},
		{"08", Position{Seq: 8}, true},
		{"007.k3f9a2q1", Position{Seq: 7, Tag: "k3f9a2q1"}, true},
		{"000000000000000000000000000000001", Position{}, false},
		{"8.", Position{}, false},
		{".k3f9a2q1", Position{}, false},
		{"8.K3F9A2Q1", Position{}, false},
		{"8.k3f9a2q", Position{}, false},
		{"8.k3f9a2qz", Position{}, false},
		{"8.k3f9a2q1.x", Position{}, false},
		{" 8", Position{}, false},
		{"８", Position{}, false},
	} {
		got, err := ParsePosition("since", tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParsePosition(%q) = %+v, %v; want %+v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil {
			if e, ok := err.(*Error); !ok || e.Code != EINVALID || len(e.Fields) == 0 || e.Fields[0].Field != "since" {
				t.Errorf("ParsePosition(%q): error %v does not name the parameter", tc.in, err)
			}
		}
	}
}

func TestEventTagTellsHistoriesApart(t *testing.T) {
	at := time.Date(2026, 11, 29, 10, 0, 0, 123456000, time.UTC)
	a := Event{Seq: 8, Type: "queue.updated", ID: "q_1", Version: 3, At: at}
	b := a
	b.At = at.Add(time.Microsecond)
	if EventTag(&a) == EventTag(&b) {
		t.Fatal("two events at seq 8 committed a microsecond apart share a tag")
	}
	c := a
	c.At = at.Add(999 * time.Nanosecond) // below the log's precision
	if EventTag(&a) != EventTag(&c) {
		t.Fatal("the tag depends on sub-microsecond time, which Postgres does not keep")
	}
	p := EventPosition(&a)
	back, err := ParsePosition("since", p.String())
	if err != nil || back != p {
		t.Fatalf("round trip %q: %+v %v", p.String(), back, err)
	}
}

func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"", "8", "8.k3f9a2q1", "08", "8.", "-1", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePosition("since", s)
		if err != nil {
			return
		}
		if p.Seq < 0 {
			t.Fatalf("%q parsed to a negative seq", s)
		}
		// The rendering is canonical (no leading zeros) and parses back
		// to the same position.
		if s != "" {
			back, err := ParsePosition("since", p.String())
			if err != nil || back != p || strings.TrimLeft(s, "0") != strings.TrimLeft(p.String(), "0") {
				t.Fatalf("%q parsed to %+v which renders as %q (%+v, %v)", s, p, p.String(), back, err)
			}
		}
	})
}
