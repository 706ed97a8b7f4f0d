package ssrf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestAllowedRefusesEveryInternalRange(t *testing.T) {
	refused := []string{
		// IPv4
		"0.0.0.0", "0.1.2.3", "10.0.0.1", "10.255.255.255", "100.64.0.1", "100.127.255.254",
		"127.0.0.1", "127.255.255.254", "169.254.169.254", "169.254.0.1", "172.16.0.1", "172.31.255.255",
		"192.0.0.170", "192.0.2.1", "192.88.99.1", "192.168.1.1", "198.18.0.1", "198.19.255.255",
		"198.51.100.7", "203.0.113.9", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
		// IPv6
		"::", "::1", "::ffff:127.0.0.1", "::ffff:7f00:1", "::ffff:169.254.169.254", "::ffff:10.0.0.1",
		"::127.0.0.1", "64:ff9b::7f00:1", "64:ff9b:1::a00:1", "100::1", "fc00::1", "fd00:ec2::254",
		"fdff:ffff::1", "fe80::1", "febf::1", "fec0::1", "ff02::1", "ff0e::1", "2001::1", "2001:0:4136:e378::1",
		"2001:db8::1", "2002:7f00:1::1", "3fff::1", "fe80::1%eth0", "2606:4700::1111%1",
		"1::", "4000::1", "e000::1",
	}
	for _, s := range refused {
		t.Run(s, func(t *testing.T) {
			ip := netip.MustParseAddr(s)
			if Allowed(ip) {
				t.Fatalf("Allowed(%s) = true", s)
			}
		})
	}
	if Allowed(netip.Addr{}) {
		t.Fatal("the zero Addr is allowed")
	}
}

func TestAllowedAcceptsPublicAddresses(t *testing.T) {
	for _, s := range []string{"1.1.1.1", "8.8.8.8", "93.184.215.14", "100.63.255.255", "100.128.0.1",
		"172.15.255.255", "172.32.0.1", "169.253.255.255", "11.0.0.1", "223.255.255.255",
		"::ffff:8.8.8.8", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "2001:200::1"} {
		if !Allowed(netip.MustParseAddr(s)) {
			t.Errorf("Allowed(%s) = false", s)
		}
	}
}

func TestParseIPReadsEveryLiteralForm(t *testing.T) {
	cases := []struct {
		in   string
		want string // "" = not an IP literal
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"0X7F000001", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"0x7f.0.0.1", "127.0.0.1"},
		{"0x7f.1", "127.0.0.1"},
		{"017700000001", "127.0.0.1"},
		{"127.0.0.1.", "127.0.0.1"},
		{"0", "0.0.0.0"},
		{"3232235777", "192.168.1.1"},
		{"0xa9fea9fe", "169.254.169.254"},
		{"169.254.43518", "169.254.169.254"},
		{"[::1]", "::1"},
		{"::1", "::1"},
		{"[::ffff:127.0.0.1]", "::ffff:127.0.0.1"},
		{"4294967296", ""},
		{"1.2.3.256", ""},
		{"256.1.1.1", ""},
		{"1.2.3.4.5", ""},
		{"08.1.1.1", ""},
		{"0xg.1.1.1", ""},
		{"example.com", ""},
		{"cafe.be", ""},
		{"", ""},
		{"[127.0.0.1]", ""},
		{"1..1", ""},
	}
	for _, c := range cases {
		got, ok := ParseIP(c.in)
		switch {
		case c.want == "" && ok:
			t.Errorf("ParseIP(%q) = %s, want not an IP", c.in, got)
		case c.want != "" && (!ok || got != netip.MustParseAddr(c.want)):
			t.Errorf("ParseIP(%q) = %s, %v; want %s", c.in, got, ok, c.want)
		}
	}
}

// fakeResolver answers from a map and counts lookups.
type fakeResolver struct {
	m     map[string][]string
	calls atomic.Int32
}

