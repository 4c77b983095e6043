package jwks_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/clinicpulse/clinicpulse/auth"
	"github.com/clinicpulse/clinicpulse/auth/jwks"
	"github.com/clinicpulse/clinicpulse/internal/tokentest"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/golang-jwt/jwt/v5"
)

// refused checks that tok is refused with a 401 whose detail mentions
// detail and never the token.
func refused(t *testing.T, v *verifier, name, tok, detail string) {
	t.Helper()
	_, err := v.Verify(tok)
	if models.ErrorCode(err) != models.EUNAUTHORIZED {
		t.Errorf("%s: %v, want unauthorized", name, err)
		return
	}
	if msg := models.ErrorMessage(err); !strings.Contains(msg, detail) || (tok != "" && strings.Contains(msg, tok)) {
		t.Errorf("%s: detail %q, want it to mention %q", name, msg, detail)
	}
}

// accepted checks that tok verifies to the admin of t1 its claims name.
func accepted(t *testing.T, v *verifier, name, tok string) {
	t.Helper()
	got, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if got.TenantID != "t1" || got.Role != models.RoleAdmin || !strings.HasPrefix(got.Subject, "u") {
		t.Fatalf("%s: verified to %+v", name, got)
	}
}

// TestAlgorithms: tokens signed with RS256, ES256 and EdDSA by keys of the
// set are accepted, beside HS256 tokens signed with the secret; a key
// published without "alg" is pinned by its type.
func TestAlgorithms(t *testing.T) {
	rs, es, ed := newSigner(t, "RS256", "rs-1"), newSigner(t, "ES256", "es-1"), newSigner(t, "EdDSA", "ed-1")
	bare := newSigner(t, "ES256", "es-no-alg", func(m *jwkset.JWKMetadataOptions) { m.ALG, m.USE = "", "" })
	p := newIDP(t, rs, es, ed, bare)
	v := newVerifier(t, jwks.Config{URL: p.URL + "/jwks.json"}, p.URL)
	if !v.set.Loaded() {
		t.Fatal("the set is not loaded after New")
	}
	for _, s := range []signer{rs, es, ed, bare} {
		accepted(t, v, s.kid, s.sign(t, claims(p.URL)))
	}
	hs, err := auth.New(auth.Config{Secret: []byte(secret), Issuer: p.URL, Audience: audience}).Sign(
		models.Actor{Subject: "u-hs", TenantID: "t1", Role: models.RoleAdmin}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	accepted(t, v, "HS256 beside the key set", hs)
	// The key without alg verifies ES256 only.
	refused(t, v, "RS256 naming an EC key", tokentest.SignRaw("RS256", rs.priv, tokentest.Header("RS256", bare.kid, ""), mapClaims(t, claims(p.URL))), "not a signing key for this alg")
	if n := p.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want the one at start", n)
	}
}

