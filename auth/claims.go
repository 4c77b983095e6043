package auth

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Bounds of a claim path (JWT_TENANT_CLAIM, JWT_ROLE_CLAIM).
const (
	maxClaimPathBytes = 256
	maxClaimPathParts = 16
)

// ClaimPath names where an identity provider's token carries a value that
// ClinicPulse reads from a top-level claim of its own tokens (tenant_id,
// role, sub). The zero ClaimPath reads the native claim.
//
// A path is either a claim name that exists at the top level of the claims
// set, taken literally even when it contains dots — a namespaced claim such
// as "https://clinic.example/tenant_id" (Auth0's advice for custom claims) —
// or, when no top-level claim has that exact name, a dotted path through
// nested JSON objects: "app_metadata.tenant_id" reads
// {"app_metadata":{"tenant_id":"…"}}. The literal name always wins: with
// both {"a.b":"x"} and {"a":{"b":"y"}} in one token, "a.b" reads "x". A name
// inside a nested object is matched whole per dot-separated part, so a
// nested member whose own name contains a dot cannot be addressed. The value
// found must be a JSON string; a number, an array or an object is refused.
type ClaimPath struct {
	name  string   // the whole path, for the literal top-level lookup
	parts []string // its dot-separated parts; nil when a part is empty
}

// ParseClaimPath checks an operator's claim path: 1 to 256 bytes of UTF-8
// without control characters or spaces, at most 16 dot-separated parts.
// An empty part ("a..b", a trailing dot) leaves only the literal lookup.
func ParseClaimPath(s string) (ClaimPath, error) {
	switch {
	case s == "":
		return ClaimPath{}, errors.New("empty claim name")
	case len(s) > maxClaimPathBytes:
		return ClaimPath{}, fmt.Errorf("longer than %d bytes", maxClaimPathBytes)
	case !utf8.ValidString(s):
		return ClaimPath{}, errors.New("not UTF-8")
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return ClaimPath{}, errors.New("contains a space or a control character")
	}
	parts := strings.Split(s, ".")
	if len(parts) > maxClaimPathParts {
		return ClaimPath{}, fmt.Errorf("more than %d dot-separated parts", maxClaimPathParts)
	}
	for _, p := range parts {
		if p == "" {
			parts = nil
			break
		}
	}
	return ClaimPath{name: s, parts: parts}, nil
}

// String returns the path as configured.
func (p ClaimPath) String() string { return p.name }

// IsZero reports whether p reads the native claim.
func (p ClaimPath) IsZero() bool { return p.name == "" }

// errClaimMissing and errClaimNotString say why a mapped claim gave no value.
var (
	errClaimMissing   = errors.New("missing")
	errClaimNotString = errors.New("not a JSON string")
)

// lookup finds p in a claims set decoded one level deep: the literal
// top-level name first, then the dotted path. Each nested object is decoded
// only when the path goes through it; the input is the token's verified
// claims, already held to strict JSON (duplicate names, invalid UTF-8).
func (p ClaimPath) lookup(top map[string]jsontext.Value) (string, error) {
	if v, ok := top[p.name]; ok {
		return stringValue(v)
	}
	if len(p.parts) < 2 {
		return "", errClaimMissing
	}
	cur := top
	for i, part := range p.parts {
		v, ok := cur[part]
		if !ok {
			return "", errClaimMissing
		}
		if i == len(p.parts)-1 {
			return stringValue(v)
		}
		if v.Kind() != '{' {
			return "", errClaimMissing
		}
		var next map[string]jsontext.Value
		if err := json.Unmarshal(v, &next); err != nil {
			return "", errClaimMissing
		}
		cur = next
	}
	return "", errClaimMissing // not reached: parts has at least two elements
}

func stringValue(v jsontext.Value) (string, error) {
	if v.Kind() != '"' {
		return "", errClaimNotString
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", errClaimNotString
	}
	return s, nil
}

// claimMapping is where an identity provider's tokens carry the tenant,
// the role and the subject (Config.TenantClaim, RoleClaim, SubjectClaim).
type claimMapping struct {
	tenant, role, subject ClaimPath
}

// mappedClaims are the values a claimMapping found, each with the reason
// it found none.
type mappedClaims struct {
	tenant, role, subject          string
	tenantErr, roleErr, subjectErr error
}

// resolve reads the mapped claims from the claims set b (a JSON object).
func (m *claimMapping) resolve(b []byte) mappedClaims {
	var top map[string]jsontext.Value
	if err := json.Unmarshal(b, &top); err != nil {
		return mappedClaims{tenantErr: errClaimMissing, roleErr: errClaimMissing, subjectErr: errClaimMissing}
	}
	var out mappedClaims
	if !m.tenant.IsZero() {
		out.tenant, out.tenantErr = m.tenant.lookup(top)
	}
	if !m.role.IsZero() {
		out.role, out.roleErr = m.role.lookup(top)
	}
	if !m.subject.IsZero() {
		out.subject, out.subjectErr = m.subject.lookup(top)
	}
	return out
}
