package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
)

// tlsConfig reads TLS_CERT_FILE and TLS_KEY_FILE through getenv (os.Getenv
// in main). With neither set it returns nil: serve plain HTTP. With only
// one set it is an error rather than a silent plain-HTTP server. With both
// it loads the key pair now, so that a missing or mismatched file stops the
// server at start instead of failing every handshake.
func tlsConfig(getenv func(string) string) (*tls.Config, error) {
	cert, key := getenv("TLS_CERT_FILE"), getenv("TLS_KEY_FILE")
	switch {
	case cert == "" && key == "":
		return nil, nil
	case cert == "" || key == "":
		return nil, errors.New("TLS_CERT_FILE and TLS_KEY_FILE must be set together")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("TLS_CERT_FILE/TLS_KEY_FILE: %w", err)
	}
	// No NextProtos: http.Server.ServeTLS offers h2 and http/1.1 itself.
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// serveHTTP serves srv on ln until it is shut down: over TLS when cfg is not
// nil, which also gives browsers HTTP/2 (many streams over one connection
// instead of HTTP/1.1's six per origin); plain HTTP/1.1 otherwise.
// Like srv.Serve it returns http.ErrServerClosed after Shutdown.
func serveHTTP(srv *http.Server, ln net.Listener, cfg *tls.Config) error {
	if cfg == nil {
		return srv.Serve(ln)
	}
	srv.TLSConfig = cfg
	return srv.ServeTLS(ln, "", "")
}