func mapClaims(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestStrictTokensJWKS: the table of package auth's TestStrictTokens, for
// tokens signed by each algorithm of a key set.
func TestStrictTokensJWKS(t *testing.T) {
	signers := []signer{newSigner(t, "RS256", "rs-1"), newSigner(t, "ES256", "es-1"), newSigner(t, "EdDSA", "ed-1")}
	p := newIDP(t, signers...)
	v := newVerifier(t, jwks.Config{URL: p.URL + "/jwks.json"}, "") // no iss/aud: the table's claims have none
	exp := time.Now().Add(time.Hour).Unix()
	for _, s := range signers {
		good := tokentest.SignRaw(s.alg, s.priv, tokentest.Header(s.alg, s.kid, `,"typ":"JWT"`), tokentest.Claims(exp, ""))
		if _, err := v.Verify(good); err != nil {
			t.Fatalf("%s: the well-formed raw token: %v", s.alg, err)
		}
		for _, tc := range tokentest.StrictCases(s.alg, s.kid, exp) {
			tok := tokentest.SignRaw(s.alg, s.priv, tc.Header, tc.Claims)
			for range 2 { // the second time would come from the cache
				refused(t, v, s.alg+" "+tc.Name, tok, tc.Detail)
			}
		}
	}
}

// TestAlgorithmConfusion: no token chooses how a key is used (RFC 8725
// §2.1). HS256 is verified with the secret only — never with a key of the
// set, whether the public key's PEM, DER or JWK bytes or a symmetric key
// the set publishes; alg none is refused; a public-key token must name a
// key of its own type, curve and size whose alg, use and key_ops allow it.
func TestAlgorithmConfusion(t *testing.T) {
	rs, es, ed := newSigner(t, "RS256", "rs-1"), newSigner(t, "ES256", "es-1"), newSigner(t, "EdDSA", "ed-1")
	p384 := newSigner(t, "ES384", "ec-p384", func(m *jwkset.JWKMetadataOptions) { m.ALG = "" })
	weak := newSigner(t, "RS256-1024", "rs-1024")
	enc := publish(t, rs.priv, "RS256", "rs-enc", func(m *jwkset.JWKMetadataOptions) { m.ALG, m.USE = "", jwkset.UseEnc })
	rs384 := publish(t, rs.priv, "RS384", "rs-384")
	ops := publish(t, es.priv, "ES256", "es-ops", func(m *jwkset.JWKMetadataOptions) { m.USE, m.KEYOPS = "", []jwkset.KEYOPS{jwkset.KeyOpsEncrypt} })
	p := newIDP(t, rs, es, ed, p384, weak, enc, rs384, ops)
	hmacKey := []byte("a-symmetric-key-the-set-publishes-0123456789")
	p.update(func(p *idp) {
		p.raw = []string{`{"kty":"oct","kid":"oct-1","alg":"HS256","k":"` + base64.RawURLEncoding.EncodeToString(hmacKey) + `"}`}
	})
	v := newVerifier(t, jwks.Config{URL: p.URL + "/jwks.json"}, p.URL)
	c := func() string { return mapClaims(t, claims(p.URL)) }

	der, err := x509.MarshalPKIXPublicKey(rs.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	jwkJSON, _ := json.Marshal(rs.jwk.Marshal())
	for name, key := range map[string][]byte{"PEM": pemBytes, "DER": der, "JWK JSON": jwkJSON, "modulus": []byte(rs.jwk.Marshal().N)} {
		refused(t, v, "HS256 with the RSA public key's "+name, tokentest.SignRaw("HS256", key, tokentest.Header("HS256", rs.kid, ""), c()), "bad signature")
	}
	refused(t, v, "HS256 with the set's symmetric key", tokentest.SignRaw("HS256", hmacKey, tokentest.Header("HS256", "oct-1", ""), c()), "bad signature")
	enc64 := base64.RawURLEncoding.EncodeToString
	none := enc64([]byte(`{"alg":"none","kid":"rs-1"}`)) + "." + enc64([]byte(c())) + "."
	refused(t, v, "alg none", none, "invalid token")
	refused(t, v, "alg none, signed", tokentest.SignRaw("RS256", rs.priv, `{"alg":"none","kid":"rs-1"}`, c()), "invalid token")
	refused(t, v, "PS256", tokentest.SignRaw("PS256", rs.priv, tokentest.Header("PS256", rs.kid, ""), c()), "invalid token")
	refused(t, v, "ES384", tokentest.SignRaw("ES384", p384.priv, tokentest.Header("ES384", p384.kid, ""), c()), "invalid token")
	for _, tc := range []struct {
		name, alg, kid string
		by             signer
	}{
		{"RS256 naming an EC key", "RS256", es.kid, rs},
		{"RS256 naming an Ed25519 key", "RS256", ed.kid, rs},
		{"ES256 naming an RSA key", "ES256", rs.kid, es},
		{"ES256 naming a P-384 key", "ES256", p384.kid, es},
		{"EdDSA naming an EC key", "EdDSA", es.kid, ed},
		{"RS256 naming a symmetric key", "RS256", "oct-1", rs},
		{"RS256 naming a 1024-bit key", "RS256", weak.kid, weak},
		{"RS256 naming a key for encryption", "RS256", enc.kid, rs},
		{"RS256 naming a key published for RS384", "RS256", rs384.kid, rs},
		{"ES256 naming a key whose key_ops lack verify", "ES256", ops.kid, es},
	} {
		refused(t, v, tc.name, tokentest.SignRaw(tc.alg, tc.by.priv, tokentest.Header(tc.alg, tc.kid, ""), c()), "not a signing key for this alg")
	}
	refused(t, v, "no kid", tokentest.SignRaw("RS256", rs.priv, tokentest.Header("RS256", "", ""), c()), "names no key (kid)")
	refused(t, v, "kid a number", tokentest.SignRaw("RS256", rs.priv, `{"alg":"RS256","kid":1}`, c()), "names no key (kid)")
	refused(t, v, "kid empty", tokentest.SignRaw("RS256", rs.priv, `{"alg":"RS256","kid":""}`, c()), "names no key (kid)")
	refused(t, v, "unknown kid", tokentest.SignRaw("RS256", rs.priv, tokentest.Header("RS256", "rs-2", ""), c()), "no key of the identity provider's key set has this kid")
	refused(t, v, "another RSA key under a known kid", newSigner(t, "RS256", rs.kid).sign(t, claims(p.URL)), "bad signature")
	accepted(t, v, "the genuine token", rs.sign(t, claims(p.URL)))
	if strings.Contains(v.logs.String(), "eyJ") {
		t.Fatalf("a token reached the log: %s", v.logs)
	}
}

// TestRotation: a key the provider adds is found by the first token naming
// it (one fetch); a key it removes stops verifying — tokens already
// verified and remembered too — from the next fetch, whether a token with
// an unknown kid or the schedule triggers it.
func TestRotation(t *testing.T) {
	k1, k2 := newSigner(t, "RS256", "k1"), newSigner(t, "ES256", "k2")
	p := newIDP(t, k1)
	v := newVerifier(t, jwks.Config{URL: p.URL + "/jwks.json", UnknownKIDEvery: 300 * time.Millisecond, Refresh: time.Hour}, p.URL)
	old := k1.sign(t, claims(p.URL))
	accepted(t, v, "k1", old)

	p.set(k1, k2)
	accepted(t, v, "k2, new to the verifier", k2.sign(t, claims(p.URL)))
	if n := p.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2 (start, then k2's unknown kid)", n)
	}

	p.set(k2) // the provider retires k1
	accepted(t, v, "k1 before any fetch", old)
	unknown := tokentest.SignRaw("ES256", k2.priv, tokentest.Header("ES256", "k3", ""), mapClaims(t, claims(p.URL)))
	eventually(t, 5*time.Second, "no fetch after the unknown-kid window", func() bool {
		v.Verify(unknown)
		return p.fetches.Load() >= 3
	})
	refused(t, v, "k1's remembered token after the fetch", old, "no key of the identity provider's key set has this kid")
	refused(t, v, "a new k1 token after the fetch", k1.sign(t, claims(p.URL)), "no key of the identity provider's key set has this kid")
	accepted(t, v, "k2 stays", k2.sign(t, claims(p.URL)))

	// The same removal through the scheduled fetch alone.
	q := newIDP(t, k1, k2)
	w := newVerifier(t, jwks.Config{URL: q.URL + "/jwks.json", UnknownKIDEvery: time.Hour, Refresh: 200 * time.Millisecond}, q.URL)
	kept := k1.sign(t, claims(q.URL))
	if _, err := w.Verify(kept); err != nil {
		t.Fatal(err)
	}
	q.set(k2)
	eventually(t, 5*time.Second, "k1 still verifies after scheduled fetches", func() bool {
		_, err := w.Verify(kept)
		return err != nil
	})
	if _, err := w.Verify(k2.sign(t, claims(q.URL))); err != nil {
		t.Fatalf("k2 after the scheduled fetch: %v", err)
	}
}

// TestUnknownKIDRateLimited: a flood of tokens naming unknown kids costs
// the provider at most one fetch per window, and no request waits for the
// limiter beyond the fetch timeout.
func TestUnknownKIDRateLimited(t *testing.T) {
	k1 := newSigner(t, "EdDSA", "k1")
	p := newIDP(t, k1)
	v := newVerifier(t, jwks.Config{URL: p.URL + "/jwks.json", UnknownKIDEvery: time.Hour, Timeout: time.Second}, p.URL)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var slowest time.Duration
	for i := range 40 {
		tok := tokentest.SignRaw("EdDSA", k1.priv, tokentest.Header("EdDSA", "forged-"+strconv.Itoa(i), ""), mapClaims(t, claims(p.URL)))
		wg.Go(func() {
			start := time.Now()
			_, err := v.Verify(tok)
			d := time.Since(start)
			mu.Lock()
			slowest = max(slowest, d)
			mu.Unlock()
			if models.ErrorCode(err) != models.EUNAUTHORIZED {
				t.Errorf("forged kid: %v", err)
			}
		})
	}
	wg.Wait()
	if n := p.fetches.Load(); n > 2 {
		t.Fatalf("%d fetches for 40 unknown kids, want at most 2 (start + one)", n)
	}
	if slowest > 3*time.Second { // one request fetches (≤ 1 s); none waits for the hour-long window
		t.Fatalf("a request with an unknown kid waited %v", slowest)
	}
	accepted(t, v, "the known key meanwhile", k1.sign(t, claims(p.URL)))
	t.Logf("40 unknown kids: %d fetches, slowest refusal %v", p.fetches.Load(), slowest)
}

// TestProviderDownAtStart: New returns without the keys; the set's tokens
// are refused as "not loaded" and HS256 tokens still work; once the
// provider answers, the next token (through the unknown-kid fetch) loads
// the set. An unreachable port behaves the same.
func TestProviderDownAtStart(t *testing.T) {
	k1 := newSigner(t, "RS256", "k1")
	p := newIDP(t, k1)
	p.update(func(p *idp) { p.status = 503 })
	start := time.Now()
	v := newVerifier(t, jwks.Config{URL: p.URL + "/jwks.json", UnknownKIDEvery: 200 * time.Millisecond}, p.URL)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("New took %v with the provider answering 503", d)
	}
	if v.set.Loaded() {
		t.Fatal("loaded from a 503")
	}
	refused(t, v, "before the set loads", k1.sign(t, claims(p.URL)), "not loaded")
	hs, _ := auth.New(auth.Config{Secret: []byte(secret), Issuer: p.URL, Audience: audience}).Sign(models.Actor{Subject: "u-hs", TenantID: "t1", Role: models.RoleAdmin}, time.Hour)
	accepted(t, v, "HS256 while the provider is down", hs)
	if !strings.Contains(v.logs.String(), "fetching the key set failed") {
		t.Fatalf("the failed fetch was not logged: %s", v.logs)
	}
	p.update(func(p *idp) { p.status = 0 })
	eventually(t, 5*time.Second, "the set never loaded once the provider answered", func() bool {
		_, err := v.Verify(k1.sign(t, claims(p.URL)))
		return err == nil
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/jwks.json"
	ln.Close()
	start = time.Now()
	w := newVerifier(t, jwks.Config{URL: closed}, p.URL)
	if d := time.Since(start); d > 2*time.Second || w.set.Loaded() {
		t.Fatalf("a closed port: New took %v, loaded %v", d, w.set.Loaded())
	}
	refused(t, w, "a closed port", k1.sign(t, claims(p.URL)), "not loaded")
}

// TestProviderDownDuringRefresh: fetches that fail — a 500, a body over the
// bound, a provider slower than the timeout — change nothing: the keys
// already held keep verifying, and each failure is logged. When the
// provider recovers, its set replaces the old one.
func TestProviderDownDuringRefresh(t *testing.T) {
	k1, k2 := newSigner(t, "ES256", "k1"), newSigner(t, "EdDSA", "k2")
	p := newIDP(t, k1)
	v := newVerifier(t, jwks.Config{URL: p.URL + "/jwks.json", Refresh: 100 * time.Millisecond, UnknownKIDEvery: time.Hour,
		Timeout: time.Second, MaxBytes: 64 << 10}, p.URL)
	accepted(t, v, "k1", k1.sign(t, claims(p.URL)))
	waitFetches := func(what string) {
		t.Helper()
		n := p.fetches.Load()
		eventually(t, 15*time.Second, what+": no scheduled fetch", func() bool { return p.fetches.Load() >= n+2 })
	}
	for _, tc := range []struct {
		name, log string
		f         func(p *idp)
	}{
		{"500", "invalid HTTP status code", func(p *idp) { p.status = 500 }},
		{"a body over the bound", "too large", func(p *idp) { p.status, p.pad = 0, 100<<10 }},
		// The client's timeout or the fetch's context, whichever ends first.
		{"slower than the timeout", "(Timeout|deadline) exceeded", func(p *idp) { p.pad, p.delay = 0, 3*time.Second }},
	} {
		p.update(func(p *idp) {
			tc.f(p)
			p.keys = []jwkset.JWK{k2.jwk} // what a successful fetch would bring
		})
		waitFetches(tc.name)
		accepted(t, v, "k1 while the fetches fail: "+tc.name, k1.sign(t, claims(p.URL)))
		refused(t, v, "k2 while the fetches fail: "+tc.name, k2.sign(t, claims(p.URL)), "no key")
		if !regexp.MustCompile(tc.log).MatchString(v.logs.String()) {
			t.Errorf("%s: the log does not say %q: %s", tc.name, tc.log, v.logs)
		}
	}
	p.update(func(p *idp) { p.delay = 0 })
	eventually(t, 5*time.Second, "the recovered provider's set was not taken", func() bool {
		_, err := v.Verify(k2.sign(t, claims(p.URL)))
		return err == nil
	})
	refused(t, v, "k1 after the provider dropped it", k1.sign(t, claims(p.URL)), "no key")
}

// TestDiscovery: with an issuer and no URL, the key set's URL comes from
// the issuer's OpenID configuration, whose issuer must equal it exactly;
// a failed discovery is retried in the background.
func TestDiscovery(t *testing.T) {
	k1 := newSigner(t, "RS256", "k1")
	p := newIDP(t, k1)
	v := newVerifier(t, jwks.Config{Issuer: p.URL}, p.URL)
	accepted(t, v, "discovered", k1.sign(t, claims(p.URL)))
	if p.discoveries.Load() != 1 || p.fetches.Load() != 1 {
		t.Fatalf("%d discoveries, %d fetches", p.discoveries.Load(), p.fetches.Load())
	}

	// An issuer with a trailing slash (Auth0's): the configuration is at
	// the issuer without it, and names the issuer with it.
	slash := newIDP(t, k1)
	slash.update(func(p *idp) { p.issuer = p.URL + "/" })
	accepted(t, newVerifier(t, jwks.Config{Issuer: slash.URL + "/"}, slash.URL+"/"), "issuer with a slash", k1.sign(t, claims(slash.URL+"/")))

	for _, tc := range []struct {
		name, issuer, jwksURI, log string
	}{
		{"another issuer", "https://other.example", "", "names the issuer"},
		{"the issuer without its slash", "", "", "names the issuer"}, // configured with a slash below
		{"jwks_uri over plain http to another host", "", "http://keys.example/jwks.json", "http:// only to a loopback host"},
	} {
		q := newIDP(t, k1)
		q.update(func(p *idp) { p.issuer, p.jwksURI = tc.issuer, tc.jwksURI })
		issuer := q.URL
		if tc.issuer == "" && tc.jwksURI == "" {
			issuer = q.URL + "/"
		}
		w := newVerifier(t, jwks.Config{Issuer: issuer, DiscoveryRetry: 50 * time.Millisecond}, issuer)
		refused(t, w, tc.name, k1.sign(t, claims(issuer)), "not loaded")
		eventually(t, 5*time.Second, tc.name+": discovery not retried", func() bool { return q.discoveries.Load() >= 2 })
		if w.set.Loaded() || q.fetches.Load() != 0 {
			t.Errorf("%s: loaded %v after %d fetches", tc.name, w.set.Loaded(), q.fetches.Load())
		}
		if !strings.Contains(w.logs.String(), tc.log) {
			t.Errorf("%s: the log does not say %q: %s", tc.name, tc.log, w.logs)
		}
	}

	// Down at start, then up: the background retry loads the set.
	down := newIDP(t, k1)
	down.update(func(p *idp) { p.status = 503 })
	w := newVerifier(t, jwks.Config{Issuer: down.URL, DiscoveryRetry: 50 * time.Millisecond}, down.URL)
	refused(t, w, "discovery down", k1.sign(t, claims(down.URL)), "not loaded")
	down.update(func(p *idp) { p.status = 0 })
	eventually(t, 5*time.Second, "discovery never retried into a loaded set", w.set.Loaded)
	accepted(t, w, "after the retried discovery", k1.sign(t, claims(down.URL)))
}

// TestClaimMapping: the tenant and role of a key set's token come from the
// configured claims — a namespaced URL claim, a dotted path — and are held
// to the native claims' rules; tokens signed with the secret keep tenant_id
// and role.
func TestClaimMapping(t *testing.T) {
	k1 := newSigner(t, "ES256", "k1")
	p := newIDP(t, k1)
	const tenantClaim, roleClaim = "https://clinic.example/tenant_id", "app_metadata.clinicpulse.role"
	v := newVerifier(t, jwks.Config{URL: p.URL + "/jwks.json"}, p.URL, tenantClaim, roleClaim)
	mapped := func(tenant, role any) jwt.MapClaims {
		c := claims(p.URL)
		delete(c, "tenant_id")
		c["role"] = "authenticated" // Supabase's own top-level role, not ours
		if tenant != nil {
			c[tenantClaim] = tenant
		}
		if role != nil {
			c["app_metadata"] = map[string]any{"clinicpulse": map[string]any{"role": role}, "provider": "email"}
		}
		return c
	}
	got, err := v.Verify(k1.sign(t, mapped("clinic-9", "doctor")))
	if err != nil || got.TenantID != "clinic-9" || got.Role != models.RoleDoctor {
		t.Fatalf("mapped claims: %+v %v", got, err)
	}
	if got, err := v.Verify(k1.sign(t, mapped(nil, "platform"))); err != nil || got.Role != models.RolePlatform || got.TenantID != "" {
		t.Fatalf("a mapped platform role without a tenant: %+v %v", got, err)
	}
	for _, tc := range []struct {
		name         string
		tenant, role any
		detail       string
	}{
		{"tenant missing", nil, "doctor", `missing or malformed tenant (claim "https://clinic.example/tenant_id")`},
		{"tenant a number", 42, "doctor", "is not a JSON string"},
		{"tenant malformed", "a b/../c", "doctor", "malformed tenant"},
		{"tenant too long", strings.Repeat("t", 65), "doctor", "malformed tenant"},
		{"role missing", "clinic-9", nil, `missing or unknown role (claim "app_metadata.clinicpulse.role")`},
		{"role unknown", "clinic-9", "root", "unknown role"},
		{"role an array", "clinic-9", []string{"doctor"}, "is not a JSON string"},
		{"role case-variant", "clinic-9", "Doctor", "unknown role"},
	} {
		refused(t, v, tc.name, k1.sign(t, mapped(tc.tenant, tc.role)), tc.detail)
	}
	// The native claims of a key set's token are not read when mapped.
	native := claims(p.URL)
	refused(t, v, "native claims only", k1.sign(t, native), `missing or unknown role (claim "app_metadata.clinicpulse.role")`)
	native["app_metadata"] = map[string]any{"clinicpulse": map[string]any{"role": "admin"}}
	refused(t, v, "native tenant_id only", k1.sign(t, native), `missing or malformed tenant (claim "https://clinic.example/tenant_id")`)
	// Tokens signed with the secret keep tenant_id and role.
	hs := auth.New(auth.Config{Secret: []byte(secret), Issuer: p.URL, Audience: audience})
	tok, _ := hs.Sign(models.Actor{Subject: "u-hs", TenantID: "t1", Role: models.RoleAdmin}, time.Hour)
	accepted(t, v, "HS256 with native claims", tok)
	hsMapped := mapped("clinic-9", "doctor")
	hsMapped["sub"] = "u-hs-mapped"
	refused(t, v, "HS256 with mapped claims only", tokentest.SignRaw("HS256", []byte(secret), `{"alg":"HS256"}`, mapClaims(t, hsMapped)), "role")

	// The subject: a patient's token carries the patient's ClinicPulse id
	// in a claim of its own, the provider's sub being its user id.
	u := newVerifier(t, jwks.Config{URL: p.URL + "/jwks.json"}, p.URL, "", "", "app_metadata.clinicpulse_id")
	c := claims(p.URL)
	c["sub"], c["role"] = "auth0|6543", "patient"
	c["app_metadata"] = map[string]any{"clinicpulse_id": "pat_42"}
	if got, err := u.Verify(k1.sign(t, c)); err != nil || got.Subject != "pat_42" || got.Role != models.RolePatient {
		t.Fatalf("mapped subject: %+v %v", got, err)
	}
	c["app_metadata"] = map[string]any{"clinicpulse_id": "pat\n42"}
	refused(t, u, "mapped subject with a newline", k1.sign(t, c), `sub (claim "app_metadata.clinicpulse_id") must be at most 255 characters`)
	c["app_metadata"] = map[string]any{}
	refused(t, u, "mapped subject missing", k1.sign(t, c), `missing sub (claim "app_metadata.clinicpulse_id")`)

	// A literal top-level name wins over the dotted path it spells.
	w := newVerifier(t, jwks.Config{URL: p.URL + "/jwks.json"}, p.URL, "org.id")
	c = claims(p.URL)
	c["org.id"], c["org"] = "literal", map[string]any{"id": "nested"}
	if got, err := w.Verify(k1.sign(t, c)); err != nil || got.TenantID != "literal" {
		t.Fatalf("literal over dotted: %+v %v", got, err)
	}
	delete(c, "org.id")
	c["sub"] = "u-nested"
	if got, err := w.Verify(k1.sign(t, c)); err != nil || got.TenantID != "nested" {
		t.Fatalf("dotted: %+v %v", got, err)
	}
}

// TestRedirects: a moved key set is followed; a redirect to plain http on
// another host, or past three redirects, fails the fetch.
func TestRedirects(t *testing.T) {
	k1 := newSigner(t, "EdDSA", "k1")
	p := newIDP(t, k1)
	accepted(t, newVerifier(t, jwks.Config{URL: p.URL + "/moved"}, p.URL), "moved", k1.sign(t, claims(p.URL)))
	for path, log := range map[string]string{"/away": "http:// only to a loopback host", "/loop": "more than 3 redirects"} {
		v := newVerifier(t, jwks.Config{URL: p.URL + path}, p.URL)
		if v.set.Loaded() || !strings.Contains(v.logs.String(), log) {
			t.Errorf("%s: loaded %v, log %s", path, v.set.Loaded(), v.logs)
		}
	}
}

// TestCheckURL: keys come over https, or plain http on loopback only.
func TestCheckURL(t *testing.T) {
	for _, ok := range []string{"https://idp.example/.well-known/jwks.json", "https://idp.example:8443/realms/x/protocol/openid-connect/certs",
		"http://127.0.0.1:8080/jwks", "http://localhost/jwks", "http://[::1]:9/jwks"} {
		if err := jwks.CheckURL(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "idp.example/jwks", "ftp://idp.example/jwks", "http://idp.example/jwks", "http://10.0.0.1/jwks",
		"https://user:pass@idp.example/jwks", "https:///jwks", "https://idp.example/jwks#x", "file:///etc/passwd", "http://127.0.0.1.nip.io/jwks"} {
		if err := jwks.CheckURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if got := jwks.DiscoveryURL("https://tenant.example.com/"); got != "https://tenant.example.com/.well-known/openid-configuration" {
		t.Errorf("discovery URL %s", got)
	}
	if got := jwks.DiscoveryURL("https://kc.example/realms/clinic"); got != "https://kc.example/realms/clinic/.well-known/openid-configuration" {
		t.Errorf("discovery URL %s", got)
	}
}
