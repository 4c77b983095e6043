package polling

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
)

func TestParseQuery(t *testing.T) {
	ok := []struct {
		raw  string
		want Query
	}{
		{"", Query{Limit: 100}},
		{"since=0", Query{HasSince: true, Limit: 100}},
		{"since=007&limit=5", Query{Since: 7, HasSince: true, Limit: 5}},
		{"wait=55&stream=live", Query{Limit: 100, Wait: 55 * time.Second, Stream: HealthLive}},
		{"wait=0&stream=down", Query{Limit: 100, Stream: HealthDown}},
		{"topics=queue", Query{Limit: 100, Topics: models.Topics{"queue": true, "board": true}}},
		{"_=123&tenant_id=x", Query{Limit: 100}},
	}
	for _, c := range ok {
		v, _ := url.ParseQuery(c.raw)
		q, err := ParseQuery(v, 55*time.Second)
		if err != nil {
			t.Errorf("%q: %v", c.raw, err)
			continue
		}
		if q.Since != c.want.Since || q.HasSince != c.want.HasSince || q.Limit != c.want.Limit || q.Wait != c.want.Wait || q.Stream != c.want.Stream || q.Topics.Key() != c.want.Topics.Key() {
			t.Errorf("%q: %+v, want %+v", c.raw, q, c.want)
		}
	}
	bad := map[string]string{
		"since=x": "since", "since=": "since", "since=-1": "since", "since=1&since=1": "since",
		"limit=0": "limit", "limit=1001": "limit", "limit=": "limit",
		"wait=56": "wait", "wait=-1": "wait", "wait=": "wait", "wait=1s": "wait",
		"stream=up": "stream", "stream=": "stream",
		"topics=": "topics", "topics=x": "topics", "topics=queue&topics=board": "topics",
		"topic=queue": "topic", "since=0&sinc=1": "sinc",
	}
	for raw, field := range bad {
		v, _ := url.ParseQuery(raw)
		_, err := ParseQuery(v, 55*time.Second)
		var e *models.Error
		if !errors.As(err, &e) || e.Code != models.EINVALID || len(e.Fields) != 1 || e.Fields[0].Field != field {
			t.Errorf("%q: %v, want EINVALID naming %q", raw, err, field)
		}
	}
}

// The normalised keys: equal for queries that give the same body, different
// for queries that may not.
func TestQueryKeys(t *testing.T) {
	key := func(raw string) string {
		v, _ := url.ParseQuery(raw)
		q, err := ParseQuery(v, 55*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return q.eventsKey()
	}
	same := [][2]string{
		{"since=7", "since=007&wait=5&stream=live"},
		{"", "limit=100&since=0"},
		{"topics=visits,queue", "topics=board,queue,visits"},
	}
	for _, c := range same {
		if key(c[0]) != key(c[1]) {
			t.Errorf("%q and %q: %q ≠ %q", c[0], c[1], key(c[0]), key(c[1]))
		}
	}
	for _, c := range [][2]string{{"since=7", "since=8"}, {"limit=1", "limit=2"}, {"topics=queue", ""}, {"topics=visits", "topics=invoices"}} {
		if key(c[0]) == key(c[1]) {
			t.Errorf("%q and %q share a key", c[0], c[1])
		}
	}
	lkey := func(raw string) string {
		v, _ := url.ParseQuery(raw)
		q, err := parseListQuery(v, 55*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return q.listKey(v)
	}
	if lkey("status=waiting&doctor_id=d&wait=3&stream=down&since=05") != lkey("since=5&doctor_id=d&status=waiting&limit=100") {
		t.Error("list keys of the same query differ")
	}
	for _, c := range [][2]string{{"", "since=0"}, {"after=a", "after=b"}, {"", "pretty"}, {"status=waiting", "status=called"}} {
		if lkey(c[0]) == lkey(c[1]) {
			t.Errorf("list %q and %q share a key", c[0], c[1])
		}
	}
}

// FuzzPollQuery: any query string either parses into values in range, whose
// normalised form parses back to the same query, or fails with an EINVALID
// error naming one of the poll parameters. It never panics.
func FuzzPollQuery(f *testing.F) {
	for _, s := range []string{
		"", "since=0", "since=12&limit=1000&topics=queue,visits&wait=55&stream=live", "limit=0", "wait=56",
		"since=-1", "since=9223372036854775807", "since=9223372036854775808", "topics=queue,,", "topics=%20queue",
		"stream=down&stream=down", "wait=+5", "limit=+1", "since=%00", "topics=board", "a=b&since=3", "_=%FF", "%8B=1",
	} {
		f.Add(s)
	}
	params := map[string]bool{"since": true, "limit": true, "wait": true, "stream": true, "topics": true}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseQuery(v, 55*time.Second)
		if err != nil {
			var e *models.Error
			// A poll parameter, or any parameter (or "query") that is not UTF-8 text.
			if !errors.As(err, &e) || e.Code != models.EINVALID || len(e.Fields) != 1 || !(params[e.Fields[0].Field] || v.Has(e.Fields[0].Field) || e.Fields[0].Field == "query") {
				t.Fatalf("%q: %v", raw, err)
			}
			if !strings.HasPrefix(e.Message, e.Fields[0].Field+": ") {
				t.Fatalf("%q: message %q does not name %q", raw, e.Message, e.Fields[0].Field)
			}
			return
		}
		if q.Since < 0 || q.Limit < 1 || q.Limit > models.MaxLimit || q.Wait < 0 || q.Wait > 55*time.Second || q.Wait%time.Second != 0 {
			t.Fatalf("%q: out of range: %+v", raw, q)
		}
		// The normalised key is itself a query that parses to the same key.
		v2, err := url.ParseQuery(q.eventsKey())
		if err != nil {
			t.Fatalf("%q: key %q: %v", raw, q.eventsKey(), err)
		}
		if q.Topics == nil {
			v2.Del("topics")
		}
		q2, err := ParseQuery(v2, 55*time.Second)
		if err != nil || q2.eventsKey() != q.eventsKey() {
			t.Fatalf("%q: key %q reparses to %q (%v)", raw, q.eventsKey(), q2.eventsKey(), err)
		}
		if _, err := parseListQuery(v, 55*time.Second); err != nil {
			t.Fatalf("%q: the events query parses but the list query does not: %v", raw, err)
		}
	})
}
