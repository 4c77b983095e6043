package auth

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

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
	for _, s := range []string{good, "", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", good + "x"} {
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
