package auth

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/clinicpulse/clinicpulse/internal/tokentest"
	"github.com/clinicpulse/clinicpulse/models"
)

// spent is an in-memory Spender for the unit tests of the ticket format; the
// store's SpendTicket is tested through the stream's integration tests.
type spent struct {
	mu sync.Mutex
	m  map[string]bool
}

func (s *spent) SpendTicket(_ context.Context, nonce string, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[nonce] {
		return models.Errorf(models.EUNAUTHORIZED, "spent")
	}
	s.m[nonce] = true
	return nil
}

func newAuth(now *time.Time) *Authenticator {
	return New(Config{Secret: []byte("unit-test-secret-0123456789abcdef"), Now: func() time.Time { return *now }, Spender: &spent{m: map[string]bool{}}})
}

func TestTickets(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := newAuth(&now)
	who := models.Actor{Subject: "pat_x", TenantID: "clinic-1", Role: models.RolePatient}
	tk, exp := a.MintTicket(who)
	if exp.Sub(now) > TicketTTL || exp.Sub(now) < TicketTTL-time.Second {
		t.Fatalf("expiry %v", exp.Sub(now))
	}
	got, err := a.RedeemTicket(context.Background(), tk)
	if err != nil || got != who {
		t.Fatalf("redeem: %+v %v", got, err)
	}
	if _, err := a.RedeemTicket(context.Background(), tk); models.ErrorCode(err) != models.EUNAUTHORIZED {
		t.Fatalf("second use: %v", err)
	}
	tk2, _ := a.MintTicket(who)
	now = now.Add(TicketTTL)
	if _, err := a.RedeemTicket(context.Background(), tk2); models.ErrorCode(err) != models.EUNAUTHORIZED {
		t.Fatalf("expired ticket: %v", err)
	}
	// Another secret's ticket, a tampered payload, a JWT: all rejected.
	other := New(Config{Secret: []byte("another-secret-0123456789abcdefgh"), Now: func() time.Time { return now }})
	foreign, _ := other.MintTicket(who)
	now = now.Add(-TicketTTL)
	tk3, _ := a.MintTicket(who)
	p, sig, _ := strings.Cut(tk3, ".")
	tampered := p[:len(p)-2] + "xx." + sig
	jwt, _ := a.Sign(who, time.Hour)
	for name, bad := range map[string]string{"foreign": foreign, "tampered": tampered, "jwt": jwt, "empty": "", "dot": "."} {
		if _, err := a.RedeemTicket(context.Background(), bad); models.ErrorCode(err) != models.EUNAUTHORIZED {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A ticket is not a bearer token.
	if _, err := a.Verify(tk3); err == nil {
		t.Fatal("a ticket verified as a JWT")
	}
}

// FuzzRedeemTicket: any string is rejected or redeemed without a panic, and
// only tickets this authenticator minted are ever accepted.
func FuzzRedeemTicket(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	a := newAuth(&now)
	good, _ := a.MintTicket(models.Actor{Subject: "s", TenantID: "t", Role: models.RoleDoctor})
	for _, s := range []string{good, "", ".", "a.b", "eyJ0Ijoi.x", strings.Repeat("A", 500) + "." + strings.Repeat("B", 43)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := a.RedeemTicket(context.Background(), s)
		if err == nil && (got.TenantID != "t" || got.Subject != "s") {
			t.Fatalf("accepted a forged ticket %q → %+v", s, got)
		}
		if err != nil && models.ErrorCode(err) != models.EUNAUTHORIZED {
			t.Fatalf("%q: %v", s, err)
		}
	})
}

// FuzzVerify: no token string panics the verifier or yields an actor
// without a tenant and role.
func FuzzVerify(f *testing.F) {
	now := time.Now()
	a := newAuth(&now)
	good, _ := a.Sign(models.Actor{Subject: "s", TenantID: "t", Role: models.RoleAdmin}, time.Hour)
	exp := strconv.FormatInt(now.Add(time.Hour).Unix(), 10)
	for _, s := range []string{good, "", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", good + "x",
		signRaw(a.cfg.Secret, `{"alg":"HS256","crit":["x"]}`, `{"sub":"s","tenant_id":"t","role":"admin","exp":`+exp+`}`),
		signRaw(a.cfg.Secret, `{"alg":"HS256"}`, `{"sub":"s","tenant_id":"t","role":"admin","exp":"`+exp+`"}`),
		signRaw(a.cfg.Secret, `{"alg":"HS256"}`, `{"sub":"s","sub":"x","tenant_id":"t","role":"admin","exp":`+exp+`}`),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := a.Verify(s)
		if err == nil && (got.TenantID == "" || !got.Role.Valid() || got.Subject == "") {
			t.Fatalf("%q verified to %+v", s, got)
		}
	})
}

