package polling

import (
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/clinicpulse/clinicpulse/models"
)

// Health is the client's report of its stream (?stream=).
type Health int

// The stream health values of ?stream=.
const (
	HealthUnknown Health = iota // absent
	HealthLive                  // live: the stream works
	HealthDown                  // down: the stream does not work
)

// Query is a parsed poll request.
type Query struct {
	Since    int64  // events or changes after this seq
	SinceTag string // the tag of the event at Since ("" for a plain integer)
	HasSince bool   // since was given (a list without it is a snapshot)
	Limit    int
	Topics   models.Topics // nil: all (the events endpoint only)
	Wait     time.Duration // 0: answer at once
	Stream   Health
}

// deadline returns when a long-poll that starts now ends; zero without wait.
func (q Query) deadline() time.Time {
	if q.Wait <= 0 {
		return time.Time{}
	}
	return time.Now().Add(q.Wait)
}

// ParseQuery parses the parameters of GET /events: since, limit, topics, wait
// and stream. A parameter that does not parse, is out of range or is
// repeated is an EINVALID error naming it; so is an unknown one (a typo
// must not silently answer every topic) — except tenant_id (a platform
// token's tenant) and "_", the cache-buster some clients add.
func ParseQuery(v url.Values, maxWait time.Duration) (Query, error) {
	q, err := parseCommon(v, maxWait)
	if err != nil {
		return q, err
	}
	if err := models.CheckParams(v, eventsParam); err != nil {
		return q, err
	}
	s, ok, err := single(v, "topics")
	switch {
	case err != nil:
		return q, err
	case ok && s == "":
		return q, models.Invalid("topics", "must name at least one topic")
	case ok:
		if q.Topics, err = models.ParseTopics(s); err != nil {
			return q, err
		}
	}
	return q, nil
}

// parseListQuery parses the poll parameters of a resource list: since, limit,
// wait and stream. The list handler checks the rest (after, filters).
func parseListQuery(v url.Values, maxWait time.Duration) (Query, error) {
	return parseCommon(v, maxWait)
}

func parseCommon(v url.Values, maxWait time.Duration) (Query, error) {
	q := Query{Limit: models.DefaultLimit}
	// Every parameter, known or not, is text: valid UTF-8 without NUL
	// (%FF or %00 decode to neither). The list key, and so the ETag, hashes
	// them all; the store sees the filters.
	for k, vs := range v {
		if !text(k) {
			return q, models.Invalid("query", "parameter names must be UTF-8 text without NUL")
		}
		for _, s := range vs {
			if !text(s) {
				return q, models.Invalid(k, "must be UTF-8 text without NUL")
			}
		}
	}
	s, ok, err := single(v, "since")
	if err != nil {
		return q, err
	}
	if ok {
		if s == "" {
			return q, models.Invalid("since", `must be a sequence number, optionally with its tag ("8" or "8.k3f9a2q1")`)
		}
		pos, err := models.ParsePosition("since", s)
		if err != nil {
			return q, err
		}
		q.Since, q.SinceTag, q.HasSince = pos.Seq, pos.Tag, true
	}
	if s, ok, err = single(v, "limit"); err != nil {
		return q, err
	} else if ok {
		if s == "" {
			return q, models.Invalid("limit", "must be an integer from 1 to 1000")
		}
		if q.Limit, err = models.ParseLimit(s); err != nil {
			return q, err
		}
	}
	if s, ok, err = single(v, "wait"); err != nil {
		return q, err
	} else if ok {
		most := int64(maxWait / time.Second)
		n, perr := strconv.ParseInt(s, 10, 64)
		if perr != nil || n < 0 || n > most {
			return q, models.Invalid("wait", "must be a whole number of seconds from 0 to "+strconv.FormatInt(most, 10))
		}
		q.Wait = time.Duration(n) * time.Second
	}
	if s, ok, err = single(v, "stream"); err != nil {
		return q, err
	} else if ok {
		switch s {
		case "live":
			q.Stream = HealthLive
		case "down":
			q.Stream = HealthDown
		default:
			return q, models.Invalid("stream", `must be "live" or "down"`)
		}
	}
	return q, nil
}

// eventsParam reports whether GET /events takes the query parameter.
func eventsParam(name string) bool {
	switch name {
	case "since", "limit", "topics", "wait", "stream", "tenant_id", "_":
		return true
	}
	return false
}

func text(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// single returns the one value of a parameter, whether it was given, and an
// error when it was given more than once (which value would win is not
// obvious, so neither does).
func single(v url.Values, name string) (string, bool, error) {
	vs, ok := v[name]
	switch {
	case !ok:
		return "", false, nil
	case len(vs) != 1:
		return "", true, models.Invalid(name, "must be given at most once")
	}
	return vs[0], true, nil
}

// eventsKey is the normalised query of an events poll: everything that
// decides the body, in canonical form (not wait or stream, which do not).
func (q Query) eventsKey() string {
	var b strings.Builder
	b.Grow(48)
	b.WriteString("since=")
	b.WriteString(strconv.FormatInt(q.Since, 10))
	b.WriteString("&limit=")
	b.WriteString(strconv.Itoa(q.Limit))
	b.WriteString("&topics=")
	b.WriteString(q.Topics.Key())
	return b.String()
}

// listKey is the normalised query of a list poll: since and limit in
// canonical form, every other parameter that may decide the body (after,
// filters, pretty, …) sorted by name, and not the ones that do not (wait,
// stream, and tenant_id, which the ETag carries as the tenant).
func (q Query) listKey(v url.Values) string {
	n := url.Values{}
	for k, vs := range v {
		switch k {
		case "wait", "stream", "tenant_id", "since", "limit":
			continue
		}
		n[k] = vs
	}
	if q.HasSince {
		n.Set("since", strconv.FormatInt(q.Since, 10))
	}
	n.Set("limit", strconv.Itoa(q.Limit))
	return n.Encode()
}
