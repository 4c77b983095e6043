package jwks_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/auth/jwks"
	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/internal/tokentest"
	"github.com/golang-jwt/jwt/v5"
)

// startServer starts the whole server trusting the provider p (its issuer,
// audience and key set), over loopback HTTP.
func startServer(t *testing.T, p *idp, cfg jwks.Config) *apptest.Server {
	t.Helper()
	if cfg.URL == "" && cfg.Issuer == "" {
		cfg.URL = p.URL + "/jwks.json"
	}
	return apptest.Start(t, func(c *app.Config) {
		c.JWTIssuer, c.JWTAudience, c.JWKS = p.URL, audience, cfg
	})
}

// expect401 checks a 401 problem+json with WWW-Authenticate whose detail
// mentions detail and never the token.
func expect401(t *testing.T, s *apptest.Server, name, tok, detail string) {
	t.Helper()
	r := s.Do(t, http.MethodGet, "/api/v1/patients", tok, nil)
	var p struct {
		Status int
		Detail string
	}
	_ = json.Unmarshal(r.Body, &p)
	switch {
	case r.Status != http.StatusUnauthorized || p.Status != http.StatusUnauthorized:
		t.Errorf("%s: %d %s, want 401", name, r.Status, r.Body)
	case r.Header.Get("Content-Type") != "application/problem+json" || r.Header.Get("WWW-Authenticate") == "":
		t.Errorf("%s: headers %v", name, r.Header)
	case !strings.Contains(p.Detail, detail):
		t.Errorf("%s: detail %q, want it to mention %q", name, p.Detail, detail)
	case tok != "" && strings.Contains(string(r.Body), tok):
		t.Errorf("%s: the problem echoes the token", name)
	}
}

func expect200(t *testing.T, s *apptest.Server, name, tok string) {
	t.Helper()
	if r := s.Do(t, http.MethodGet, "/api/v1/patients", tok, nil); r.Status != http.StatusOK {
		t.Fatalf("%s: %d %s", name, r.Status, r.Body)
	}
}

// TestServerTokenTable: the token table of api's TestTokens, for tokens of
// the provider's key set, against the whole server over HTTP; then the
// cases only a key set has.
func TestServerTokenTable(t *testing.T) {
	rs, es, ed := newSigner(t, "RS256", "rs-1"), newSigner(t, "ES256", "es-1"), newSigner(t, "EdDSA", "ed-1")
	p := newIDP(t, rs, es, ed)
	s := startServer(t, p, jwks.Config{})
	now := time.Now()
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "u1", "tenant_id": "tok", "role": "admin", "exp": now.Add(time.Hour).Unix(), "iss": p.URL, "aud": audience}
	}
	with := func(k string, v any) jwt.MapClaims {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	enc := base64.RawURLEncoding.EncodeToString
	payload, _ := json.Marshal(good())
	for _, sg := range []signer{rs, es, ed} {
		for name, tc := range map[string]struct{ tok, detail string }{
			"alg none":       {enc([]byte(`{"alg":"none","typ":"JWT","kid":"`+sg.kid+`"}`)) + "." + enc(payload) + ".", "invalid token"},
			"HS512":          {tokentest.SignRaw("HS512", []byte(apptest.Secret), tokentest.Header("HS512", sg.kid, ""), string(payload)), "invalid token"},
			"another key":    {newSigner(t, sg.alg, sg.kid).sign(t, good()), "bad signature"},
			"expired":        {sg.sign(t, with("exp", now.Add(-time.Hour).Unix())), "expired"},
			"nbf future":     {sg.sign(t, with("nbf", now.Add(time.Hour).Unix())), "not valid yet"},
			"no exp":         {sg.sign(t, with("exp", nil)), "required claim"},
			"wrong iss":      {sg.sign(t, with("iss", "https://evil.example")), "wrong issuer"},
			"wrong aud":      {sg.sign(t, with("aud", "other")), "wrong audience"},
			"no tenant":      {sg.sign(t, with("tenant_id", nil)), "tenant_id"},
			"no role":        {sg.sign(t, with("role", nil)), "role"},
			"unknown role":   {sg.sign(t, with("role", "root")), "role"},
			"bad tenant":     {sg.sign(t, with("tenant_id", "a b/../c")), "tenant_id"},
			"garbage":        {"not.a.token", "malformed"},
			"empty":          {"", "missing bearer token"},
			"signature cut":  {sg.sign(t, good())[:60], "invalid token"},
			"no kid":         {tokentest.SignRaw(sg.alg, sg.priv, tokentest.Header(sg.alg, "", ""), string(payload)), "kid"},
			"unknown kid":    {tokentest.SignRaw(sg.alg, sg.priv, tokentest.Header(sg.alg, "nope", ""), string(payload)), "has this kid"},
			"HS256 with kid": {tokentest.SignRaw("HS256", []byte(p.URL), tokentest.Header("HS256", sg.kid, ""), string(payload)), "bad signature"},
		} {
			expect401(t, s, sg.alg+" "+name, tc.tok, tc.detail)
		}
		expect200(t, s, sg.alg, sg.sign(t, good()))
	}
	expect200(t, s, "HS256 beside the key set", s.Token("tok", "admin", "u-hs"))
}

// TestServerStartsWithProviderDown: the server starts while the provider
// answers 503; HS256 tokens work, the key set's tokens are 401 "not
// loaded", and once the provider answers they are accepted.
func TestServerStartsWithProviderDown(t *testing.T) {
	k1 := newSigner(t, "ES256", "k1")
	p := newIDP(t, k1)
	p.update(func(p *idp) { p.status = http.StatusServiceUnavailable })
	start := time.Now()
	s := startServer(t, p, jwks.Config{UnknownKIDEvery: 200 * time.Millisecond, Timeout: time.Second})
	t.Logf("started in %v with the provider down", time.Since(start).Round(time.Millisecond))
	expect200(t, s, "HS256", s.Token("down", "admin", "u-hs"))
	expect401(t, s, "the key set's token", k1.sign(t, claims(p.URL)), "not loaded")
	p.update(func(p *idp) { p.status = 0 })
	eventually(t, 5*time.Second, "the key set's token still refused after the provider came back", func() bool {
		return s.Do(t, http.MethodGet, "/api/v1/patients", k1.sign(t, claims(p.URL)), nil).Status == http.StatusOK
	})
}