func (f *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	f.calls.Add(1)
	ss, ok := f.m[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out, nil
}

// loopbackOnly allows the httptest servers of the tests.
var loopbackOnly = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

func TestClientRefusesInternalDestinationsBeforeConnecting(t *testing.T) {
	res := &fakeResolver{m: map[string][]string{
		"internal.example":  {"127.0.0.1"},
		"metadata.example":  {"169.254.169.254"},
		"v6local.example":   {"::1"},
		"mixed.example":     {"93.184.215.14", "10.0.0.5"},
		"mapped.example":    {"::ffff:192.168.0.1"},
		"ula.example":       {"fd00:ec2::254"},
		"cgnat.example":     {"100.64.1.1"},
		"multicast.example": {"224.0.0.251"},
	}}
	c := Client(Options{Resolver: res, Timeout: 2 * time.Second})
	urls := []string{
		"http://127.0.0.1/", "http://127.1/", "http://0x7f000001/", "http://2130706433/", "http://0177.0.0.1/",
		"http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://169.254.169.254/latest/meta-data/",
		"http://[fd00:ec2::254]/", "http://[fe80::1%25eth0]/", "http://0.0.0.0/", "http://0/", "http://10.1.2.3:8080/",
		"http://172.16.5.4/", "http://192.168.0.1/", "http://100.64.0.1/", "http://224.0.0.1/", "http://255.255.255.255/",
		"https://127.0.0.1:443/", "http://127.0.0.1./",
		"http://internal.example/", "http://metadata.example/", "http://v6local.example/", "http://mixed.example/",
		"http://mapped.example/", "http://ula.example/", "http://cgnat.example/", "http://multicast.example/",
	}
	for _, u := range urls {
		t.Run(u, func(t *testing.T) {
			resp, err := c.Get(u)
			if err == nil {
				resp.Body.Close()
				t.Fatal("request went through")
			}
			if !errors.Is(err, ErrBlocked) {
				t.Fatalf("err = %v, want ErrBlocked", err)
			}
		})
	}
}

func TestClientRefusesInvalidHostsAndSchemes(t *testing.T) {
	res := &fakeResolver{m: map[string][]string{}}
	c := Client(Options{Resolver: res, Timeout: 2 * time.Second})
	for _, u := range []string{"http://1.2.3.999/", "http://0x1.0x2.0x3.0x4.0x5/", "http://foo.123/", "http://a..b/"} {
		_, err := c.Get(u)
		if !errors.Is(err, ErrInvalidHost) {
			t.Errorf("%s: err = %v, want ErrInvalidHost", u, err)
		}
	}
	for _, u := range []string{"ftp://example.com/x", "file:///etc/passwd", "gopher://example.com/"} {
		_, err := c.Get(u)
		if !errors.Is(err, ErrScheme) {
			t.Errorf("%s: err = %v, want ErrScheme", u, err)
		}
	}
	if n := res.calls.Load(); n != 0 {
		t.Fatalf("the resolver was asked %d times for invalid hosts", n)
	}
}

func TestDialerControlChecksTheDialedAddress(t *testing.T) {
	g := &guard{}
	for _, a := range []string{"127.0.0.1:80", "[::1]:443", "[::ffff:10.0.0.1]:80", "169.254.169.254:80", "garbage"} {
		if err := g.control("tcp", a, nil); !errors.Is(err, ErrBlocked) {
			t.Errorf("control(%s) = %v", a, err)
		}
	}
	if err := g.control("tcp", "93.184.215.14:443", nil); err != nil {
		t.Errorf("public address refused: %v", err)
	}
}

// A resolver that answers an allowed address one time and a private one the
// next (DNS rebinding) cannot slip through: the dialer dials exactly the
// addresses it checked, and the Control hook checks the socket's address
// again. Here 127.0.0.2 stands for the allowed "public" answer (nothing
// listens there) and the server on 127.0.0.1 for the internal target.
func TestRebindingCannotReachAPrivateAddress(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, "internal")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	var n atomic.Int32
	res := resolverFunc(func(ctx context.Context, host string) ([]netip.Addr, error) {
		if n.Add(1)%2 == 1 {
			return []netip.Addr{netip.MustParseAddr("127.0.0.2")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	})
	c := Client(Options{Resolver: res, Timeout: 2 * time.Second,
		InsecureAllowPrefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	blocked := 0
	for range 4 {
		resp, err := c.Get("http://rebind.example:" + port + "/")
		if err == nil {
			resp.Body.Close()
			t.Fatal("reached the internal server")
		}
		if errors.Is(err, ErrBlocked) {
			blocked++
		}
	}
	if hits.Load() != 0 || blocked != 2 {
		t.Fatalf("server hits %d, blocked %d of 4", hits.Load(), blocked)
	}
}

type resolverFunc func(ctx context.Context, host string) ([]netip.Addr, error)

func (f resolverFunc) LookupNetIP(ctx context.Context, _, host string) ([]netip.Addr, error) {
	return f(ctx, host)
}

func TestRedirectToAPrivateAddressIsRefused(t *testing.T) {
	targets := []string{"http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://internal.example/",
		"http://0xa9fea9fe/", "http://10.0.0.1/", "http://[fd00:ec2::254]/"}
	for _, target := range targets {
		t.Run(target, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target, http.StatusFound)
			}))
			defer srv.Close()
			res := &fakeResolver{m: map[string][]string{"internal.example": {"192.168.1.1"}}}
			c := Client(Options{Resolver: res, InsecureAllowPrefixes: loopbackOnly, Timeout: 2 * time.Second})
			resp, err := c.Get(srv.URL + "/start")
			if err == nil {
				resp.Body.Close()
				t.Fatal("redirect followed")
			}
			if !errors.Is(err, ErrBlocked) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestRedirectsAreCappedAndSchemeChecked(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		case "/two":
			http.Redirect(w, r, "/one", http.StatusFound)
		case "/one":
			http.Redirect(w, r, "/ok", http.StatusFound)
		default:
			fmt.Fprint(w, "ok")
		}
	}))
	defer srv.Close()
	c := Client(Options{InsecureAllowPrefixes: loopbackOnly, Timeout: 2 * time.Second, MaxRedirects: 3})
	_, err := c.Get(srv.URL + "/loop")
	if !errors.Is(err, ErrTooManyRedirects) {
		t.Fatalf("loop: %v", err)
	}
	if n := hits.Load(); n != 4 {
		t.Fatalf("loop: %d requests, want 4 (1 + 3 redirects)", n)
	}
	if _, err := c.Get(srv.URL + "/file"); !errors.Is(err, ErrScheme) {
		t.Fatalf("file redirect: %v", err)
	}
	resp, err := c.Get(srv.URL + "/two")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Fatalf("body %q", b)
	}
	none := Client(Options{InsecureAllowPrefixes: loopbackOnly, MaxRedirects: -1})
	resp, err = none.Get(srv.URL + "/one")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("MaxRedirects -1: status %d", resp.StatusCode)
	}
}

