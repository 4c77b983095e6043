package webhooks

import (
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestDescribeNamesNoServerAddress: a delivery's error text, which tenant
// admins read, never names this server's resolver or addresses.
func TestDescribeNamesNoServerAddress(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "hooks.example.com", Server: "10.255.255.53:53", IsNotFound: true}}, "dns: no such host"},
		{&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "server misbehaving", Name: "h", Server: "10.255.255.53:53"}}, "dns: server misbehaving"},
		{&net.OpError{Op: "dial", Net: "tcp", Source: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 41000}, Addr: &net.TCPAddr{IP: net.IPv4(203, 0, 113, 9), Port: 443},
			Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, "connect: connection refused"},
	} {
		got := describe(tc.err)
		if got != tc.want || strings.Contains(got, "10.") || strings.Contains(got, ":53") {
			t.Errorf("%v → %q, want %q", tc.err, got, tc.want)
		}
	}
}
