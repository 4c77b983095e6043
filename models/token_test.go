package models

import "testing"

func TestTokenPrefixAt(t *testing.T) {
	for n, want := range map[int]string{-1: "", 0: "A", 7: "H", 8: "J", 12: "N", 13: "P", 23: "Z", 24: "AA", 25: "AB", 47: "AZ", 48: "BA", 24 + 24*24: "AAA"} {
		if got := TokenPrefixAt(n); got != want {
			t.Errorf("TokenPrefixAt(%d) = %q, want %q", n, got, want)
		}
	}
	seen := map[string]int{}
	for n := range 2000 {
		p := TokenPrefixAt(n)
		if m, dup := seen[p]; dup {
			t.Fatalf("TokenPrefixAt(%d) = TokenPrefixAt(%d) = %q", n, m, p)
		}
		for _, r := range p {
			if r == 'I' || r == 'O' {
				t.Fatalf("TokenPrefixAt(%d) = %q holds I or O", n, p)
			}
		}
		seen[p] = n
	}
}

func TestChooseTokenPrefix(t *testing.T) {
	for _, c := range []struct {
		rank int
		used []string
		want string
	}{
		{0, nil, "A"},
		{2, nil, "C"},
		{2, []string{"A", "B"}, "C"},
		{0, []string{"A", "B", "D"}, "C"}, // its own is taken: the first free
		{-1, []string{"A"}, "B"},          // not on the roster (archived meanwhile)
		{1, []string{"", "A"}, "B"},       // entries without a prefix take none
		{30, []string{"AG"}, "A"},         // AG (30) taken: A is free
	} {
		if got := ChooseTokenPrefix(c.rank, c.used); got != c.want {
			t.Errorf("ChooseTokenPrefix(%d, %v) = %q, want %q", c.rank, c.used, got, c.want)
		}
	}
	if l := TokenLabel("B", 12); l != "B12" {
		t.Fatalf("TokenLabel = %q", l)
	}
	if l := (&QueueEntry{Token: 3}).Label(); l != "3" {
		t.Fatalf("label without a prefix = %q", l)
	}
}
