package limits

import (
	"sync"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
)

func TestIdentityIgnoresPlatformTenant(t *testing.T) {
	a := IdentityOf(models.Actor{Subject: "op", TenantID: "t1", Role: models.RolePlatform})
	b := IdentityOf(models.Actor{Subject: "op", TenantID: "t2", Role: models.RolePlatform})
	if a != b {
		t.Fatalf("a platform operator naming another tenant got a fresh identity: %v vs %v", a, b)
	}
	c := IdentityOf(models.Actor{Subject: "op", TenantID: "t1", Role: models.RoleAdmin})
	if a == c {
		t.Fatal("a platform identity collides with a tenant's subject of the same name")
	}
}

func TestRateSharedAcrossSpellings(t *testing.T) {
	l := NewRate(1, 3, 100)
	now := time.Unix(1000, 0)
	id := Identity{TenantID: "t", Subject: "display-1"}
	for i := range 3 {
		if ok, _ := l.Allow(id, now); !ok {
			t.Fatalf("request %d refused within the burst", i)
		}
	}
	ok, retry := l.Allow(id, now)
	if ok || retry != time.Second {
		t.Fatalf("4th request: ok=%v retry=%v, want refused with 1 s", ok, retry)
	}
	if ok, _ := l.Allow(Identity{TenantID: "t", Subject: "display-2"}, now); !ok {
		t.Fatal("another identity shares the bucket")
	}
}

func TestRateTableBounded(t *testing.T) {
	l := NewRate(1, 1, 64)
	for i := range 10000 {
		l.Allow(Identity{TenantID: "t", Subject: string(rune(i))}, time.Unix(0, 0))
	}
	if n := l.Len(); n > 64 {
		t.Fatalf("table holds %d identities, bound 64", n)
	}
}

func TestHolds(t *testing.T) {
	h := NewHolds(5)
	a := Identity{TenantID: "t", Subject: "a"}
	var rel []func()
	for range 3 {
		r, ok := h.Acquire(a, "t", 3)
		if !ok {
			t.Fatal("refused under the identity bound")
		}
		rel = append(rel, r)
	}
	if _, ok := h.Acquire(a, "t", 3); ok {
		t.Fatal("4th hold allowed over the identity bound 3")
	}
	b := Identity{TenantID: "t", Subject: "b"}
	r4, ok := h.Acquire(b, "t", 3)
	r5, ok2 := h.Acquire(b, "t", 3)
	if !ok || !ok2 {
		t.Fatal("another identity refused under the tenant bound")
	}
	if _, ok := h.Acquire(Identity{TenantID: "t", Subject: "c"}, "t", 3); ok {
		t.Fatal("6th hold allowed over the tenant bound 5")
	}
	if _, ok := h.Acquire(Identity{TenantID: "u", Subject: "c"}, "u", 3); !ok {
		t.Fatal("another tenant refused")
	}
	rel[0]()
	rel[0]() // a second call is a no-op
	if got := h.Held(a); got != 2 {
		t.Fatalf("held %d after one release, want 2", got)
	}
	for _, r := range append(rel[1:], r4, r5) {
		r()
	}
	if h.Held(a) != 0 || h.Entries() != 1 { // tenant u's hold is still there
		t.Fatalf("entries %d after releasing, want 1", h.Entries())
	}
}

func TestHoldsConcurrent(t *testing.T) {
	h := NewHolds(0)
	id := Identity{TenantID: "t", Subject: "x"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, ok := h.Acquire(id, "t", 8); ok {
				mu.Lock()
				got++
				mu.Unlock()
				_ = r
			}
		}()
	}
	wg.Wait()
	if got != 8 {
		t.Fatalf("%d holds granted concurrently, bound 8", got)
	}
}