func TestBodyIsCapped(t *testing.T) {
	const limit = 64 << 10
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := strings.Repeat("x", limit+1)
		switch r.URL.Path {
		case "/length":
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			io.WriteString(w, body)
		case "/chunked":
			w.(http.Flusher).Flush()
			io.WriteString(w, body)
		case "/exact":
			io.WriteString(w, body[:limit])
		}
	}))
	defer srv.Close()
	c := Client(Options{InsecureAllowPrefixes: loopbackOnly, MaxBodyBytes: limit})
	if _, err := c.Get(srv.URL + "/length"); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Content-Length over the cap: %v", err)
	}
	resp, err := c.Get(srv.URL + "/chunked")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !errors.Is(err, ErrTooLarge) || n > limit {
		t.Fatalf("chunked: read %d, err %v", n, err)
	}
	resp, err = c.Get(srv.URL + "/exact")
	if err != nil {
		t.Fatal(err)
	}
	n, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != limit {
		t.Fatalf("exact: read %d, err %v", n, err)
	}
}

func TestSlowServersHitTheTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" {
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "12345")
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := Client(Options{InsecureAllowPrefixes: loopbackOnly, Timeout: 300 * time.Millisecond})
	start := time.Now()
	if _, err := c.Get(srv.URL + "/headers"); err == nil {
		t.Fatal("stalled headers: no error")
	}
	resp, err := c.Get(srv.URL + "/body")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("stalled body: no error")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestEnvironmentProxiesAreIgnored(t *testing.T) {
	c := Client(Options{})
	tr := c.Transport.(*capTransport).next.(*http.Transport)
	if tr.Proxy != nil {
		t.Fatal("the transport has a proxy function")
	}
	if !tr.DisableCompression {
		t.Fatal("transparent decompression is on")
	}
}