// TestVerifiedCacheExpires: a token verified once is still rejected once it
// expires, and the cache stays bounded.
func TestVerifiedCacheExpires(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := newAuth(&now)
	tok, _ := a.Sign(models.Actor{Subject: "s", TenantID: "t", Role: models.RoleAdmin}, time.Minute)
	for range 2 {
		if _, err := a.Verify(tok); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(time.Minute + leeway)
	if _, err := a.Verify(tok); models.ErrorCode(err) != models.EUNAUTHORIZED {
		t.Fatalf("expired token after a cached verification: %v", err)
	}
	v := newVerified(10)
	for i := range 100 {
		v.put(string(rune('a'+i)), verifiedEntry{until: now.Add(time.Hour)})
	}
	if len(v.entries) > 10 {
		t.Fatalf("cache holds %d entries, max 10", len(v.entries))
	}
}

// signRaw signs a header and claims set given as raw JSON text with an
// HS256 secret, so that a test can send what no well-behaved library would
// produce.
func signRaw(secret []byte, header, claims string) string {
	return tokentest.SignRaw("HS256", secret, header, claims)
}

// TestStrictTokens: correctly signed HS256 tokens that a lenient verifier
// would accept are refused (401, a detail naming the reason and never the
// token), and are not remembered by the verified-token cache. The same
// table runs for tokens of an identity provider's key set in package
// auth/jwks.
func TestStrictTokens(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := newAuth(&now)
	secret := a.cfg.Secret
	exp := now.Add(time.Hour).Unix()
	hdr := tokentest.Header("HS256", "", `,"typ":"JWT"`)
	if _, err := a.Verify(signRaw(secret, hdr, tokentest.Claims(exp, ""))); err != nil {
		t.Fatalf("the well-formed raw token: %v", err)
	}
	for _, tc := range tokentest.StrictCases("HS256", "", exp) {
		tok := signRaw(secret, tc.Header, tc.Claims)
		for range 2 { // the second time would come from the cache
			_, err := a.Verify(tok)
			if models.ErrorCode(err) != models.EUNAUTHORIZED {
				t.Errorf("%s: %v, want unauthorized", tc.Name, err)
				break
			}
			if msg := models.ErrorMessage(err); !strings.Contains(msg, tc.Detail) || strings.Contains(msg, tok) {
				t.Errorf("%s: detail %q, want it to mention %q", tc.Name, msg, tc.Detail)
			}
		}
	}
	if len(a.verified.entries) != 1 {
		t.Fatalf("the cache holds %d tokens, want only the one accepted", len(a.verified.entries))
	}
	// The longest sub accepted, in characters.
	long := signRaw(secret, hdr, `{"sub":"`+strings.Repeat("王", MaxSubject)+`","tenant_id":"t1","role":"admin","exp":`+strconv.FormatInt(exp, 10)+`}`)
	if got, err := a.Verify(long); err != nil || utf8.RuneCountInString(got.Subject) != MaxSubject {
		t.Fatalf("a %d-character sub: %v", MaxSubject, err)
	}
	// Fractional NumericDates are numbers, and accepted (RFC 7519 §2).
	if _, err := a.Verify(signRaw(secret, hdr, `{"sub":"u1","tenant_id":"t1","role":"admin","exp":`+strconv.FormatInt(exp, 10)+`.5,"iat":1799999999.25}`)); err != nil {
		t.Fatalf("fractional exp: %v", err)
	}
	// Without a key set, a token signed with a public-key algorithm is
	// refused before any key is looked up.
	if _, err := a.Verify(signRaw(secret, tokentest.Header("RS256", "k1", ""), tokentest.Claims(exp, ""))); models.ErrorCode(err) != models.EUNAUTHORIZED {
		t.Fatalf("an RS256 token without a key set: %v", err)
	}
}

// BenchmarkVerifyUncached: a full verification (what a cache miss costs),
// with the strict header and claims decoding.
func BenchmarkVerifyUncached(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	a := newAuth(&now)
	tok, _ := a.Sign(models.Actor{Subject: "user-1", TenantID: "clinic-1", Role: models.RoleDoctor}, time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		a.verified = newVerified(10)
		if _, err := a.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
