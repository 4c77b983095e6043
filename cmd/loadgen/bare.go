package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// bareEnv, set to "1", makes the loadgen binary run as the bare SSE server
// of -baseline instead of as the load generator; it listens on $ADDR.
const bareEnv = "LOADGEN_BARE_SERVER"

// bareWriteTimeout bounds one frame's write to one stream.
const bareWriteTimeout = time.Second

// bareServer is the cheapest server loadgen can measure the same way as the
// real one: raw HTTP/1.1 on TCP, no auth, no JSON, no database. A patient
// POST is answered at once and its name handed to one goroutine that writes
// the event frame to every stream with a plain blocking write.
type bareServer struct {
	mu      sync.Mutex
	streams []net.Conn
	fan     chan string // the created patients' names
}

func bareServe(ln net.Listener) error {
	b := &bareServer{fan: make(chan string, 1024)}
	go b.fanOut()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return err
		}
		go b.serve(c)
	}
}

// serve answers the requests of one connection until it ends or becomes a
// stream.
func (b *bareServer) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		method, target, _ := strings.Cut(strings.TrimSpace(line), " ")
		target, _, _ = strings.Cut(target, " ")
		path, query, _ := strings.Cut(target, "?")
		length := 0
		for {
			h, err := br.ReadString('\n')
			if err != nil {
				return
			}
			h = strings.TrimSpace(h)
			if h == "" {
				break
			}
			if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(k, "Content-Length") {
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		switch {
		case method == "GET" && path == "/api/v1/stream":
			b.stream(c, strings.Contains(query, "patients"))
			return
		case method == "GET" && path == "/readyz": // startServer's readiness poll
			_, err = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		case method == "POST" && (path == "/api/v1/doctors" || path == "/api/v1/patients"):
			_, err = io.WriteString(c, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
			if name, ok := jsonName(body); ok && path == "/api/v1/patients" {
				b.fan <- name
			}
		default:
			_, err = io.WriteString(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
		}
		if err != nil {
			return
		}
	}
}

// stream starts the event stream on c and, when it is to receive the
// patients events, registers it; it returns when the client closes (or a
// failed write closes c).
func (b *bareServer) stream(c net.Conn, deliver bool) {
	const head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\nretry: 1000\n\n"
	if _, err := io.WriteString(c, head); err != nil {
		return
	}
	if deliver {
		b.mu.Lock()
		b.streams = append(b.streams, c)
		b.mu.Unlock()
		defer func() {
			b.mu.Lock()
			if i := slices.Index(b.streams, c); i >= 0 {
				last := len(b.streams) - 1
				b.streams[i], b.streams[last] = b.streams[last], nil
				b.streams = b.streams[:last]
			}
			b.mu.Unlock()
		}()
	}
	var one [1]byte
	for {
		if _, err := c.Read(one[:]); err != nil {
			return
		}
	}
}

// fanOut writes each created patient's frame to every registered stream,
// one after another.
func (b *bareServer) fanOut() {
	var frame []byte
	var conns []net.Conn
	seq := int64(1) // the doctor's event was 1, as in the real server
	for name := range b.fan {
		seq++
		frame = appendBareFrame(frame[:0], seq, name)
		b.mu.Lock()
		conns = append(conns[:0], b.streams...)
		b.mu.Unlock()
		for _, c := range conns {
			c.SetWriteDeadline(time.Now().Add(bareWriteTimeout))
			if _, err := c.Write(frame); err != nil {
				c.Close() // its reader unregisters it
			}
		}
		clear(conns)
	}
}

// appendBareFrame appends a patients.created frame shaped and sized like the
// real server's (396 bytes for seq 2, "lg-1", as is a captured real frame):
// the same envelope and record fields, with fixed ids and times.
func appendBareFrame(dst []byte, seq int64, name string) []byte {
	dst = append(dst, "id: "...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, "\nevent: patients.created\ndata: "...)
	return append(appendBareData(dst, seq, name), "\n\n"...)
}

// appendBareData appends the JSON of appendBareFrame's data line.
func appendBareData(dst []byte, seq int64, name string) []byte {
	const (
		id = `"pat_00000000000000000000"`
		at = `"2026-01-01T00:00:00.000000Z"`
	)
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"type":"patients.created","entity":"patients","id":`+id+`,"version":1,"at":`+at+
		`,"actor":"loadgen","data":{"id":`+id+`,"version":1,"created_at":`+at+`,"updated_at":`+at+`,"name":"`...)
	dst = append(dst, name...)
	return append(dst, `","date_of_birth":"","phone":"","mrn":"MRN-0000000000"}}`...)
}

// jsonName returns the "name" string of a flat JSON object without escapes
// in it, as loadgen sends.
func jsonName(body []byte) (string, bool) {
	_, rest, ok := bytes.Cut(body, []byte(`"name":`))
	if !ok {
		return "", false
	}
	rest = bytes.TrimLeft(rest, " ")
	if len(rest) == 0 || rest[0] != '"' {
		return "", false
	}
	name, _, ok := bytes.Cut(rest[1:], []byte(`"`))
	return string(name), ok
}
