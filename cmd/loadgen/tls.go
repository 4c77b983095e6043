package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// protoModes are the -proto values and what their rows' mode says.
//
//   - h1: HTTP/1.1 on plain TCP, one raw connection per subscriber (the
//     server hijacks it; its writer goroutines carry the stream).
//   - h1-tls: HTTP/1.1 over TLS, one raw TLS connection per subscriber
//     (hijacked; the stream writes on a goroutine of its own).
//   - h2: HTTP/2 over TLS with Go's client, one connection (one
//     http.Transport) per subscriber. Each browser opens one HTTP/2
//     connection per origin and multiplexes its tabs' requests on it, but
//     the subscribers of a clinic are separate browsers (a screen, a desk,
//     a doctor's tablet): one connection each is what the server holds.
//   - h2-mux: HTTP/2 over TLS, all subscribers on one http.Transport, which
//     packs up to the server's SETTINGS_MAX_CONCURRENT_STREAMS (net/http:
//     250) streams per connection, as an HTTP/2 proxy in front of the server
//     would: the cost of a stream without a connection of its own.
var protoModes = map[string]string{
	"h1":     "",
	"h1-tls": "HTTP/1.1+TLS",
	"h2":     "HTTP/2+TLS, conn/subscriber",
	"h2-mux": "HTTP/2+TLS, ≤250 streams/conn",
}

// clientTLS is the TLS setup of a -proto other than h1: the server's
// certificate files and a pool that trusts it.
type clientTLS struct {
	certFile, keyFile string
	pool              *x509.CertPool
}

// newClientTLS writes a self-signed certificate for 127.0.0.1 into dir.
func newClientTLS(dir string) (*clientTLS, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "loadgen"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	c := &clientTLS{certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"), pool: x509.NewCertPool()}
	if err := os.WriteFile(c.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(c.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	c.pool.AddCert(cert)
	return c, nil
}

// env is the server's TLS configuration.
func (c *clientTLS) env() []string {
	return []string{"TLS_CERT_FILE=" + c.certFile, "TLS_KEY_FILE=" + c.keyFile}
}

// transport returns an HTTP/2-capable transport trusting the certificate;
// h1 keeps it on HTTP/1.1.
func (c *clientTLS) transport(h1 bool) *http.Transport {
	t := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.pool}, ForceAttemptHTTP2: !h1,
		MaxIdleConnsPerHost: 1024, ResponseHeaderTimeout: headerTimeout}
	if h1 {
		t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return t
}

// dial returns a dialer of raw TLS connections speaking HTTP/1.1 (ALPN).
func (c *clientTLS) dial(addr string) func(context.Context) (net.Conn, error) {
	d := &tls.Dialer{Config: &tls.Config{RootCAs: c.pool, NextProtos: []string{"http/1.1"}}}
	return func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
}

// subscribeHTTP follows the stream through client (HTTP/2 for -proto h2
// and h2-mux) like subscribe: ready is incremented once the response head
// (200, text/event-stream, HTTP/wantMajor) is read; an error wrapping
// errNotReady means the stream never started; after that it returns nil
// when ctx ends or the server ends the stream.
func subscribeHTTP(ctx context.Context, client *http.Client, base, tok, topics string, wantMajor int,
	ready *atomic.Int64, got func(n int, at time.Time)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/stream?topics="+topics, nil)
	if err != nil {
		return fmt.Errorf("%w: %w", errNotReady, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", errNotReady, err)
	}
	defer res.Body.Close()
	switch ct := res.Header.Get("Content-Type"); {
	case res.StatusCode != http.StatusOK:
		return fmt.Errorf("%w: status %d", errNotReady, res.StatusCode)
	case res.ProtoMajor != wantMajor:
		return fmt.Errorf("%w: answered over %s", errNotReady, res.Proto)
	case !strings.HasPrefix(strings.TrimSpace(ct), "text/event-stream"):
		return fmt.Errorf("%w: Content-Type %q", errNotReady, ct)
	}
	ready.Add(1)
	err = readEvents(ctx, bufio.NewReaderSize(res.Body, subReadBuf), got)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
