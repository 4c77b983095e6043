package sse

import (
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The writers: streams on plain TCP connections have no goroutine of their
// own to write. Each shard has one writer goroutine; after a publish it
// walks the shard's subscribers of that tenant and writes each one's new
// frames in one non-blocking write(2) — the socket's buffer takes them at
// once, as it does for any client that keeps up. A socket whose buffer is
// full gets a goroutine that writes the rest under the write deadline, and
// while it does, the writer only checks how far behind the stream falls.
// The writer also beats the shard's clock: heartbeats, time limits and the
// shutdown's last comment.
//
// Each connection keeps one goroutine, blocked in a one-byte read, which is
// how the stream learns at once that its client went away (and frees it);
// an idle stream is that goroutine's small stack and a few hundred bytes.

// setWriters sets how many writer goroutines share the shards (0: one per
// CPU). Writing to sockets is mostly the kernel's work, and one writer per
// CPU lets it run on every core: on this project's 2-core loopback
// benchmark (5,000 streams, 4 events/s, same run) two writers delivered
// with a p99 of 54–56 ms where one took 63–83 ms, at about the same CPU
// per event; eight cost more wake-ups for nothing. Call before the first
// stream.
func (h *Hub) setWriters(n int) {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	n = min(n, nShards)
	h.wakes = make([]chan struct{}, n)
	for w := range h.wakes {
		h.wakes[w] = make(chan struct{}, 1)
	}
	for i := range h.shards {
		h.shards[i].wake = h.wakes[i%n]
	}
}

// shard is a share of the writer-driven streams.
type shard struct {
	mu      sync.Mutex
	wake    chan struct{}          // its writer's
	tick    bool                   // the clock beat since the writer's last pass
	dirty   []*audience            // audiences published to since the last pass
	ready   []*subscriber          // streams to visit: new, or their socket drained
	auds    map[*audience]struct{} // audiences with streams in this shard
	stopped bool                   // the writer has made its last pass
}

// notify tells shard i's writer that a has new batches.
func (sh *shard) notify(a *audience, i int) {
	sh.mu.Lock()
	if len(a.bySh[i]) == 0 || a.dirtyIn[i] {
		sh.mu.Unlock()
		return
	}
	a.dirtyIn[i] = true
	sh.dirty = append(sh.dirty, a)
	sh.mu.Unlock()
	sh.poke()
}

// beat tells the shard's writer that the clock beat for it.
func (sh *shard) beat() {
	sh.mu.Lock()
	sh.tick = true
	sh.mu.Unlock()
	sh.poke()
}

func (sh *shard) poke() {
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

// socket is a writer-driven stream's connection.
type socket struct {
	conn    net.Conn
	raw     syscall.RawConn
	blocked atomic.Bool // a flush goroutine owns the connection's writes
	pending []byte      // what the flush goroutine writes
	closed  atomic.Bool
	failed  atomic.Bool // ended by a failure or a drop: reset, not closed

	// Only the writer touches these.
	endAt    time.Time // when the time limit ends the stream (zero: never)
	lastBeat time.Time
}

// close ends the connection once; a failed stream ends with a reset, so
// that its client can tell it from a clean end.
func (sk *socket) close(failed bool) {
	if sk.closed.Swap(true) {
		return
	}
	if failed {
		sk.failed.Store(true)
		if tcp, ok := sk.conn.(interface{ SetLinger(sec int) error }); ok { // a *net.TCPConn, or the listener's wrapper of one
			_ = tcp.SetLinger(0)
		}
	}
	_ = sk.conn.Close()
}

// writeNow writes what the socket takes without waiting.
func (sk *socket) writeNow(p []byte) (int, error) {
	n := 0
	var werr error
	err := sk.raw.Write(func(fd uintptr) bool {
		for n < len(p) {
			k, e := syscall.Write(int(fd), p[n:])
			if e == syscall.EINTR {
				continue
			}
			if k > 0 {
				n += k
			}
			if e != nil {
				if e != syscall.EAGAIN {
					werr = e
				}
				break
			}
			if k <= 0 {
				break
			}
		}
		return true // never wait for the poller: the writer has others to serve
	})
	if err == nil {
		err = werr
	}
	return n, err
}

// attach hands a started stream over to its shard's writer, which sends
// what was published since the stream subscribed, and starts the
// connection's reader. It reports false (the stream must end) once the
// writer has made its last pass.
func (h *Hub) attach(s *subscriber, conn net.Conn, raw syscall.RawConn) bool {
	now := time.Now()
	sk := &socket{conn: conn, raw: raw, lastBeat: now}
	if h.maxDuration > 0 {
		// Aim between 85% and 95% of the limit, so that clients cut at the
		// same time do not all come back at the same time; the clock's
		// period (at most 5% of it) may add the rest.
		sk.endAt = now.Add(h.maxDuration*95/100 - time.Duration(rand.Int64N(int64(h.maxDuration)/10+1)))
	}
	s.sock = sk
	sh := &h.shards[s.shard]
	sh.mu.Lock()
	if sh.stopped {
		sh.mu.Unlock()
		return false
	}
	a := s.a
	s.idx = len(a.bySh[s.shard])
	a.bySh[s.shard] = append(a.bySh[s.shard], s)
	sh.auds[a] = struct{}{}
	sh.ready = append(sh.ready, s)
	sh.mu.Unlock()
	if a.gen.Load() != s.gen {
		// A hole was jumped while the stream replayed (Skip).
		s.dead.Store(true)
		sk.close(false)
	}
	sh.poke()
	go h.read(s)
	return true
}

// read waits for the client to close its side (or to send anything: an
// event stream's client has nothing to say), or for the writer to close
// the connection, then frees the stream.
func (h *Hub) read(s *subscriber) {
	var one [1]byte
	_, _ = s.sock.conn.Read(one[:])
	sh := &h.shards[s.shard]
	a := s.a
	sh.mu.Lock()
	a.bySh[s.shard] = removeSub(a.bySh[s.shard], s)
	if len(a.bySh[s.shard]) == 0 {
		delete(sh.auds, a)
	}
	sh.mu.Unlock()
	h.leaveAudience(s)
	s.sock.close(false)
	h.leave()
	if s.release != nil {
		s.release()
	}
}

// write is writer w: it serves shards w, w+W, … (W writers), each time one
// of them is published to, beats, or hands back a stream.
func (h *Hub) write(w int) {
	defer h.workers.Done()
	var subs []*subscriber
	var buf []byte
	for {
		<-h.wakes[w]
		closing := h.closing()
		for i := w; i < nShards; i += len(h.wakes) {
			sh := &h.shards[i]
			sh.mu.Lock()
			tick := sh.tick || closing
			sh.tick = false
			if tick {
				for a := range sh.auds {
					subs = append(subs, a.bySh[i]...)
				}
			}
			for _, a := range sh.dirty {
				a.dirtyIn[i] = false
				if !tick {
					subs = append(subs, a.bySh[i]...)
				}
			}
			if !tick {
				subs = append(subs, sh.ready...)
			}
			clear(sh.dirty)
			sh.dirty = sh.dirty[:0]
			clear(sh.ready)
			sh.ready = sh.ready[:0]
			sh.stopped = closing
			sh.mu.Unlock()

			var now time.Time
			if tick {
				now = time.Now()
			}
			for _, s := range subs {
				buf = h.pass(s, buf, tick, now, closing)
			}
			clear(subs)
			subs = subs[:0]
		}
		if closing {
			return
		}
	}
}

// pass writes what s has not taken yet, and at a tick its heartbeat or its
// last comment, in one non-blocking write. buf is the writer's scratch; it
// returns the scratch to use next (the old one may now be the socket's).
func (h *Hub) pass(s *subscriber, buf []byte, tick bool, now time.Time, closing bool) []byte {
	sk := s.sock
	if sk.closed.Load() {
		return buf
	}
	if sk.blocked.Load() {
		switch {
		case closing:
			sk.close(false)
		case s.a.published.Load()-s.taken.Load() > h.buffer:
			// The client is not keeping up: drop it now rather than wait.
			h.stats.overflows.Add(1)
			s.dead.Store(true)
			sk.close(true)
		}
		return buf
	}
	buf = buf[:0]
	frames := 0
	_ = s.take(func(b *batch) error {
		var n int
		buf, n = s.appendNew(buf, b)
		frames += n
		return nil
	})
	last := ""
	if tick {
		switch {
		case closing:
			last = "server shutting down; reconnect"
		case !sk.endAt.IsZero() && !now.Before(sk.endAt):
			last = "stream time limit; reconnect"
		case now.Sub(sk.lastBeat) >= h.heartbeat-h.period/2:
			sk.lastBeat = now
			buf = AppendComment(buf, "heartbeat")
		}
		if last != "" {
			buf = AppendComment(buf, last)
		}
	}
	if len(buf) == 0 {
		return buf
	}
	h.stats.delivered.Add(int64(frames))
	n, err := sk.writeNow(buf)
	switch {
	case err != nil:
		sk.close(true)
	case n < len(buf) && last == "":
		// The socket's buffer is full: a goroutine waits for it to drain
		// (the write deadline bounds the wait) and the scratch goes with it.
		sk.pending = buf[n:]
		sk.blocked.Store(true)
		h.stats.backlogs.Add(1)
		go h.flush(s)
		return nil
	case last != "":
		sk.close(false)
	}
	if cap(buf) > 64<<10 {
		return nil // a burst grew it: do not keep it
	}
	return buf
}

// flush writes a blocked stream's pending bytes within the write timeout,
// then hands the stream back to its writer; a client that takes nothing in
// that time is disconnected.
func (h *Hub) flush(s *subscriber) {
	sk := s.sock
	err := sk.conn.SetWriteDeadline(time.Now().Add(h.writeTimeout))
	if err == nil {
		_, err = sk.conn.Write(sk.pending)
	}
	sk.pending = nil
	if err == nil {
		// The writer's writes have no deadline (they never wait).
		err = sk.conn.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		sk.close(true)
		return
	}
	sk.blocked.Store(false)
	sh := &h.shards[s.shard]
	sh.mu.Lock()
	sh.ready = append(sh.ready, s)
	sh.mu.Unlock()
	sh.poke()
}