func TestAllowedPublicDestinationIsFetched(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello") }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	res := &fakeResolver{m: map[string][]string{"files.example": {"127.0.0.1"}}}
	c := Client(Options{Resolver: res, InsecureAllowPrefixes: loopbackOnly})
	resp, err := c.Get("http://files.example:" + port + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello" {
		t.Fatalf("body %q", b)
	}
}

// FuzzAllowed checks the address rules on arbitrary 4- and 16-byte
// addresses: the IPv4-mapped form of an address gets the IPv4 answer, and
// nothing loopback, private, link-local, multicast or unspecified is ever
// allowed.
func FuzzAllowed(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "::1", "169.254.169.254", "fd00:ec2::254", "8.8.8.8", "2606:4700::1111", "::ffff:10.0.0.1"} {
		f.Add(netip.MustParseAddr(s).AsSlice())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ip, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		got := Allowed(ip)
		u := ip.Unmap()
		if got && (u.IsLoopback() || u.IsPrivate() || u.IsLinkLocalUnicast() || u.IsLinkLocalMulticast() ||
			u.IsMulticast() || u.IsUnspecified() || u.IsInterfaceLocalMulticast() || !u.IsGlobalUnicast()) {
			t.Fatalf("Allowed(%s) = true", ip)
		}
		if ip.Is4() {
			if m := netip.AddrFrom16(ip.As16()); Allowed(m) != got {
				t.Fatalf("Allowed(%s) = %v but Allowed(%s) = %v", ip, got, m, !got)
			}
		}
	})
}

// FuzzParseIP checks that whatever ParseIP reads as an address is checked
// like that address, and that a host refused as a literal whose last label
// is a number is never resolved.
func FuzzParseIP(f *testing.F) {
	for _, s := range []string{"127.1", "0x7f000001", "2130706433", "0177.0.0.1", "[::1]", "example.com", "1.2.3.999", "0x", "00", "1.0x.00.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		ip, ok := ParseIP(host)
		if ok && !ip.IsValid() {
			t.Fatalf("ParseIP(%q) returned an invalid address", host)
		}
		res := &fakeResolver{m: map[string][]string{}}
		g := &guard{resolver: res}
		addrs, err := g.resolve(context.Background(), host)
		if ok && (err != nil || len(addrs) != 1 || addrs[0] != ip) {
			t.Fatalf("resolve(%q) = %v, %v; ParseIP says %s", host, addrs, err, ip)
		}
		if !ok && looksNumeric(host) && res.calls.Load() != 0 {
			t.Fatalf("numeric host %q sent to the resolver", host)
		}
	})
}

func BenchmarkAllowed(b *testing.B) {
	ips := []netip.Addr{netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("::ffff:10.0.0.1"), netip.MustParseAddr("2606:4700::1111")}
	for i := 0; b.Loop(); i++ {
		Allowed(ips[i%len(ips)])
	}
}
