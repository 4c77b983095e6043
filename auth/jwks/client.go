package jwks

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Bounds of every request to the identity provider: its answers are outside
// input.
const (
	// DefaultTimeout bounds one request, from dialling to the last byte.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxBytes bounds one response body. A JWK Set of 100 RSA-4096
	// keys with certificate chains is about 300 KiB.
	DefaultMaxBytes = 1 << 20
	// maxRedirects bounds the redirects followed, each to a URL CheckURL
	// accepts.
	maxRedirects = 3
)

// CheckURL reports whether raw may be fetched for keys or discovery: an
// absolute https URL, or http to a loopback host (localhost, 127.0.0.0/8,
// ::1) for a provider on the same machine; no credentials in it, no
// fragment. Keys fetched over plain HTTP from another host could be
// replaced on the way, and with them every identity.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL")
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return errors.New("must be an https:// URL")
	case u.Host == "" || u.Hostname() == "":
		return errors.New("must name a host")
	case u.User != nil:
		return errors.New("must not carry credentials")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return errors.New("must not have a fragment")
	case u.Scheme == "http" && !loopback(u.Hostname()):
		return errors.New("must be https:// (http:// only to a loopback host)")
	}
	return nil
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// newClient returns the HTTP client of a key set: each request bounded by
// timeout, each response body by maxBytes (a larger one fails the fetch,
// and the keys already held stay), redirects only to URLs CheckURL accepts.
// The transport is a clone of http.DefaultTransport (proxies from the
// environment, TLS verification against the system's roots).
func newClient(timeout time.Duration, maxBytes int64) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: boundedTransport{next: http.DefaultTransport.(*http.Transport).Clone(), max: maxBytes},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects { // via holds the first request, then each redirect
				return fmt.Errorf("more than %d redirects", maxRedirects)
			}
			if err := CheckURL(req.URL.String()); err != nil {
				return fmt.Errorf("redirected to a URL that %w", err)
			}
			return nil
		},
	}
}

// errTooLarge fails a fetch whose body passes the bound.
var errTooLarge = errors.New("the response is too large")

type boundedTransport struct {
	next http.RoundTripper
	max  int64
}

func (b boundedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := b.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if res.ContentLength > b.max {
		res.Body.Close()
		return nil, fmt.Errorf("%w: %d bytes announced, at most %d", errTooLarge, res.ContentLength, b.max)
	}
	res.Body = &boundedBody{rc: res.Body, left: b.max}
	return res, nil
}

// boundedBody reads at most left bytes, then fails rather than truncating
// (a truncated JWK Set could still decode).
type boundedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, errTooLarge
	}
	return n, err
}

func (b *boundedBody) Close() error { return b.rc.Close() }
