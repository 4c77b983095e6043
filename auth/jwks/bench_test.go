package jwks_test

import (
	"testing"

	"github.com/clinicpulse/clinicpulse/auth/jwks"
)

// BenchmarkVerifyJWKS: a full verification of a key set's token per
// algorithm (a cache miss: signature, strict header and claims), and a
// remembered token (a hit re-checks that its key is still in the set).
func BenchmarkVerifyJWKS(b *testing.B) {
	signers := []signer{newSigner(b, "RS256", "rs-1"), newSigner(b, "ES256", "es-1"), newSigner(b, "EdDSA", "ed-1")}
	p := newIDP(b, signers...)
	v := newVerifier(b, jwks.Config{URL: p.URL + "/jwks.json"}, p.URL)
	for _, s := range signers {
		b.Run(s.alg+"/uncached", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				// A new token each time (signing it is not timed), so
				// that none comes from the verified-token cache.
				b.StopTimer()
				tok := s.sign(b, claims(p.URL))
				b.StartTimer()
				if _, err := v.Verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(s.alg+"/cached", func(b *testing.B) {
			tok := s.sign(b, claims(p.URL))
			if _, err := v.Verify(tok); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
