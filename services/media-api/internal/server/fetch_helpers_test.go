package server_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/ssrf"
)

type (
	netipAddr  = netip.Addr
	netTCPAddr = net.TCPAddr
)

func lookup(r map[string]string, host string) ([]netip.Addr, error) {
	s, ok := r[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return []netip.Addr{netip.MustParseAddr(s)}, nil
}

func fetchOptions(r resolver, redirects int, timeout time.Duration) *ssrf.Options {
	return &ssrf.Options{Resolver: r, MaxRedirects: redirects, Timeout: timeout, MaxBodyBytes: 256 << 10,
		InsecureAllowPrefixes: loopback}
}

// testFreePort is a loopback port nothing listens on.
func testFreePort(t testing.TB, host string) int {
	l, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	p := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return p
}
