// Command loadgen measures a ClinicPulse server from another process over
// loopback: it starts the server binary (one or two instances), opens N SSE
// subscribers and M conditional pollers, commits writes at a set rate, and
// prints one table row: publish→receive latency, server RSS per idle
// connection, server CPU per delivered event, 304 polls/s, writes/s.
//
//	go build -o bin/clinicpulse ./cmd/clinicpulse
//	go run ./cmd/loadgen -bin bin/clinicpulse -subscribers 1000 -rate 50 -duration 10s
//
// Baseline: with -baseline, loadgen starts its own binary instead of -bin,
// as a bare SSE server (LOADGEN_BARE_SERVER=1, listening on $ADDR; see
// bare.go): standard library only, raw HTTP/1.1, no auth, JSON or database;
// each patient POST is answered at once and one goroutine writes a frame of
// the real event's size to every stream with a plain blocking write. Its row
// (mode "bare write(2)") is measured exactly as the real server's, so it
// shows the floor on the same machine: what loopback TCP and write(2) cost
// per delivered event and what an idle connection costs, with nothing else.
//
// Peer: with -peer r3labs, loadgen starts its own binary as the bare
// server's counterpart on net/http and the server side of
// github.com/r3labs/sse/v2 (LOADGEN_PEER_SERVER=r3labs; see peer.go), mode
// "r3labs/sse v2.10.0": the library as people deploy it, measured the same
// way. Compare the rows in one session:
//
//	go run ./cmd/loadgen -baseline -subscribers 1000 -rate 50 -pollers 0
//	go run ./cmd/loadgen -peer r3labs -subscribers 1000 -rate 50 -pollers 0 -header=false
//	go run ./cmd/loadgen -bin bin/clinicpulse -subscribers 1000 -rate 50 -pollers 0 -header=false
//
// Protocols: -proto h1-tls, h2 and h2-mux serve over TLS (a self-signed
// certificate loadgen makes) and subscribe with HTTP/1.1 over TLS, HTTP/2
// with a connection per subscriber, or HTTP/2 with up to 250 streams per
// connection (see protoModes); the writes then go over HTTP/2 too. Compare
// an HTTP/2 stream with an HTTP/1.1 one in one session:
//
//	go run ./cmd/loadgen -bin bin/clinicpulse -subscribers 1000 -rate 50 -pollers 0
//	go run ./cmd/loadgen -bin bin/clinicpulse -subscribers 1000 -rate 50 -pollers 0 -header=false -proto h2
//
// RSS/idle conn is the server's RSS growth per subscriber after they have
// connected and sat idle; RSS/conn after is its growth per subscriber read
// right after every event was delivered, before the subscribers leave.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/clinicpulse/clinicpulse/auth"
	"github.com/clinicpulse/clinicpulse/models"
)

const secret = "loadgen-secret-0123456789abcdef0123456789"

type options struct {
	bin         string
	dbURL       string
	subscribers int
	pollers     int
	pollFor     time.Duration
	rate        float64
	duration    time.Duration
	crossInst   bool
	writers     int
	topics      string
	idleWait    time.Duration
	header      bool
	baseline    bool
	peer        string
	proto       string
}

