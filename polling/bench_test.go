package polling_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
)

// benchPollers is the number of concurrent pollers, each on its own
// keep-alive connection.
const benchPollers = 1000

// BenchmarkConditionalPoll measures 304 answers per second at 1,000
// concurrent pollers through the whole server (router, request id, log,
// auth with a real JWT, rate limit, in-memory head, ETag), side by side with
// a bare net/http handler that returns a constant 304, on the same client,
// in the same run. It reports the ratio, and the bytes on the wire of one
// idle client per minute at the 30 s and 15 s intervals.
func BenchmarkConditionalPoll(b *testing.B) {
	s := apptest.Start(b)
	admin := s.Token("bench", models.RoleAdmin, "u")
	s.Create(b, admin, "patients", map[string]any{"name": "Bench"})
	// Four tokens per poller keep each token well inside its rate limit at
	// benchmark speed, so that every answer is a 304 (checked).
	tokens := make([]string, benchPollers*4)
	for i := range tokens {
		tokens[i] = s.Token("bench", models.RoleCoordinator, fmt.Sprint("poller-", i))
	}
	cursor := head(b, s, admin)
	waitHead(b, s, admin, cursor)
	path := fmt.Sprintf("/api/v1/events?since=%d&stream=live", cursor)
	tag := s.Do(b, http.MethodGet, path, tokens[0], nil).Header.Get("ETag")

	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"AAAAAAAAAAAAAAAAAAAAAA"`)
		w.WriteHeader(http.StatusNotModified)
	}))
	defer bare.Close()

	var bareRate float64
	b.Run("bare", func(b *testing.B) {
		bareRate = runPollers(b, bare.URL+path, tokens, `"AAAAAAAAAAAAAAAAAAAAAA"`)
	})
	b.Run("poll", func(b *testing.B) {
		rate := runPollers(b, s.URL+path, tokens, tag)
		if bareRate > 0 {
			b.ReportMetric(100*rate/bareRate, "%_of_bare")
		}
	})
	b.Run("wire", func(b *testing.B) {
		for _, c := range []struct {
			stream string
			every  int // seconds
		}{{"live", 30}, {"", 15}} {
			p := fmt.Sprintf("/api/v1/events?since=%d", cursor)
			if c.stream != "" {
				p += "&stream=" + c.stream
			}
			tag := s.Do(b, http.MethodGet, p, admin, nil).Header.Get("ETag")
			req, resp := wireBytes(b, s.URL, p, admin, tag)
			perMin := (req + resp) * 60 / c.every
			// On the wire each poll also takes about three TCP segments
			// (request, response, ACK) of 52 bytes of IPv4+TCP headers.
			b.ReportMetric(float64(perMin), fmt.Sprintf("B/min@%ds", c.every))
			if b.N > 1 {
				continue
			}
			b.Logf("idle client at %d s: request %d B + 304 response %d B = %d B per poll; %d B/min of HTTP, ~%d B/min with TCP/IP headers",
				c.every, req, resp, req+resp, perMin, perMin+3*52*60/c.every)
		}
	})
}

// runPollers runs benchPollers goroutines, each on its own connection and
// rotating over its own tokens, sending conditional polls; it fails on any
// answer but 304 and returns the answers per second.
func runPollers(b *testing.B, target string, tokens []string, tag string) float64 {
	u, err := url.Parse(target)
	if err != nil {
		b.Fatal(err)
	}
	tr := &http.Transport{MaxIdleConns: 2 * benchPollers, MaxIdleConnsPerHost: 2 * benchPollers, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var next, bad atomic.Int64
	per := len(tokens) / benchPollers
	b.SetParallelism((benchPollers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)-1) % benchPollers
		reqs := make([]*http.Request, per)
		for k := range reqs {
			reqs[k] = &http.Request{Method: http.MethodGet, URL: u, Host: u.Host, Header: http.Header{
				"Authorization": {"Bearer " + tokens[i*per+k]},
				"If-None-Match": {tag},
			}}
		}
		for n := 0; pb.Next(); n++ {
			res, err := client.Do(reqs[n%per])
			if err != nil {
				bad.Add(1)
				continue
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusNotModified {
				bad.Add(1)
			}
		}
	})
	b.StopTimer()
	if n := bad.Load(); n > 0 {
		b.Fatalf("%d of %d polls were not answered 304", n, b.N)
	}
	rate := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "304/s")
	return rate
}

// wireBytes sends one conditional poll on a raw connection, as a Go client
// sends it (Host, User-Agent, Authorization, If-None-Match,
// Accept-Encoding), and counts the bytes of the request and of the 304.
func wireBytes(b *testing.B, base, path, token, tag string) (req, resp int) {
	u, _ := url.Parse(base)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	r, _ := http.NewRequest(http.MethodGet, base+path, nil)
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set("If-None-Match", tag)
	r.Header.Set("Accept-Encoding", "gzip")
	var out bytes.Buffer
	if err := r.Write(&out); err != nil {
		b.Fatal(err)
	}
	req = out.Len()
	if _, err := conn.Write(out.Bytes()); err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		resp += len(line)
		if resp == len(line) && !bytes.HasPrefix([]byte(line), []byte("HTTP/1.1 304")) {
			b.Fatalf("not a 304: %q", line)
		}
		if line == "\r\n" {
			return req, resp
		}
	}
}
