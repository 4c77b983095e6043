package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
)

// ErrForbiddenAddress is a connection the SSRF rules refused: the address
// is loopback, private, link-local, unspecified or multicast and the host
// is not in the allow list.
var ErrForbiddenAddress = errors.New("webhooks: address not allowed (loopback, private, link-local or multicast)")

// newClient returns the HTTP client of deliveries:
//
//   - every connection's resolved address is checked in the dialer's
//     Control function, after DNS and right before connect, so a name that
//     resolves (or re-resolves: DNS rebinding) to a forbidden address is
//     refused; hosts in policy's allow list skip the check;
//   - no proxy from the environment (it would be the address checked);
//   - connectTimeout bounds each connection; the caller's context bounds
//     the whole request;
//   - redirects are not followed: a 3xx is the receiver's answer, a failure;
//   - up to perHost idle connections per host (the workers: several
//     subscriptions often share a receiver), so that one connection per
//     worker is reused rather than dialled per request.
func newClient(policy models.WebhookPolicy, connectTimeout time.Duration, perHost int) *http.Client {
	strict := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second, Control: checkAddress}
	open := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if policy.Allowed(host) {
				return open.DialContext(ctx, network, addr)
			}
			return strict.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    max(perHost, 4),
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    connectTimeout,
		ResponseHeaderTimeout:  0, // the request's context bounds it
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// checkAddress is the strict dialer's Control: address is the IP and port
// about to be connected to.
func checkAddress(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, err)
	}
	if !models.PublicAddr(ap.Addr()) {
		return ErrForbiddenAddress
	}
	return nil
}
