package main

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	r3 "github.com/r3labs/sse/v2"
)

// peerEnv names the library ("r3labs") the loadgen binary serves the
// streams with, as the peer server of -peer, instead of running as the load
// generator; it listens on $ADDR.
const peerEnv = "LOADGEN_PEER_SERVER"

// peerModes are the -peer values and their rows' modes.
var peerModes = map[string]string{"r3labs": "r3labs/sse v2.10.0"}

// peerServe is the bare server's counterpart on a peer library as people
// deploy it: net/http serving the server side of github.com/r3labs/sse/v2.
// A patient POST is answered at once and its name handed to one goroutine
// that publishes the event (the bare server's frame: ID the seq, Event
// patients.created, Data the JSON line) to stream "t", which every
// subscriber to patients follows; other subscribers follow stream "o",
// which gets nothing.
func peerServe(ln net.Listener) error {
	s := r3.New()
	s.AutoReplay = false // its replay rewrites the ids and keeps every event
	s.AutoStream = false
	s.CreateStream("t")
	s.CreateStream("o")
	fan := make(chan string, 1024)
	go func() {
		seq := int64(1) // the doctor's event was 1, as in the real server
		for name := range fan {
			seq++
			s.Publish("t", &r3.Event{ID: strconv.AppendInt(nil, seq, 10),
				Event: []byte("patients.created"), Data: appendBareData(nil, seq, name)})
		}
	}()
	mux := http.NewServeMux()
	created := func(w http.ResponseWriter) {
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "{}")
		w.(http.Flusher).Flush()
	}
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("POST /api/v1/doctors", func(w http.ResponseWriter, _ *http.Request) { created(w) })
	mux.HandleFunc("POST /api/v1/patients", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		created(w)
		if name, ok := jsonName(body); ok {
			fan <- name
		}
	})
	mux.HandleFunc("GET /api/v1/stream", func(w http.ResponseWriter, r *http.Request) {
		q := "stream=o"
		if strings.Contains(r.URL.Query().Get("topics"), "patients") {
			q = "stream=t"
		}
		r = r.Clone(r.Context())
		r.URL.RawQuery = q
		s.ServeHTTP(w, r)
	})
	return http.Serve(ln, mux)
}