func main() {
	if os.Getenv(bareEnv) == "1" || os.Getenv(peerEnv) == "r3labs" {
		ln, err := net.Listen("tcp", os.Getenv("ADDR"))
		if err == nil && os.Getenv(peerEnv) == "r3labs" {
			err = peerServe(ln)
		} else if err == nil {
			err = bareServe(ln)
		}
		fmt.Fprintln(os.Stderr, "loadgen bare/peer server:", err)
		os.Exit(1)
	}
	var o options
	flag.StringVar(&o.bin, "bin", "bin/clinicpulse", "server binary")
	flag.StringVar(&o.dbURL, "db", "", "DATABASE_URL for the server (default: a SQLite file in a temp dir)")
	flag.IntVar(&o.subscribers, "subscribers", 1000, "SSE subscribers")
	flag.IntVar(&o.pollers, "pollers", 200, "concurrent conditional pollers (304 phase)")
	flag.DurationVar(&o.pollFor, "poll-for", 5*time.Second, "length of the 304 phase")
	flag.Float64Var(&o.rate, "rate", 50, "writes per second; 0: as fast as -writers concurrent writers can")
	flag.IntVar(&o.writers, "writers", 8, "concurrent writers when -rate 0")
	flag.DurationVar(&o.idleWait, "idle-wait", time.Second, "how long the connected subscribers sit idle before the RSS reading")
	flag.StringVar(&o.topics, "topics", "patients", "the subscribers' topics (the writes create patients; another topic measures the publish path without delivery)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of the write phase")
	flag.BoolVar(&o.crossInst, "cross", false, "start two instances (Postgres only): write through A, subscribe on B")
	flag.BoolVar(&o.header, "header", true, "print the table header")
	flag.BoolVar(&o.baseline, "baseline", false, "measure loadgen's own bare SSE server (stdlib, no auth, JSON or database) instead of -bin; no 304 phase")
	flag.StringVar(&o.peer, "peer", "", "measure loadgen's own server on a peer SSE library instead of -bin (r3labs: github.com/r3labs/sse/v2 on net/http); no 304 phase")
	flag.StringVar(&o.proto, "proto", "h1", "the subscribers' protocol: h1 (HTTP/1.1, plain TCP), h1-tls (HTTP/1.1 over TLS), h2 (HTTP/2 over TLS, a connection per subscriber), h2-mux (HTTP/2 over TLS, up to 250 streams per connection); not with -baseline or -peer")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// raiseNoFile lifts the open-file limit to its hard maximum.
func raiseNoFile() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

type server struct {
	cmd  *exec.Cmd
	addr string // host:port
	base string // "http://" + addr
}

// startServer starts bin on a loopback port; with ct, over TLS.
func startServer(ctx context.Context, bin, dbURL string, ct *clientTLS, env ...string) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), "ADDR="+addr, "JWT_SECRET="+secret, "DATABASE_URL="+dbURL, "DEV=0", "HEARTBEAT=15s",
		// One admin identity opens every subscriber and poller: lift the
		// per-identity and per-tenant bounds a clinic runs with.
		"STREAMS_PER_STAFF=1000000", "STREAMS_PER_TENANT=1000000", "STREAM_OPENS_PER_SECOND=10000", "STREAM_OPENS_BURST=10000",
		"LONGPOLLS_PER_STAFF=1000000", "LONGPOLLS_PER_TENANT=1000000", "POLLS_PER_SECOND=1000000", "POLLS_BURST=1000000")
	cmd.Env = append(cmd.Env, env...)
	s := &server{cmd: cmd, addr: addr, base: "http://" + addr}
	probe := http.DefaultClient
	if ct != nil {
		cmd.Env = append(cmd.Env, ct.env()...)
		s.base = "https://" + addr
		probe = &http.Client{Transport: ct.transport(true)}
	}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := probe.Get(s.base + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return s, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	return nil, fmt.Errorf("server at %s did not get ready", addr)
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
	}
}

// rssKiB reads VmRSS of the server process.
func (s *server) rssKiB() int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			n, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return n
		}
	}
	return 0
}

// cpu returns the process's user+system CPU time.
func cpu(pid int) time.Duration {
	u, s := cpuSplit(pid)
	return u + s
}

