package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
)

// debugMaxConns caps the debug listener's connections.
const debugMaxConns = 8

// serveDebug serves Go's profiles (net/http/pprof) on DEBUG_ADDR, a
// listener of its own that operators keep on loopback or a private
// network: profiles show internals, so they never share the API's port.
// It stops when ctx ends, and returns the address it listens on.
func serveDebug(ctx context.Context, addr string, logger *slog.Logger) (net.Addr, error) {
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug listener %s: %w", addr, err)
	}
	// Its connections count in fdReserve, not in MAX_CONNECTIONS.
	ln := limitListen(tcp, debugMaxConns, logger)
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No ReadTimeout or WriteTimeout: a CPU profile or trace may run for
	// its ?seconds=; requests have no body.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("debug listener stopped", "err", err)
		}
	}()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	logger.Info("debug listener", "addr", ln.Addr().String())
	return ln.Addr(), nil
}
