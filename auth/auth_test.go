package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

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
		v.put(string(rune('a'+i)), models.Actor{}, now.Add(time.Hour))
	}
	if len(v.entries) > 10 {
		t.Fatalf("cache holds %d entries, max 10", len(v.entries))
	}
}

// signRaw signs a header and claims set given as raw JSON text, so that a
// test can send what no well-behaved library would produce.
func signRaw(secret []byte, header, claims string) string {
	enc := base64.RawURLEncoding
	in := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims))
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(in))
	return in + "." + enc.EncodeToString(m.Sum(nil))
}

// TestStrictTokens: correctly signed HS256 tokens that a lenient verifier
// would accept are refused (401, a detail naming the reason and never the
// token), and are not remembered by the verified-token cache.
func TestStrictTokens(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := newAuth(&now)
	secret := a.cfg.Secret
	exp := strconv.FormatInt(now.Add(time.Hour).Unix(), 10)
	hdr := `{"alg":"HS256","typ":"JWT"}`
	claims := func(extra string) string {
		return `{"sub":"u1","tenant_id":"t1","role":"admin","exp":` + exp + extra + `}`
	}
	if _, err := a.Verify(signRaw(secret, hdr, claims(""))); err != nil {
		t.Fatalf("the well-formed raw token: %v", err)
	}
	for _, tc := range []struct {
		name, header, claims, detail string
	}{
		// RFC 7515 §4.1.11: unknown critical extensions must be refused,
		// and an empty crit list is not allowed either.
		{"crit extension", `{"alg":"HS256","typ":"JWT","crit":["x-require-mfa"],"x-require-mfa":true}`, claims(""), "crit"},
		{"crit empty", `{"alg":"HS256","crit":[]}`, claims(""), "crit"},
		{"crit b64", `{"alg":"HS256","b64":false,"crit":["b64"]}`, claims(""), "crit"},
		{"alg twice", `{"alg":"none","alg":"HS256"}`, claims(""), "header is not strict JSON"},
		// RFC 7519 §2: a NumericDate is a JSON number.
		{"exp string", hdr, `{"sub":"u1","tenant_id":"t1","role":"admin","exp":"` + exp + `"}`, "NumericDate"},
		{"exp null", hdr, `{"sub":"u1","tenant_id":"t1","role":"admin","exp":null}`, "NumericDate"},
		{"nbf string", hdr, claims(`,"nbf":"1700000000"`), "NumericDate"},
		{"iat string", hdr, claims(`,"iat":"1700000000"`), "NumericDate"},
		{"exp object", hdr, `{"sub":"u1","tenant_id":"t1","role":"admin","exp":{"s":1}}`, "NumericDate"},
		// Names are exact and unique; text is UTF-8.
		{"sub twice", hdr, claims(`,"sub":"u2"`), "claims are not strict JSON"},
		{"role twice", hdr, claims(`,"role":"platform"`), "claims are not strict JSON"},
		{"SUB only", hdr, `{"SUB":"u1","tenant_id":"t1","role":"admin","exp":` + exp + `}`, "missing sub"},
		{"EXP only", hdr, `{"sub":"u1","tenant_id":"t1","role":"admin","EXP":` + exp + `}`, "required claim"},
		{"Role only", hdr, `{"sub":"u1","tenant_id":"t1","Role":"admin","exp":` + exp + `}`, "role"},
		{"sub invalid UTF-8", hdr, `{"sub":"u` + "\xff\xfe" + `","tenant_id":"t1","role":"admin","exp":` + exp + `}`, "claims are not strict JSON"},
		{"sub lone surrogate", hdr, `{"sub":"\ud800","tenant_id":"t1","role":"admin","exp":` + exp + `}`, "claims are not strict JSON"},
		{"header invalid UTF-8", `{"alg":"HS256","kid":"` + "\xff" + `"}`, claims(""), "header is not strict JSON"},
		{"sub NUL", hdr, `{"sub":"u\u0000","tenant_id":"t1","role":"admin","exp":` + exp + `}`, "sub"},
		{"sub newline", hdr, `{"sub":"u\n1","tenant_id":"t1","role":"admin","exp":` + exp + `}`, "sub"},
		{"sub too long", hdr, `{"sub":"` + strings.Repeat("王", MaxSubject+1) + `","tenant_id":"t1","role":"admin","exp":` + exp + `}`, "sub"},
	} {
		tok := signRaw(secret, tc.header, tc.claims)
		for range 2 { // the second time would come from the cache
			_, err := a.Verify(tok)
			if models.ErrorCode(err) != models.EUNAUTHORIZED {
				t.Errorf("%s: %v, want unauthorized", tc.name, err)
				break
			}
			if msg := models.ErrorMessage(err); !strings.Contains(msg, tc.detail) || strings.Contains(msg, tok) {
				t.Errorf("%s: detail %q, want it to mention %q", tc.name, msg, tc.detail)
			}
		}
	}
	if len(a.verified.entries) != 1 {
		t.Fatalf("the cache holds %d tokens, want only the one accepted", len(a.verified.entries))
	}
	// The longest sub accepted, in characters.
	long := signRaw(secret, hdr, `{"sub":"`+strings.Repeat("王", MaxSubject)+`","tenant_id":"t1","role":"admin","exp":`+exp+`}`)
	if got, err := a.Verify(long); err != nil || utf8.RuneCountInString(got.Subject) != MaxSubject {
		t.Fatalf("a %d-character sub: %v", MaxSubject, err)
	}
	// Fractional NumericDates are numbers, and accepted (RFC 7519 §2).
	if _, err := a.Verify(signRaw(secret, hdr, `{"sub":"u1","tenant_id":"t1","role":"admin","exp":`+exp+`.5,"iat":1799999999.25}`)); err != nil {
		t.Fatalf("fractional exp: %v", err)
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
