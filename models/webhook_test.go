package models

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestWebhookBackoff(t *testing.T) {
	base, ceil := time.Second, 10*time.Minute
	for n := 1; n <= 100; n++ {
		want := ceil
		if n <= 20 && base<<(n-1) < ceil {
			want = base << (n - 1)
		}
		for range 50 {
			if d := WebhookBackoff(n, base, ceil); d < time.Millisecond || d > want+time.Millisecond {
				t.Fatalf("backoff(%d) = %s, want within [1ms, %s]", n, d, want)
			}
		}
	}
	if WebhookBackoff(0, base, ceil) != 0 {
		t.Error("backoff(0) waits")
	}
}

func TestPublicAddr(t *testing.T) {
	for s, want := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1": true, "127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false,
		"192.168.1.1": false, "169.254.169.254": false, "0.0.0.0": false, "::": false, "::1": false,
		"fe80::1": false, "fc00::1": false, "224.0.0.1": false, "::ffff:127.0.0.1": false, "100.64.0.1": false,
		"255.255.255.255": false, "0.1.2.3": false,
	} {
		if got := PublicAddr(netip.MustParseAddr(s)); got != want {
			t.Errorf("PublicAddr(%s) = %v", s, got)
		}
	}
}

// FuzzCheckURL: a subscription URL typed by a tenant never panics, and an
// accepted one is https (or http to an allowed host), absolute, without
// user info or fragment, parses again to itself, and names no forbidden
// literal address.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://example.com/hook", "http://127.0.0.1:8080/x", "https://[::1]/", "https://user@h/",
		"https://h:99999/", "https://h/#f", "HTTPS://EXAMPLE.com:443/a?b=c", "https://0x7f.1/", "https://%31%32%37.0.0.1/", "//h/x"} {
		f.Add(s)
	}
	p := WebhookPolicy{AllowHTTPHosts: map[string]bool{"allowed.test": true}}
	f.Fuzz(func(t *testing.T, raw string) {
		out, err := p.CheckURL("url", raw)
		if err != nil {
			if e, ok := err.(*Error); !ok || e.Code != EINVALID || e.Fields[0].Field != "url" {
				t.Fatalf("CheckURL(%q): %v", raw, err)
			}
			return
		}
		u, err := url.Parse(out)
		if err != nil || u.User != nil || u.Fragment != "" || u.Host == "" || len(out) > MaxWebhookURL+16 {
			t.Fatalf("CheckURL(%q) accepted %q", raw, out)
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && p.Allowed(u.Hostname())) {
			t.Fatalf("CheckURL(%q) accepted scheme %q", raw, u.Scheme)
		}
		if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !PublicAddr(ip) {
			t.Fatalf("CheckURL(%q) accepted address %s", raw, ip)
		}
		if again, err := p.CheckURL("url", out); err != nil || again != out {
			t.Fatalf("CheckURL(%q) = %q, which checks as %q, %v", raw, out, again, err)
		}
	})
}
