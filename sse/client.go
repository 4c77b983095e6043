package sse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	r3 "github.com/r3labs/sse/v2"
	backoff "gopkg.in/cenkalti/backoff.v1"
)

// Message is one event a client received.
type Message struct {
	ID   string // the event's seq (or a reset's cursor)
	Type string // the envelope's type, or ResetEvent
	Data []byte // one JSON value: the envelope, or a Reset
}

// ClientConfig configures Follow.
type ClientConfig struct {
	// URL is the stream's URL, query included (topics, tenant_id).
	URL string
	// Token is sent as "Authorization: Bearer …".
	Token string
	// Header holds more request headers.
	Header http.Header
	// LastEventID resumes after this cursor; "" starts live (or where
	// the URL's ?since= says).
	LastEventID string
	// HTTPClient defaults to a client without a timeout (a stream has no
	// end).
	HTTPClient *http.Client
	// MinBackoff and MaxBackoff bound the wait before a reconnection
	// (500 ms and 30 s by default); the wait doubles, with jitter, while
	// connections fail and starts over after one succeeds.
	MinBackoff, MaxBackoff time.Duration
	// OnConnect is called when a connection is answered 200; OnDrop when
	// it ends, with its error (nil for a clean end).
	OnConnect func()
	OnDrop    func(err error)
}

// StatusError is a response other than 200 to a stream request.
type StatusError struct {
	Status int
	Body   string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("stream: %d %s: %s", e.Status, http.StatusText(e.Status), e.Body)
}

// permanent reports whether retrying cannot help: bad credentials, a
// forbidden or unknown stream, a bad query.
func (e *StatusError) permanent() bool {
	switch e.Status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return true
	}
	return false
}

// Follow reads a stream until ctx ends, handle returns an error, or the
// server refuses the request in a way retrying cannot fix (400, 401, 403,
// 404: a *StatusError). It is github.com/r3labs/sse/v2's client, wrapped
// where that one falls short (see doc.go):
//   - it reconnects after a clean end of the response (a time limit, a
//     server shutting down), where r3labs returns;
//   - it never gives up (r3labs stops 15 minutes after its first connect)
//     and its backoff waits end with ctx (r3labs sleeps through them);
//   - heartbeats, retry: lines and other frames without an event are not
//     handed on (r3labs delivers them as empty events);
//   - on every reconnection it sends, as Last-Event-ID, the id of the last
//     event handed on, or of a later position frame (an id field alone,
//     which r3labs cannot tell from a frame cut short), never one r3labs
//     took from a frame cut short by a broken connection.
//
// Events are handed on as the server sent them: Follow drops no duplicate
// and fills no gap, which is the server's promise to keep.
func Follow(ctx context.Context, cfg ClientConfig, handle func(Message) error) error {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	c := r3.NewClient(cfg.URL)
	c.Connection = cfg.HTTPClient
	// One attempt per call: the loop below decides when to try again.
	c.ReconnectStrategy = &backoff.StopBackOff{}
	if cfg.Token != "" {
		c.Headers["Authorization"] = "Bearer " + cfg.Token
	}
	for k, vs := range cfg.Header {
		if len(vs) > 0 {
			c.Headers[k] = vs[0]
		}
	}
	connected := false
	var pos *positionReader // the connection's id-only frames
	c.ResponseValidator = func(_ *r3.Client, res *http.Response) error {
		if res.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
			res.Body.Close()
			return &StatusError{Status: res.StatusCode, Body: strings.TrimSpace(string(b))}
		}
		pos = &positionReader{ReadCloser: res.Body}
		res.Body = pos
		connected = true
		if cfg.OnConnect != nil {
			cfg.OnConnect()
		}
		return nil
	}

	last := cfg.LastEventID
	failures := 0
	for {
		// What r3labs took from the last connection (a frame cut short
		// too) is not sent: only last, or no Last-Event-ID at all.
		c.LastEventID.Store([]byte(nil))
		if last != "" {
			c.LastEventID.Store([]byte(last))
		}
		connected, pos = false, nil
		var retry time.Duration
		var handleErr error
		handed := int64(0) // complete frames with data, as positionReader counts them
		cctx, cancel := context.WithCancel(ctx)
		err := c.SubscribeWithContext(cctx, "", func(ev *r3.Event) {
			if len(ev.Retry) > 0 {
				if ms, err := strconv.Atoi(string(ev.Retry)); err == nil && ms >= 0 {
					retry = time.Duration(ms) * time.Millisecond
				}
			}
			if handleErr != nil || len(ev.Data) == 0 {
				return // heartbeat, retry: or id: line
			}
			if !json.Valid(ev.Data) {
				return // cut short by a broken connection: it comes again
			}
			handed++
			if len(ev.Event) == 0 {
				return // a frame without an event
			}
			m := Message{ID: string(ev.ID), Type: string(ev.Event), Data: ev.Data}
			last = m.ID
			if err := handle(m); err != nil {
				handleErr = err
				cancel()
			}
		})
		cancel()
		// A position the server gave after the last event handed on (an
		// id-only frame: a fresh stream's start, or a replay its scope
		// filtered) is where to resume; one after a frame this client did
		// not hand on (too long, malformed) is not.
		if pos != nil {
			if id, after, ok := pos.position(); ok && after == handed {
				last = id
			}
		}
		if handleErr != nil {
			return handleErr
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var se *StatusError
		if errors.As(err, &se) && se.permanent() {
			return err
		}
		if cfg.OnDrop != nil {
			cfg.OnDrop(err)
		}
		var wait time.Duration
		switch {
		case connected && err == nil && retry > 0:
			// A clean end: the server said when to come back.
			failures, wait = 0, min(retry, cfg.MaxBackoff)
		case connected:
			failures, wait = 0, cfg.MinBackoff
		default:
			failures++
			wait = backoffDelay(cfg.MinBackoff, cfg.MaxBackoff, failures)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// backoffDelay is min·2^(n-1), capped at max, with "equal jitter": half
// fixed, half random.
func backoffDelay(lo, hi time.Duration, n int) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}
