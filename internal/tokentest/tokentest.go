// Package tokentest holds the table of correctly signed tokens that a
// strict verifier refuses, shared by the tests of tokens signed with the
// server's secret (package auth) and of tokens signed by an identity
// provider's key set (package auth/jwks), and signs raw JSON texts that no
// well-behaved library would produce.
package tokentest

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// MaxSubject is auth.MaxSubject (not imported: auth's own tests use this
// package).
const MaxSubject = 255

// Case is a token, as raw header and claims JSON, that must be refused
// with a 401 whose detail contains Detail.
type Case struct {
	Name, Header, Claims, Detail string
}

// Header returns a JOSE header for alg, naming kid when it is not "",
// with extra members (",\"typ\":\"JWT\"") appended.
func Header(alg, kid, extra string) string {
	h := `{"alg":"` + alg + `"`
	if kid != "" {
		h += `,"kid":"` + kid + `"`
	}
	return h + extra + `}`
}

// Claims returns a claims set accepted for tenant t1 as an admin, expiring
// at exp, with extra members appended.
func Claims(exp int64, extra string) string {
	return `{"sub":"u1","tenant_id":"t1","role":"admin","exp":` + strconv.FormatInt(exp, 10) + extra + `}`
}

// StrictCases returns the refusals for tokens signed with alg (and kid):
// critical header extensions (RFC 7515 §4.1.11), a header or claims set
// that is not strict JSON (RFC 8259 §8.1: repeated names, invalid UTF-8),
// NumericDates that are not JSON numbers (RFC 7519 §2), case-variant claim
// names, and a sub the server cannot store.
func StrictCases(alg, kid string, exp int64) []Case {
	e := strconv.FormatInt(exp, 10)
	hdr := Header(alg, kid, `,"typ":"JWT"`)
	claims := func(extra string) string { return Claims(exp, extra) }
	return []Case{
		{"crit extension", Header(alg, kid, `,"typ":"JWT","crit":["x-require-mfa"],"x-require-mfa":true`), claims(""), "crit"},
		{"crit empty", Header(alg, kid, `,"crit":[]`), claims(""), "crit"},
		{"crit b64", Header(alg, kid, `,"b64":false,"crit":["b64"]`), claims(""), "crit"},
		{"alg twice", `{"alg":"none","alg":"` + alg + `"` + kidMember(kid) + `}`, claims(""), "header is not strict JSON"},
		{"exp string", hdr, `{"sub":"u1","tenant_id":"t1","role":"admin","exp":"` + e + `"}`, "NumericDate"},
		{"exp null", hdr, `{"sub":"u1","tenant_id":"t1","role":"admin","exp":null}`, "NumericDate"},
		{"nbf string", hdr, claims(`,"nbf":"1700000000"`), "NumericDate"},
		{"iat string", hdr, claims(`,"iat":"1700000000"`), "NumericDate"},
		{"exp object", hdr, `{"sub":"u1","tenant_id":"t1","role":"admin","exp":{"s":1}}`, "NumericDate"},
		{"sub twice", hdr, claims(`,"sub":"u2"`), "claims are not strict JSON"},
		{"role twice", hdr, claims(`,"role":"platform"`), "claims are not strict JSON"},
		{"SUB only", hdr, `{"SUB":"u1","tenant_id":"t1","role":"admin","exp":` + e + `}`, "missing sub"},
		{"EXP only", hdr, `{"sub":"u1","tenant_id":"t1","role":"admin","EXP":` + e + `}`, "required claim"},
		{"Role only", hdr, `{"sub":"u1","tenant_id":"t1","Role":"admin","exp":` + e + `}`, "role"},
		{"sub invalid UTF-8", hdr, `{"sub":"u` + "\xff\xfe" + `","tenant_id":"t1","role":"admin","exp":` + e + `}`, "claims are not strict JSON"},
		{"sub lone surrogate", hdr, `{"sub":"\ud800","tenant_id":"t1","role":"admin","exp":` + e + `}`, "claims are not strict JSON"},
		{"header invalid UTF-8", Header(alg, kid, `,"x":"`+"\xff"+`"`), claims(""), "header is not strict JSON"},
		{"sub NUL", hdr, `{"sub":"u\u0000","tenant_id":"t1","role":"admin","exp":` + e + `}`, "sub"},
		{"sub newline", hdr, `{"sub":"u\n1","tenant_id":"t1","role":"admin","exp":` + e + `}`, "sub"},
		{"sub too long", hdr, `{"sub":"` + strings.Repeat("王", MaxSubject+1) + `","tenant_id":"t1","role":"admin","exp":` + e + `}`, "sub"},
	}
}

func kidMember(kid string) string {
	if kid == "" {
		return ""
	}
	return `,"kid":"` + kid + `"`
}

// SignRaw signs a header and claims set given as raw JSON text with key,
// by the header's algorithm alg as golang-jwt implements it ([]byte for
// HS256, *rsa.PrivateKey for RS256, *ecdsa.PrivateKey for ES256,
// ed25519.PrivateKey for EdDSA). It panics on a key that does not fit.
func SignRaw(alg string, key any, header, claims string) string {
	enc := base64.RawURLEncoding
	in := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims))
	sig, err := jwt.GetSigningMethod(alg).Sign(in, key)
	if err != nil {
		panic("tokentest: " + err.Error())
	}
	return in + "." + enc.EncodeToString(sig)
}
