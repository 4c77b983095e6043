package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
)

// KeySet finds the public keys of an identity provider (a JWK Set, RFC
// 7517). package auth/jwks implements it over HTTP.
type KeySet interface {
	// Key returns the public key whose kid the token's header names, for
	// the token's alg ("RS256", "ES256" or "EdDSA"). When kid is unknown
	// it may refresh the set first (rate-limited, within ctx). It fails
	// with an error wrapping ErrKeySetNotLoaded, ErrUnknownKey or
	// ErrKeyMismatch. The Authenticator checks the key's type against alg
	// itself, whatever the KeySet returns.
	Key(ctx context.Context, kid, alg string) (crypto.PublicKey, error)
}

// Errors a KeySet returns; the 401's detail names them.
var (
	ErrKeySetNotLoaded = errors.New("the identity provider's key set is not loaded (yet): its server could not be reached")
	ErrUnknownKey      = errors.New("no key of the identity provider's key set has this kid")
	ErrKeyMismatch     = errors.New("the key named by kid is not a signing key for this alg (its kty, crv, size, alg, use or key_ops differ)")
)

// Reasons a token signed with a public key is refused before its signature
// is checked.
var (
	errNoKID = errors.New("the header names no key (kid): a token signed by an identity provider must")
)

// Algorithms accepted from an identity provider's key set, each pinned to
// one key type (RFC 7518 §3.1, RFC 8037 §3.1). HS256 is verified with
// JWT_SECRET only, never with a key of the set.
const (
	algRS256 = "RS256"
	algES256 = "ES256"
	algEdDSA = "EdDSA"
)

// RSA modulus sizes accepted for RS256: RFC 7518 §3.3 requires 2048 bits
// or more; past 8192 a verification costs more than any provider needs.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// keyFits reports whether key is the one key type alg may be verified with:
// RS256 an RSA key of 2048–8192 bits, ES256 an ECDSA key on P-256, EdDSA an
// Ed25519 key. Anything else — a symmetric key, another curve, a private
// key, an unknown alg — is refused, so that no token can choose how a key
// is used (the "alg confusion" of RFC 8725 §2.1).
func keyFits(alg string, key crypto.PublicKey) bool {
	switch alg {
	case algRS256:
		k, ok := key.(*rsa.PublicKey)
		return ok && k.N != nil && k.N.BitLen() >= minRSABits && k.N.BitLen() <= maxRSABits
	case algES256:
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k.Curve == elliptic.P256()
	case algEdDSA:
		k, ok := key.(ed25519.PublicKey)
		return ok && len(k) == ed25519.PublicKeySize
	}
	return false
}

// sameKey reports whether two public keys are equal (crypto.PublicKey's
// documented Equal method).
func sameKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
