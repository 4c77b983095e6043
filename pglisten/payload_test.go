package pglisten

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/auth"
)

func TestParsePayload(t *testing.T) {
	good := []struct {
		in     string
		tenant string
		head   int64
	}{
		{"t1 1", "t1", 1},
		{"clinic-a 42", "clinic-a", 42},
		{"A.b_c-9 9223372036854775807", "A.b_c-9", 9223372036854775807},
		{strings.Repeat("x", 64) + " 7", strings.Repeat("x", 64), 7},
	}
	for _, c := range good {
		tenant, head, err := ParsePayload(c.in)
		if err != nil || tenant != c.tenant || head != c.head {
			t.Errorf("ParsePayload(%q) = %q, %d, %v; want %q, %d", c.in, tenant, head, err, c.tenant, c.head)
		}
	}
	bad := []string{
		"", " ", "t1", "t1 ", " 5", "t1  5", "t1 5 ", "t1 5 6", "t1\t5", "t1 +5", "t1 -5", "t1 0",
		"t1 05", "t1 5x", "t1 0x10", "t1 9223372036854775808", "t1 99999999999999999999",
		"-t 5", "_t 5", ".t 5", "t/1 5", "t\x001 5", "té 5", strings.Repeat("x", 65) + " 7",
		"t1 ５", "t1 1e3", "ping", `{"tenant":"t1","head":5}`,
	}
	for _, in := range bad {
		if tenant, head, err := ParsePayload(in); err == nil {
			t.Errorf("ParsePayload(%q) = %q, %d; want an error", in, tenant, head)
		}
	}
}

// FuzzPayload checks that no payload panics the parser, and that what it
// accepts is exactly what the store writes: a tenant auth accepts and a
// positive head, which format back to the same payload.
func FuzzPayload(f *testing.F) {
	for _, s := range []string{"t1 1", "clinic-a 42", "t1 0", "t1 -1", "t1 05", "t1", " ", "t1 9223372036854775808", "a.b 1 2", "\xff 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		tenant, head, err := ParsePayload(p)
		if err != nil {
			if tenant != "" || head != 0 {
				t.Fatalf("ParsePayload(%q) failed but returned %q, %d", p, tenant, head)
			}
			return
		}
		if !auth.ValidTenantID(tenant) {
			t.Fatalf("ParsePayload(%q) accepted tenant %q, which auth rejects", p, tenant)
		}
		if head <= 0 {
			t.Fatalf("ParsePayload(%q) accepted head %d", p, head)
		}
		if again := fmt.Sprintf("%s %d", tenant, head); again != p {
			t.Fatalf("ParsePayload(%q) = %q, %d, which formats as %q", p, tenant, head, again)
		}
	})
}

func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, 10*time.Second
	prev := time.Duration(0)
	for n := 0; n < 100; n++ {
		full := backoff(n, lo, hi, 0)
		if full < prev || full > hi {
			t.Fatalf("backoff(%d) = %v after %v: want non-decreasing, ≤ %v", n, full, prev, hi)
		}
		prev = full
		if j := backoff(n, lo, hi, 0.999); j < full/2 || j > full {
			t.Fatalf("jittered backoff(%d) = %v, want in [%v, %v]", n, j, full/2, full)
		}
	}
	if got := backoff(0, lo, hi, 0); got != lo {
		t.Errorf("first wait = %v, want %v", got, lo)
	}
	if got := backoff(3, lo, hi, 0); got != 800*time.Millisecond {
		t.Errorf("fourth wait = %v, want 800ms", got)
	}
	if got := backoff(100, lo, hi, 0); got != hi {
		t.Errorf("capped wait = %v, want %v", got, hi)
	}
}
