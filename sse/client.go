package sse

import (
	"bufio"
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
	// MaxFrame is the longest frame (its lines, without the blank line
	// ending it) Follow reads, in bytes; 0 means DefaultMaxFrame.
	MaxFrame int
}

// DefaultMaxFrame bounds a frame Follow reads: 16 MiB, well above the
// largest the server sends. That is about 6 MiB: a frame carries one
// record, whose free text arrives in one request body of at most 1 MiB
// (api.MaxBody; fields of 64 KiB, lists replaced whole), and JSON writes
// each of "<", ">" and "&" as six bytes ("\u003c"). An invoice of 16 lines
// of "<" is that frame (cmd/clinicpulse TestTailFrameAtServerMaximum).
// r3labs' reader would stop at 64 KiB, and the reconnection at the same
// cursor met the same frame for ever (issue 11, item 3).
const DefaultMaxFrame = 16 << 20

// tooLargeLimit is how many connections in a row may end on a frame over
// MaxFrame at one cursor before Follow gives up with a *FrameTooLargeError:
// the frame comes again on each resumption.
const tooLargeLimit = 3

// FrameTooLargeError is a frame longer than ClientConfig.MaxFrame.
type FrameTooLargeError struct {
	Limit int    // ClientConfig.MaxFrame
	After string // the last event ID before the frame ("" for none)
}

func (e *FrameTooLargeError) Error() string {
	after := "at the start of the stream"
	if e.After != "" {
		after = "after event " + e.After
	}
	return fmt.Sprintf("sse: a frame %s is longer than %d bytes (ClientConfig.MaxFrame)", after, e.Limit)
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
//     event handed on, or of a frame with only an id (WHATWG HTML: it sets
//     the last event ID without dispatching an event; the server sends one
//     so that a client that has seen no event has a cursor), and never
//     one r3labs took from a frame cut short by a broken connection;
//   - it reads frames up to MaxFrame (r3labs: 64 KiB); a longer one ends
//     the connection with a *FrameTooLargeError, reported to OnDrop, and
//     after tooLargeLimit connections in a row at one cursor Follow
//     returns it rather than meet it again for ever.
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
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = DefaultMaxFrame
	}
	// +2: bufio.Scanner fails once its buffer reaches the bound, and a
	// frame's token excludes the blank line after it.
	c := r3.NewClient(cfg.URL, r3.ClientMaxBufferSize(cfg.MaxFrame+2))
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
	c.ResponseValidator = func(_ *r3.Client, res *http.Response) error {
		if res.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
			res.Body.Close()
			return &StatusError{Status: res.StatusCode, Body: strings.TrimSpace(string(b))}
		}
		// r3labs reads res.Body after this returns.
		res.Body = &frameEnds{ReadCloser: res.Body}
		connected = true
		if cfg.OnConnect != nil {
			cfg.OnConnect()
		}
		return nil
	}

	last := cfg.LastEventID
	failures, tooLarge, tooLargeAt := 0, 0, ""
	for {
		// Follow keeps the cursor; r3labs' own (taken from any frame) is
		// replaced on each connection. nil sends no Last-Event-ID.
		if last != "" {
			c.LastEventID.Store([]byte(last))
		} else {
			c.LastEventID.Store([]byte(nil))
		}
		connected = false
		var retry time.Duration
		var handleErr error
		cctx, cancel := context.WithCancel(ctx)
		err := c.SubscribeWithContext(cctx, "", func(ev *r3.Event) {
			if string(ev.Event) == cutEvent {
				return // the rest of a body that ended inside a frame
			}
			if len(ev.Retry) > 0 {
				if ms, err := strconv.Atoi(string(ev.Retry)); err == nil && ms >= 0 {
					retry = time.Duration(ms) * time.Millisecond
				}
			}
			if handleErr != nil {
				return
			}
			if len(ev.Event) == 0 && len(ev.Data) == 0 {
				// No event: a retry: line, or the stream's position given
				// by an id: line alone (a frame cut short is marked by
				// frameEnds and dropped above). r3labs copies the last id
				// into a frame without one: that is last already.
				if len(ev.ID) > 0 {
					last = string(ev.ID)
				}
				return
			}
			if len(ev.Event) == 0 || len(ev.Data) == 0 {
				return // a frame without an event
			}
			if !json.Valid(ev.Data) {
				return // not JSON: not one of ours; its id is not a cursor
			}
			m := Message{ID: string(ev.ID), Type: string(ev.Event), Data: ev.Data}
			last = m.ID
			if err := handle(m); err != nil {
				handleErr = err
				cancel()
			}
		})
		cancel()
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
		big := errors.Is(err, bufio.ErrTooLong)
		if big {
			err = &FrameTooLargeError{Limit: cfg.MaxFrame, After: last}
			if tooLarge == 0 || tooLargeAt != last {
				tooLarge, tooLargeAt = 0, last
			}
			if tooLarge++; tooLarge >= tooLargeLimit {
				return err
			}
		} else if connected {
			tooLarge = 0
		}
		if cfg.OnDrop != nil {
			cfg.OnDrop(err)
		}
		var wait time.Duration
		switch {
		case big:
			failures++
			wait = backoffDelay(cfg.MinBackoff, cfg.MaxBackoff, failures)
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

// cutEvent is the event name frameEnds gives the rest of a body cut inside
// a frame; no server sends it.
const cutEvent = "\x00cut"

// frameEnds marks the end of a stream's body inside a frame. r3labs hands
// on whatever follows the last blank line when a body ends, as if it were
// a frame; WHATWG HTML dispatches no such frame. Cut inside event 95's
// frame, "id: 9" would pass for a frame with only an id, and a partial
// "data:" for an event. So when the body does not end on a blank line
// (LF LF, CR CR, LF CR LF: the ends r3labs splits at), frameEnds adds an
// "event:" line naming cutEvent and a blank line before it reports the
// end: the rest then arrives as one frame of that event, which Follow drops.
type frameEnds struct {
	io.ReadCloser
	tail    [3]byte // the last bytes read, most recent last
	n       int     // bytes read, up to 3
	pending []byte  // the marking frame still to hand out
	err     error   // the body's end, reported after pending
}

func (f *frameEnds) Read(p []byte) (int, error) {
	if f.err != nil {
		if len(f.pending) == 0 || len(p) == 0 {
			return 0, f.err
		}
		n := copy(p, f.pending)
		f.pending = f.pending[n:]
		return n, nil
	}
	n, err := f.ReadCloser.Read(p)
	for _, b := range p[max(0, n-3):n] {
		f.tail[0], f.tail[1], f.tail[2] = f.tail[1], f.tail[2], b
		f.n = min(f.n+1, 3)
	}
	if err == nil {
		return n, nil
	}
	f.err = err
	if f.n > 0 && !f.onBlankLine() {
		if isEOL(f.tail[2]) {
			f.pending = []byte("event: " + cutEvent + "\n\n")
		} else {
			f.pending = []byte("\nevent: " + cutEvent + "\n\n")
		}
	}
	if n > 0 {
		return n, nil
	}
	return f.Read(p)
}

// onBlankLine reports whether the bytes read end with a blank line.
func (f *frameEnds) onBlankLine() bool {
	t := f.tail
	switch {
	case f.n >= 2 && (t[1] == '\n' && t[2] == '\n' || t[1] == '\r' && t[2] == '\r'):
		return true
	case f.n == 3 && t[0] == '\n' && t[1] == '\r' && t[2] == '\n':
		return true
	}
	return false
}

func isEOL(b byte) bool { return b == '\n' || b == '\r' }

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
