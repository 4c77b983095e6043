package app

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

var safeID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// FuzzRequestID: whatever X-Request-ID a caller sends, the id the log and
// the response carry is a short safe token, and it is the caller's only when
// the caller's is one.
func FuzzRequestID(f *testing.F) {
	for _, s := range []string{"", "abc-123", strings.Repeat("a", 65), "a b", "é", "x\"y", "a\x00"} {
		f.Add(s)
	}
	e := echo.New()
	h := requestID(func(c echo.Context) error { return nil })
	f.Fuzz(func(t *testing.T, in string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header["X-Request-Id"] = []string{in}
		rec := httptest.NewRecorder()
		c := e.NewContext(req, rec)
		if err := h(c); err != nil {
			t.Fatal(err)
		}
		got := rec.Header().Get(echo.HeaderXRequestID)
		if !safeID.MatchString(got) || req.Header.Get(echo.HeaderXRequestID) != got {
			t.Fatalf("%q → %q (request header %q)", in, got, req.Header.Get(echo.HeaderXRequestID))
		}
		if (got == in) != safeID.MatchString(in) {
			t.Fatalf("%q → %q", in, got)
		}
	})
}

// FuzzParseEmbedOrigins: what EMBED_ORIGINS yields is safe to put in a CSP
// header: no separator, quote or control byte beyond the two keywords.
func FuzzParseEmbedOrigins(f *testing.F) {
	for _, s := range []string{"", "'self'", "https://a.example, https://*.b.example:8443", "'none'", "https://a.example/path",
		"https://a.example; script-src *", "javascript:alert(1)", "https://user@a.example", "http://[::1]:8080"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := ParseEmbedOrigins(in)
		if err != nil {
			return
		}
		if len(out) == 0 {
			t.Fatalf("%q: no sources", in)
		}
		for _, o := range out {
			if o == "'self'" || o == "'none'" {
				continue
			}
			if strings.ContainsAny(o, ";,'\" \t\r\n\x00") || !strings.HasPrefix(o, "http") || !utf8.ValidString(o) {
				t.Fatalf("%q → unsafe source %q", in, o)
			}
		}
	})
}

func TestParseEmbedOrigins(t *testing.T) {
	for in, want := range map[string]string{
		"":                              "'self'",
		"'self' https://portal.example": "'self' https://portal.example",
		"https://a.example,https://*.b.example:8443": "https://a.example https://*.b.example:8443",
		"'none'":            "'none'",
		"http://[::1]:8080": "http://[::1]:8080",
	} {
		got, err := ParseEmbedOrigins(in)
		if err != nil || strings.Join(got, " ") != want {
			t.Errorf("%q → %q %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"https://a.example/", "https://a.example; script-src *", "ftp://a.example", "*", "https://*",
		"https://a.*.example", "'none' https://a.example", "'unsafe-inline'", "https://user@a.example", "https://a.example?x"} {
		if got, err := ParseEmbedOrigins(in); err == nil {
			t.Errorf("%q accepted: %q", in, got)
		}
	}
}

// TestBoundedLogLines: every string of a log line is cut to maxLogValue
// bytes, at a character boundary, whatever the call logs.
func TestBoundedLogLines(t *testing.T) {
	var buf bytes.Buffer
	l := boundLogger(slog.New(slog.NewJSONHandler(&buf, nil)))
	long := strings.Repeat("é", 10_000)
	l.With("pre", long).WithGroup(long).Error(long, "s", long, "err", errString(long), "b", []byte(long), "m", map[string]string{"k": long},
		slog.Group("g", "x", long))
	line := buf.String()
	if len(line) > 10*(maxLogValue+40) || !utf8.ValidString(line) || strings.Contains(line, "\\ufffd") {
		t.Fatalf("a log line of %d bytes: %.400s", len(line), line)
	}
	if !strings.Contains(line, "more bytes)") {
		t.Fatalf("no truncation mark: %.400s", line)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
