package jwks_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/clinicpulse/clinicpulse/auth"
	"github.com/clinicpulse/clinicpulse/auth/jwks"
	"github.com/golang-jwt/jwt/v5"
)

// The issuer-independent settings of the tests' verifiers.
const (
	secret   = "jwks-test-secret-0123456789abcdef0123"
	audience = "clinicpulse-api"
)

// signer is a provider's signing key and the public JWK it publishes.
type signer struct {
	kid, alg string
	priv     crypto.Signer
	jwk      jwkset.JWK
}

// newSigner makes a key for alg ("RS256": RSA 2048, "ES256": P-256,
// "EdDSA": Ed25519) published with kid, alg and "use":"sig"; meta adjusts
// what is published.
func newSigner(t testing.TB, alg, kid string, meta ...func(*jwkset.JWKMetadataOptions)) signer {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "RS256-1024":
		priv, err = rsa.GenerateKey(rand.Reader, 1024)
		alg = "RS256"
	default:
		t.Fatalf("no key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return publish(t, priv, alg, kid, meta...)
}

func publish(t testing.TB, priv crypto.Signer, alg, kid string, meta ...func(*jwkset.JWKMetadataOptions)) signer {
	t.Helper()
	m := jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.ALG(alg), USE: jwkset.UseSig}
	for _, f := range meta {
		f(&m)
	}
	jwk, err := jwkset.NewJWKFromKey(priv.Public(), jwkset.JWKOptions{Metadata: m})
	if err != nil {
		t.Fatalf("publish %s: %v", kid, err)
	}
	return signer{kid: kid, alg: alg, priv: priv, jwk: jwk}
}

// sign signs claims with the key, naming its kid.
func (s signer) sign(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(s.alg), claims)
	tok.Header["kid"] = s.kid
	out, err := tok.SignedString(s.priv)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// idp is an identity provider on loopback: a JWK Set at /jwks.json and an
// OpenID configuration at /.well-known/openid-configuration, both of which
// a test can change, slow down, break or enlarge while the verifier runs.
type idp struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []jwkset.JWK
	raw     []string      // more JWKs, as raw JSON
	status  int           // answer this status instead (0: 200)
	delay   time.Duration // wait this long before answering
	pad     int           // bytes of whitespace before the JSON
	issuer  string        // the configuration's issuer ("": the server's URL)
	jwksURI string        // the configuration's jwks_uri ("": /jwks.json here)

	fetches, discoveries atomic.Int64
}

func newIDP(t testing.TB, keys ...signer) *idp {
	t.Helper()
	p := &idp{}
	for _, k := range keys {
		p.keys = append(p.keys, k.jwk)
	}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.Close)
	return p
}

func (p *idp) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	status, delay, pad := p.status, p.delay, p.pad
	keys, raw := append([]jwkset.JWK(nil), p.keys...), append([]string(nil), p.raw...)
	issuer, jwksURI := p.issuer, p.jwksURI
	p.mu.Unlock()
	if issuer == "" {
		issuer = p.URL
	}
	if jwksURI == "" {
		jwksURI = p.URL + "/jwks.json"
	}
	var body []byte
	switch r.URL.Path {
	case "/moved": // one redirect, to the set
		http.Redirect(w, r, "/jwks.json", http.StatusFound)
		return
	case "/away": // to plain http on another host
		http.Redirect(w, r, "http://keys.example/jwks.json", http.StatusFound)
		return
	case "/loop": // redirects without end
		http.Redirect(w, r, "/loop", http.StatusFound)
		return
	case "/jwks.json":
		p.fetches.Add(1)
		parts := raw
		for _, k := range keys {
			b, _ := json.Marshal(k.Marshal())
			parts = append(parts, string(b))
		}
		body = []byte(`{"keys":[` + strings.Join(parts, ",") + `]}`)
	case "/.well-known/openid-configuration":
		p.discoveries.Add(1)
		body, _ = json.Marshal(map[string]string{"issuer": issuer, "jwks_uri": jwksURI, "authorization_endpoint": issuer + "/authorize"})
	default:
		http.NotFound(w, r)
		return
	}
	select {
	case <-time.After(delay):
	case <-r.Context().Done():
		return
	}
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(bytes.Repeat([]byte(" "), pad))
	w.Write(body)
}

// set changes the published keys.
func (p *idp) set(keys ...signer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = nil
	for _, k := range keys {
		p.keys = append(p.keys, k.jwk)
	}
}

func (p *idp) update(f func(p *idp)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

// logBuffer collects a verifier's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// verifier is an Authenticator with the provider's key set, as the server
// builds it.
type verifier struct {
	*auth.Authenticator
	set  *jwks.Set
	logs *logBuffer
}

// newVerifier starts a key set with cfg (the provider's URL, fast
// timeouts) and an Authenticator trusting it; issuer is the provider's;
// mapping gives the tenant, role and subject claims ("" for the native).
func newVerifier(t testing.TB, cfg jwks.Config, issuer string, mapping ...string) *verifier {
	t.Helper()
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	set, err := jwks.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(set.Close)
	ac := auth.Config{Secret: []byte(secret), Issuer: issuer, Audience: audience, KeySet: set}
	if issuer == "" {
		ac.Audience = ""
	}
	if len(mapping) > 0 {
		for i, dst := range []*auth.ClaimPath{&ac.TenantClaim, &ac.RoleClaim, &ac.SubjectClaim}[:len(mapping)] {
			if mapping[i] == "" {
				continue
			}
			if *dst, err = auth.ParseClaimPath(mapping[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	return &verifier{Authenticator: auth.New(ac), set: set, logs: logs}
}

// claims returns an admin's claims of tenant t1 from issuer, valid for an
// hour; sub varies so that each token is new to the verified-token cache.
var subN atomic.Int64

func claims(issuer string) jwt.MapClaims {
	return jwt.MapClaims{"sub": "u" + strconv.FormatInt(subN.Add(1), 10), "tenant_id": "t1", "role": "admin", "iss": issuer, "aud": audience,
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
}

// eventually retries f every 20 ms until it reports true or d passes.
func eventually(t testing.TB, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