// cpuSplit returns a process's user and system CPU time.
func cpuSplit(pid int) (user, sys time.Duration) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(f) < 13 {
		return 0, 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut) * time.Second / 100, time.Duration(st) * time.Second / 100 // USER_HZ
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func run(o options) error {
	raiseNoFile()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if o.dbURL == "" {
		dir, err := os.MkdirTemp("", "loadgen")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.dbURL = "sqlite:" + filepath.Join(dir, "db")
	}
	var env []string
	var err error
	if _, ok := protoModes[o.proto]; !ok {
		return fmt.Errorf("-proto %q: the protocols are h1, h1-tls, h2, h2-mux", o.proto)
	}
	var ct *clientTLS
	if o.proto != "h1" {
		if o.baseline || o.peer != "" {
			return errors.New("-proto: -baseline and -peer serve plain HTTP/1.1 only")
		}
		dir, err := os.MkdirTemp("", "loadgen-tls")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if ct, err = newClientTLS(dir); err != nil {
			return err
		}
	}
	if _, ok := peerModes[o.peer]; !ok && o.peer != "" {
		return fmt.Errorf("-peer %q: the peers are r3labs", o.peer)
	}
	if o.baseline || o.peer != "" {
		if o.crossInst || (o.baseline && o.peer != "") {
			return errors.New("-baseline and -peer have one instance only, and exclude each other")
		}
		if o.bin, err = os.Executable(); err != nil {
			return err
		}
		env, o.pollers = []string{bareEnv + "=1"}, 0
		if o.peer != "" {
			env = []string{peerEnv + "=" + o.peer}
		}
	}
	a, err := startServer(ctx, o.bin, o.dbURL, ct, env...)
	if err != nil {
		return err
	}
	defer a.stop()
	sub := a
	if o.crossInst {
		if sub, err = startServer(ctx, o.bin, o.dbURL, ct); err != nil {
			return err
		}
		defer sub.stop()
	}
	au := auth.New(auth.Config{Secret: []byte(secret)})
	tenant := fmt.Sprintf("load-%d", time.Now().UnixNano())
	tok, _ := au.Sign(models.Actor{Subject: "loadgen", TenantID: tenant, Role: models.RoleAdmin}, time.Hour)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxConnsPerHost: 0}}
	if ct != nil {
		client = &http.Client{Transport: ct.transport(false)}
	}
	var mux *http.Client // -proto h2-mux: the subscribers' one transport
	if o.proto == "h2-mux" {
		mux = &http.Client{Transport: ct.transport(false)}
		defer mux.CloseIdleConnections()
	}
	post := func(path string, body any) error {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.base+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 201 {
			return fmt.Errorf("POST %s: %d", path, res.StatusCode)
		}
		return nil
	}
	if err := post("/api/v1/doctors", map[string]any{"name": "Dr. Load"}); err != nil {
		return err
	}

	// Subscribers. Each write creates a patient named "lg-<n>"; sent[n] is
	// the time just before its request went out.
	const maxWrites = 1 << 20
	sent := make([]atomic.Int64, maxWrites)
	var lats []time.Duration
	var latMu sync.Mutex
	var ready, failed, received atomic.Int64
	var subErr atomic.Value // the first subscriber's error before it was ready
	baseRSS := sub.rssKiB()
	subCtx, stopSubs := context.WithCancel(ctx)
	defer stopSubs()
	var subsWG sync.WaitGroup
	for i := 0; i < o.subscribers; i++ {
		subsWG.Add(1)
		go func() {
			defer subsWG.Done()
			got := func(n int, at time.Time) {
				if s := sent[n].Load(); s > 0 {
					latMu.Lock()
					lats = append(lats, at.Sub(time.Unix(0, s)))
					latMu.Unlock()
					received.Add(1)
				}
			}
			var err error
			switch o.proto {
			case "h1":
				err = subscribe(subCtx, sub.addr, tok, o.topics, &ready, got)
			case "h1-tls":
				err = subscribeDial(subCtx, ct.dial(sub.addr), sub.addr, tok, o.topics, &ready, got)
			case "h2":
				c := &http.Client{Transport: ct.transport(false)}
				err = subscribeHTTP(subCtx, c, sub.base, tok, o.topics, 2, &ready, got)
				c.CloseIdleConnections()
			case "h2-mux":
				err = subscribeHTTP(subCtx, mux, sub.base, tok, o.topics, 2, &ready, got)
			}
			if errors.Is(err, errNotReady) {
				failed.Add(1)
				subErr.CompareAndSwap(nil, err)
			}
		}()
		if i%200 == 199 {
			time.Sleep(20 * time.Millisecond) // do not stampede the accept queue
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for ready.Load()+failed.Load() < int64(o.subscribers) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if ready.Load() < int64(o.subscribers) {
		err := fmt.Errorf("only %d of %d subscribers connected (%d failed)", ready.Load(), o.subscribers, failed.Load())
		if e, ok := subErr.Load().(error); ok {
			err = fmt.Errorf("%w: first failure: %w", err, e)
		}
		return err
	}
	time.Sleep(o.idleWait)
	idleRSS := sub.rssKiB()

	// Write phase.
	cpuA0, cpuS0, self0 := cpu(a.cmd.Process.Pid), cpu(sub.cmd.Process.Pid), selfCPU()
	_, sys0 := cpuSplit(sub.cmd.Process.Pid)
	start := time.Now()
	total := int(o.rate * o.duration.Seconds())
	var writeErr atomic.Value
	var wwg sync.WaitGroup
	if o.rate <= 0 {
		// Throughput mode: writers loop until the duration ends.
		var next atomic.Int64
		for range o.writers {
			wwg.Add(1)
			go func() {
				defer wwg.Done()
				for time.Since(start) < o.duration {
					n := int(next.Add(1))
					if n >= maxWrites {
						return
					}
					sent[n].Store(time.Now().UnixNano())
					if err := post("/api/v1/patients", map[string]any{"name": "lg-" + strconv.Itoa(n)}); err != nil {
						writeErr.Store(err)
						return
					}
				}
			}()
		}
		wwg.Wait()
		total = int(next.Load())
	}
	interval := time.Duration(float64(time.Second) / max(o.rate, 1))
	for n := 1; o.rate > 0 && n <= total; n++ {
		at := start.Add(time.Duration(n-1) * interval)
		time.Sleep(time.Until(at))
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			sent[n].Store(time.Now().UnixNano())
			if err := post("/api/v1/patients", map[string]any{"name": "lg-" + strconv.Itoa(n)}); err != nil {
				writeErr.Store(err)
			}
		}()
	}
	wwg.Wait()
	writeSecs := time.Since(start).Seconds()
	want := int64(total) * int64(o.subscribers)
	if !strings.Contains(o.topics, "patients") {
		want = 0
	}
	deadline = time.Now().Add(30 * time.Second)
	for received.Load() < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cpuA1, cpuS1, self1 := cpu(a.cmd.Process.Pid), cpu(sub.cmd.Process.Pid), selfCPU()
	_, sys1 := cpuSplit(sub.cmd.Process.Pid)
	afterRSS := sub.rssKiB()
	stopSubs()
	subsWG.Wait()
	if e := writeErr.Load(); e != nil {
		return e.(error)
	}

	// 304 phase: pollers repeat a conditional poll as fast as they can.
	polls304 := pollPhase(ctx, client, a.base, func(i int) string {
		t, _ := au.Sign(models.Actor{Subject: fmt.Sprintf("poller-%d", i), TenantID: tenant, Role: models.RoleAdmin}, time.Hour)
		return t
	}, o.pollers, o.pollFor)

	latMu.Lock()
	slices.Sort(lats)
	latMu.Unlock()
	pct := func(p float64) string {
		if len(lats) == 0 {
			return "-"
		}
		return fmtDur(lats[min(len(lats)-1, int(p*float64(len(lats))))])
	}
	serverCPU := (cpuS1 - cpuS0)
	if o.crossInst {
		serverCPU += cpuA1 - cpuA0
	}
	perEvent := "-"
	if received.Load() > 0 {
		perEvent = fmt.Sprintf("%.1f µs (%.0f%% kernel)", float64(serverCPU.Microseconds())/float64(received.Load()),
			100*float64(sys1-sys0)/float64(max(cpuS1-cpuS0, 1)))
	}
	mode := "1 instance"
	if want == 0 {
		mode += ", other topic"
	}
	if o.crossInst {
		mode = "A→B"
	}
	if o.baseline {
		mode = strings.Replace(mode, "1 instance", "bare write(2)", 1)
	}
	if o.peer != "" {
		mode = strings.Replace(mode, "1 instance", peerModes[o.peer], 1)
	}
	if m := protoModes[o.proto]; m != "" {
		mode += ", " + m
	}
	if o.header {
		fmt.Println("| db | mode | subscribers | writes/s | delivered | p50 | p99 | max | RSS/idle conn | RSS/conn after | server CPU/event | loadgen CPU | 304 polls/s |")
		fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	}
	db := "sqlite"
	if strings.HasPrefix(o.dbURL, "postgres") {
		db = "postgres"
	}
	if o.baseline || o.peer != "" {
		db = "-"
	}
	perConn := func(rss int64) float64 { return float64(rss-baseRSS) / float64(max(o.subscribers, 1)) }
	fmt.Printf("| %s | %s | %d | %.0f | %d/%d | %s | %s | %s | %.1f KiB | %.1f KiB | %s | %.1f s | %.0f |\n",
		db, mode, o.subscribers, float64(total)/writeSecs, received.Load(), want, pct(0.5), pct(0.99), pct(1),
		perConn(idleRSS), perConn(afterRSS), perEvent, (self1 - self0).Seconds(), polls304)
	return nil
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

// pollPhase runs conditional polls of /api/v1/events and returns 304s per second.
// Each poller has its own token, as each browser has: the rate limit is per token.
func pollPhase(ctx context.Context, client *http.Client, base string, token func(int) string, pollers int, d time.Duration) float64 {
	if pollers == 0 {
		return 0
	}
	// An idle poller is up to date: it polls from the head it has seen.
	req := func(tok, etag string, since int64) (int, string, []byte) {
		r, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/events?limit=1000&stream=live&since="+strconv.FormatInt(since, 10), nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		if etag != "" {
			r.Header.Set("If-None-Match", etag)
		}
		res, err := client.Do(r)
		if err != nil {
			return 0, "", nil
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode, res.Header.Get("ETag"), body
	}
	head := func(tok string) (int64, string) {
		var since int64
		for {
			_, etag, body := req(tok, "", since)
			var page struct {
				Cursor  int64 `json:"cursor"`
				HasMore bool  `json:"has_more"`
			}
			if json.Unmarshal(body, &page) != nil || !page.HasMore {
				return page.Cursor, etag
			}
			since = page.Cursor
		}
	}
	// Every poller first learns its head and ETag; the measured window
	// starts when all of them are ready.
	var n atomic.Int64
	var ready, wg sync.WaitGroup
	startc := make(chan struct{})
	var end time.Time
	for i := range pollers {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			tok := token(i)
			since, _ := head(tok)
			_, etag, _ := req(tok, "", since)
			ready.Done()
			<-startc
			for time.Now().Before(end) {
				if st, _, _ := req(tok, etag, since); st == http.StatusNotModified {
					n.Add(1)
				}
			}
		}()
	}
	ready.Wait()
	end = time.Now().Add(d)
	close(startc)
	wg.Wait()
	return float64(n.Load()) / d.Seconds()
}
