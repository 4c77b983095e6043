package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/clinicpulse/clinicpulse/auth"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/golang-jwt/jwt/v5"
)

// TestServeWithIdentityProvider: the server configured as an operator
// would — JWT_ISSUER naming a provider on loopback (OIDC discovery),
// JWT_AUDIENCE, claims mapped to a namespaced and a nested claim — accepts
// the provider's ES256 tokens and the secret's HS256 tokens, and its log
// records the key set without any token.
func TestServeWithIdentityProvider(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jwkset.NewJWKFromKey(key.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: "kc-1", ALG: jwkset.AlgES256, USE: jwkset.UseSig}})
	if err != nil {
		t.Fatal(err)
	}
	var issuer string
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/realms/clinic/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "jwks_uri": issuer + "/protocol/openid-connect/certs"})
		case "/realms/clinic/protocol/openid-connect/certs":
			json.NewEncoder(w).Encode(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
		default:
			http.NotFound(w, r)
		}
	}))
	defer idp.Close()
	issuer = idp.URL + "/realms/clinic"
	s := startServer(t, map[string]string{"JWT_ISSUER": issuer, "JWT_AUDIENCE": "clinicpulse",
		"JWT_TENANT_CLAIM": "https://clinic.example/tenant", "JWT_ROLE_CLAIM": "resource_access.clinicpulse.role"})
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": issuer, "aud": []string{"clinicpulse", "account"}, "sub": "f81d4fae",
		"exp": time.Now().Add(5 * time.Minute).Unix(), "https://clinic.example/tenant": "idp-clinic",
		"resource_access": map[string]any{"clinicpulse": map[string]any{"role": "coordinator"}}})
	tok.Header["kid"] = "kc-1"
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	get := func(tok string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, s.base+"/api/v1/patients", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var p struct{ Detail string }
		json.NewDecoder(res.Body).Decode(&p)
		return res.StatusCode, p.Detail
	}
	if st, detail := get(signed); st != http.StatusOK {
		t.Fatalf("the provider's token: %d %s", st, detail)
	}
	if st, detail := get(s.token(t, "idp-clinic")); st != http.StatusUnauthorized || !strings.Contains(detail, "required claim") {
		t.Fatalf("an HS256 token without the issuer: %d %s", st, detail)
	}
	hs, err := auth.New(auth.Config{Secret: []byte(testSecret), Issuer: issuer, Audience: "clinicpulse"}).Sign(
		models.Actor{Subject: "display-1", TenantID: "idp-clinic", Role: models.RoleAdmin}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if st, detail := get(hs); st != http.StatusOK {
		t.Fatalf("an HS256 token beside the provider's: %d %s", st, detail)
	}
	if st, detail := get(signed[:len(signed)-4] + "AAAA"); st != http.StatusUnauthorized || !strings.Contains(detail, "bad signature") {
		t.Fatalf("a forged signature: %d %s", st, detail)
	}
	logs := s.logs.String()
	if !strings.Contains(logs, "key set loaded") || strings.Contains(logs, "eyJ") {
		t.Fatalf("log: %s", logs)
	}
}
