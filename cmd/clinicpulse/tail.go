package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/clinicpulse/clinicpulse/sse"
)

const tailUsage = `usage: clinicpulse tail --url URL [--token JWT] [--since N] [--topics a,b] [--tenant-id T]

Follows a tenant's event stream and prints one JSON envelope per line on
standard output. It resumes by itself after a dropped connection, a server
restart or a stream time limit, from the last event it printed. When the
cursor cannot be resumed (older than retention, or ahead of a restored
database) it prints {"type":"reset","reason":…,"cursor":N}: refetch your
snapshots, then carry on.

The token may come from CLINICPULSE_TOKEN instead of --token (it then stays
out of the process list).
`

// runTail follows a stream: clinicpulse tail --url … --token … [--since N].
func runTail(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := tail(ctx, args, os.Stdout, os.Stderr)
	if errors.Is(err, context.Canceled) || errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func tail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, tailUsage) }
	base := fs.String("url", "", "the server's base URL, or the stream's URL")
	token := fs.String("token", "", "a JWT (default: $CLINICPULSE_TOKEN)")
	since := fs.String("since", "", "resume after this seq")
	topics := fs.String("topics", "", "only these entities (comma-separated)")
	tenant := fs.String("tenant-id", "", "the tenant, for a platform token")
	quiet := fs.Bool("quiet", false, "no reconnection notes on standard error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *token == "" {
		*token = os.Getenv("CLINICPULSE_TOKEN")
	}
	if *base == "" || *token == "" {
		fs.Usage()
		return errors.New("--url and a token (--token or CLINICPULSE_TOKEN) are required")
	}
	if *since != "" && !validCursor(*since) {
		return errors.New("--since must be a cursor: a sequence number such as 42, or an event id the server sent")
	}
	u, err := streamURL(*base, *topics, *tenant)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(stdout)
	note := func(format string, a ...any) {
		if !*quiet {
			fmt.Fprintf(stderr, "clinicpulse tail: "+format+"\n", a...)
		}
	}
	cfg := sse.ClientConfig{
		URL: u, Token: *token, LastEventID: *since,
		OnDrop: func(err error) {
			if err != nil {
				note("connection lost (%v); resuming", err)
			} else {
				note("stream ended by the server; resuming")
			}
		},
	}
	return sse.Follow(ctx, cfg, func(m sse.Message) error {
		line := m.Data
		if m.Type == sse.ResetEvent {
			var r sse.Reset
			_ = json.Unmarshal(m.Data, &r)
			note("cursor reset (%s): refetch snapshots; continuing from %d", r.Reason, r.Cursor)
			line, _ = json.Marshal(map[string]any{"type": sse.ResetEvent, "reason": r.Reason, "cursor": r.Cursor})
		}
		out.Write(line)
		out.WriteByte('\n')
		return out.Flush()
	})
}

// validCursor reports whether s can be sent as Last-Event-ID: 1 to 128
// visible ASCII characters. The server judges the rest (a cursor it cannot
// resume gets a reset).
func validCursor(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// streamURL turns a base URL (http://host:8080) or a stream URL into the
// stream's URL with its query.
func streamURL(base, topics, tenant string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--url: want http(s)://host[:port], got %q", base)
	}
	if !strings.HasSuffix(u.Path, "/api/v1/stream") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v1/stream"
	}
	q := u.Query()
	if topics != "" {
		q.Set("topics", topics)
	}
	if tenant != "" {
		q.Set("tenant_id", tenant)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}
