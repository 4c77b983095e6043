package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// errNotReady marks a subscriber that failed before its stream started
// (dial error, non-200, wrong content type, ...).
var errNotReady = errors.New("subscriber not ready")

// subReadBuf is a subscriber's read buffer: event lines are short, and
// longer ones are accumulated (see readLine).
const subReadBuf = 4 << 10

// headerTimeout bounds the request write and the response head read.
const headerTimeout = 30 * time.Second

var (
	dataPrefix = []byte("data:")
	namePrefix = []byte(`"name":"lg-`)
)

// subscribe follows the stream over one raw TCP connection, as a browser's
// EventSource does, and reports each patients.created event's writer number
// with its receive time. It runs on the caller's goroutine only: no
// transport, no per-connection helper goroutines. ready is incremented once
// the response head (200, text/event-stream) is read. An error wrapping
// errNotReady means the stream never started; after that, the stream ends
// when ctx ends (the connection is closed) or the server closes it.
func subscribe(ctx context.Context, addr, tok, topics string, ready *atomic.Int64, got func(n int, at time.Time)) error {
	var d net.Dialer
	return subscribeDial(ctx, func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
		addr, tok, topics, ready, got)
}

// subscribeDial is subscribe over the connection dial opens (plain TCP, or
// TLS for -proto h1-tls); addr is the Host header.
func subscribeDial(ctx context.Context, dial func(context.Context) (net.Conn, error), addr, tok, topics string,
	ready *atomic.Int64, got func(n int, at time.Time)) error {
	conn, err := dial(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", errNotReady, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer func() {
		stop()
		conn.Close()
	}()

	conn.SetDeadline(time.Now().Add(headerTimeout))
	req := "GET /api/v1/stream?topics=" + topics + " HTTP/1.1\r\n" +
		"Host: " + addr + "\r\n" +
		"Authorization: Bearer " + tok + "\r\n" +
		"Accept: text/event-stream\r\n" +
		"Cache-Control: no-cache\r\n" +
		"\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return fmt.Errorf("%w: write request: %w", errNotReady, err)
	}
	br := bufio.NewReaderSize(conn, subReadBuf)
	tp := textproto.NewReader(br)
	status, err := tp.ReadLine()
	if err != nil {
		return fmt.Errorf("%w: read status line: %w", errNotReady, err)
	}
	proto, rest, _ := strings.Cut(status, " ")
	code, _, _ := strings.Cut(rest, " ")
	if !strings.HasPrefix(proto, "HTTP/1.") {
		return fmt.Errorf("%w: malformed status line %q", errNotReady, status)
	}
	if code != "200" {
		return fmt.Errorf("%w: status %q", errNotReady, rest)
	}
	hdr, err := tp.ReadMIMEHeader()
	if err != nil {
		return fmt.Errorf("%w: read headers: %w", errNotReady, err)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(strings.TrimSpace(ct), "text/event-stream") {
		return fmt.Errorf("%w: Content-Type %q", errNotReady, ct)
	}
	body := br
	if te := hdr.Values("Transfer-Encoding"); len(te) > 0 {
		if !strings.EqualFold(strings.TrimSpace(te[len(te)-1]), "chunked") {
			return fmt.Errorf("%w: Transfer-Encoding %q", errNotReady, te)
		}
		// The chunked reader reads from br (a ByteReader, so it adds no
		// buffer of its own); the lines are read from the decoded bytes.
		body = bufio.NewReaderSize(httputil.NewChunkedReader(br), subReadBuf)
	}
	conn.SetDeadline(time.Time{})
	ready.Add(1)
	return readEvents(ctx, body, got)
}

// readEvents reads a stream's body until it ends and reports each
// patients.created event's writer number with its receive time. It returns
// nil at the end of the body or of ctx.
func readEvents(ctx context.Context, body *bufio.Reader, got func(n int, at time.Time)) error {
	var long []byte // a line longer than the buffer, accumulated
	for {
		line, err := readLine(body, &long)
		if err != nil {
			if ctx.Err() != nil || err == io.EOF {
				return nil
			}
			return err
		}
		if !bytes.HasPrefix(line, dataPrefix) {
			continue
		}
		at := time.Now()
		i := bytes.Index(line, namePrefix)
		if i < 0 {
			continue
		}
		rest := line[i+len(namePrefix):]
		j := bytes.IndexByte(rest, '"')
		if j <= 0 {
			continue
		}
		if n, err := strconv.Atoi(string(rest[:j])); err == nil && n > 0 && n < 1<<20 {
			got(n, at)
		}
	}
}

// readLine returns the next line without its "\n" or "\r\n". The result is
// valid until the next call. A line that does not fit in br's buffer is
// accumulated in *long; a line not starting with "data:" is skipped beyond
// the buffer (only its first buffer's worth is returned, which is enough to
// tell it is not a data line).
func readLine(br *bufio.Reader, long *[]byte) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		keep := bytes.HasPrefix(line, dataPrefix)
		*long = append((*long)[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = br.ReadSlice('\n')
			if keep {
				*long = append(*long, line...)
			}
		}
		if !keep {
			*long = (*long)[:min(len(*long), len(dataPrefix))]
		}
		line = *long
	}
	if err != nil && !(err == io.EOF && len(line) > 0) {
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, nil
}
