package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir and
// returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "clinicpulse test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func get(t *testing.T, client *http.Client, url string) (*http.Response, string) {
	t.Helper()
	res, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func TestServeTLSWithHTTP2(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	cfg, err := tlsConfig(envOf(map[string]string{"TLS_CERT_FILE": certFile, "TLS_KEY_FILE": keyFile}))
	if err != nil || cfg == nil {
		t.Fatalf("tlsConfig = %v, %v", cfg, err)
	}
	base := startServer(t, map[string]string{"TLS_CERT_FILE": certFile, "TLS_KEY_FILE": keyFile}).base

	// A client that offers h2, as browsers do, gets HTTP/2.
	h2 := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	defer h2.CloseIdleConnections()
	res, body := get(t, h2, base+"/healthz")
	if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("over h2: %s %d %q", res.Proto, res.StatusCode, body)
	}
	if res.TLS == nil || res.TLS.NegotiatedProtocol != "h2" {
		t.Fatalf("negotiated %+v, want h2", res.TLS)
	}
	// Several requests share one connection.
	for range 3 {
		if res, _ := get(t, h2, base+"/healthz"); res.ProtoMajor != 2 {
			t.Fatalf("request over %s, want HTTP/2", res.Proto)
		}
	}

	// HTTP/1.1 over TLS still works (old clients, curl --http1.1).
	h1 := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	defer h1.CloseIdleConnections()
	if res, _ := get(t, h1, base+"/healthz"); res.StatusCode != http.StatusOK || res.ProtoMajor != 1 {
		t.Fatalf("over HTTP/1.1: %s %d", res.Proto, res.StatusCode)
	}

	// A client that does not trust the certificate is refused.
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get(base + "/healthz"); err == nil {
		t.Fatal("an untrusting client connected")
	}
}

func TestServePlainWithoutTLSFiles(t *testing.T) {
	cfg, err := tlsConfig(envOf(nil))
	if err != nil || cfg != nil {
		t.Fatalf("tlsConfig without files = %v, %v; want nil, nil", cfg, err)
	}
	base := startServer(t, nil).base
	res, _ := get(t, &http.Client{Timeout: 5 * time.Second}, base+"/healthz")
	if res.StatusCode != http.StatusOK || res.ProtoMajor != 1 {
		t.Fatalf("plain: %s %d", res.Proto, res.StatusCode)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir)
	otherCert, _, _ := selfSigned(t, t.TempDir())
	for name, env := range map[string]map[string]string{
		"cert only":    {"TLS_CERT_FILE": certFile},
		"key only":     {"TLS_KEY_FILE": keyFile},
		"missing file": {"TLS_CERT_FILE": filepath.Join(dir, "nope.pem"), "TLS_KEY_FILE": keyFile},
		"mismatch":     {"TLS_CERT_FILE": otherCert, "TLS_KEY_FILE": keyFile},
		"swapped":      {"TLS_CERT_FILE": keyFile, "TLS_KEY_FILE": certFile},
	} {
		if cfg, err := tlsConfig(envOf(env)); err == nil || cfg != nil {
			t.Errorf("%s: tlsConfig = %v, %v; want an error", name, cfg, err)
		}
	}
}

func TestDevSecretPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "dev-jwt-secret")
	a, err := devSecret(path)
	if err != nil || len(a) < 32 {
		t.Fatalf("first: %q %v", a, err)
	}
	b, err := devSecret(path)
	if err != nil || a != b {
		t.Fatalf("second: %q != %q (%v)", b, a, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode: %v %v", fi.Mode(), err)
	}
}
