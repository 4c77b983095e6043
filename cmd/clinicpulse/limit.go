package main

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// limitListener accepts at most max connections open at once, so that the
// process never runs out of file descriptors (accept4: EMFILE), which would
// stop it answering anyone, health checks included. While it is full,
// Accept waits for a connection to close; new clients wait in the kernel's
// accept queue meanwhile, and every connection is bounded in time by the
// server's timeouts (headers, body, idle), so the queue moves.
//
// It is golang.org/x/net/netutil.LimitListener's idea with one difference:
// a TCP connection stays a *net.TCPConn underneath (limitedTCPConn embeds
// it), so the stream hub can still reach its descriptor (syscall.Conn) and
// set SO_LINGER after net/http hands the connection over (Hijack).
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	logger    *slog.Logger
	lastWarn  atomic.Int64 // unix ns of the last "full" warning
}

// limitListen wraps ln so that at most max of its connections are open at
// once. logger gets a warning, at most once a minute, while it is full.
func limitListen(ln net.Listener, max int, logger *slog.Logger) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, max), done: make(chan struct{}), logger: logger}
}

// Accept waits for a free slot, then for a connection.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	default:
		l.warnFull()
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		return &limitedTCPConn{TCPConn: tc, release: l.release}, nil
	}
	return &limitedConn{Conn: c, release: l.release}, nil
}

func (l *limitListener) release() { <-l.sem }

// Close closes the listener and ends a waiting Accept.
func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

// InUse returns how many accepted connections are open.
func (l *limitListener) InUse() int { return len(l.sem) }

func (l *limitListener) warnFull() {
	now := time.Now().UnixNano()
	last := l.lastWarn.Load()
	if now-last < int64(time.Minute) || !l.lastWarn.CompareAndSwap(last, now) {
		return
	}
	l.logger.Warn("connection limit reached: new connections wait until one closes (MAX_CONNECTIONS)",
		"max_connections", cap(l.sem))
}

// limitedTCPConn frees its slot when it is closed, once.
type limitedTCPConn struct {
	*net.TCPConn
	once    sync.Once
	release func()
}

func (c *limitedTCPConn) Close() error {
	err := c.TCPConn.Close()
	c.once.Do(c.release)
	return err
}

// limitedConn is limitedTCPConn for other kinds of connections.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
