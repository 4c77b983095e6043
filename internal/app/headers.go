package app

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
)

// pageCSP is the Content-Security-Policy of the dashboards (/static/* and
// the / redirect), without frame-ancestors. It allows what the pages load
// and nothing else: their module scripts, style sheet and API calls from
// this origin; the data: favicon. The pages build markup with style
// attributes, so inline style attributes — not <style> elements, not inline
// scripts — are allowed (style-src-attr, CSP Level 3).
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; " +
	"img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'"

// securityHeaders gives the dashboards (/static/* and the / redirect) their
// Content-Security-Policy, with frame-ancestors from the configured embed
// origins, X-Content-Type-Options: nosniff, and Referrer-Policy: no-referrer
// (tokens travel in URL fragments, and no URL of ours needs to leave in a
// Referer). API responses (JSON, the stream) are not documents and are
// left as they are.
func securityHeaders(frameAncestors []string) echo.MiddlewareFunc {
	page := pageCSP + "; frame-ancestors " + strings.Join(frameAncestors, " ")
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if p := c.Path(); p == "/" || strings.HasPrefix(p, "/static") {
				h := c.Response().Header()
				h.Set("Content-Security-Policy", page)
				h.Set("X-Content-Type-Options", "nosniff")
				h.Set("Referrer-Policy", "no-referrer")
			}
			return next(c)
		}
	}
}

// ParseEmbedOrigins reads EMBED_ORIGINS: origins (scheme://host[:port],
// the host may start with "*.") or the keywords 'self' and 'none', separated
// by commas or spaces, for the dashboards' CSP frame-ancestors. Empty is
// 'self'. Anything else is an error naming the entry: the values go into a
// response header verbatim.
func ParseEmbedOrigins(s string) ([]string, error) {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if err := checkEmbedOrigin(f); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		out = []string{"'self'"}
	}
	for _, o := range out {
		if o == "'none'" && len(out) > 1 {
			return nil, fmt.Errorf("embed origins: 'none' cannot be combined with other sources")
		}
	}
	return out, nil
}

func checkEmbedOrigin(o string) error {
	if o == "'self'" || o == "'none'" {
		return nil
	}
	bad := fmt.Errorf("embed origins: %q is not an origin such as https://portal.example.com, 'self' or 'none'", o)
	if len(o) > 253+len("https://:65535") {
		return bad
	}
	for i := 0; i < len(o); i++ {
		c := o[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".-:/*[]", c) >= 0) {
			return bad
		}
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || o != u.Scheme+"://"+u.Host {
		return bad
	}
	host := u.Hostname()
	if strings.Contains(strings.TrimPrefix(host, "*."), "*") || host == "*." {
		return bad
	}
	return nil
}
