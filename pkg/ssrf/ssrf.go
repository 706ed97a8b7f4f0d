// Package ssrf makes outbound HTTP requests to URLs chosen by users (media
// ingest, the MCP fetch_url tool) without letting them reach what sits behind
// the edge: an *http.Client whose every connection — the first and each
// redirect — goes to an address that Allowed accepts.
//
// The check runs on the IP actually dialed, after DNS resolution, in the
// dialer itself (and again in its Control hook), so neither a DNS name
// pointing at 127.0.0.1 nor a name that resolves differently a second time
// (DNS rebinding) reaches a refused address. IP literals in every form
// getaddrinfo accepts (127.1, 0x7f000001, 2130706433, 0177.0.0.1) are parsed
// here and checked, never handed to a resolver. The client ignores proxy
// settings from the environment, follows at most MaxRedirects redirects over
// http/https only, and caps the response body and the total time.
//
// It is not an allow-list of destinations, a content filter or a sandbox:
// callers still decide which URLs make sense and what to do with the bytes.
package ssrf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Errors (match with errors.Is; http.Client wraps them in *url.Error).
var (
	// ErrBlocked: the destination resolves to an address Allowed refuses.
	ErrBlocked = errors.New("ssrf: destination address not allowed")
	// ErrInvalidHost: the host is neither a DNS name nor an IP literal
	// (e.g. 1.2.3.999, a name ending in a number).
	ErrInvalidHost = errors.New("ssrf: invalid host")
	// ErrScheme: a URL (or a redirect) that is not http or https.
	ErrScheme = errors.New("ssrf: only http and https are allowed")
	// ErrTooManyRedirects: more redirects than Options.MaxRedirects.
	ErrTooManyRedirects = errors.New("ssrf: too many redirects")
	// ErrTooLarge: the response body exceeds Options.MaxBodyBytes.
	ErrTooLarge = errors.New("ssrf: response body too large")
)

// Resolver resolves host names; *net.Resolver implements it. Tests inject
// their own.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

var _ Resolver = (*net.Resolver)(nil)

// Defaults of Options.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultMaxRedirects = 3
	DefaultMaxBodyBytes = 10 << 20
	// maxAddrs bounds how many resolved addresses are dialed in turn.
	maxAddrs = 4
)

// Options configure Client. The zero value is usable.
type Options struct {
	// Timeout bounds a whole request: dialing, redirects, headers and
	// reading the body. Default 10 s.
	Timeout time.Duration
	// MaxRedirects is how many redirects are followed (default 3); a
	// negative value follows none (the 3xx answer is returned as is).
	MaxRedirects int
	// MaxBodyBytes caps the response body: a larger Content-Length fails
	// the request, a longer body fails the read with ErrTooLarge. Default
	// 10 MiB; negative: no cap.
	MaxBodyBytes int64
	// Resolver resolves host names (default net.DefaultResolver).
	Resolver Resolver
	// InsecureAllowPrefixes are additionally allowed (tests reaching an
	// httptest server on 127.0.0.1). Never set it from user input.
	InsecureAllowPrefixes []netip.Prefix
}

// Allowed reports whether ip may be dialed: a globally routable unicast
// address. Refused: unspecified, loopback, RFC 1918 private, CGNAT
// 100.64/10, link-local 169.254/16 and fe80::/10 (cloud metadata
// 169.254.169.254, fd00:ec2::254 is ULA), unique-local fc00::/7, site-local
// fec0::/10, multicast, 0.0.0.0/8, broadcast and 240/4, the IETF protocol,
// benchmarking and documentation ranges, and IPv6 forms that embed an IPv4
// address (IPv4-mapped ones are checked as that IPv4 address; NAT64, 6to4
// and Teredo are refused). Addresses with a zone are refused.
func Allowed(ip netip.Addr) bool {
	if !ip.IsValid() || ip.Zone() != "" {
		return false
	}
	ip = ip.Unmap()
	if ip.Is4() {
		for _, p := range blocked4 {
			if p.Contains(ip) {
				return false
			}
		}
		return true
	}
	// IPv6: only the global unicast space 2000::/3 is allocated for
	// reachable hosts; everything outside it (::/8 with loopback, NAT64 and
	// IPv4-compatible forms, 100::/64, fc00::/7, fe80::/10, fec0::/10,
	// ff00::/8) is refused.
	if !global6.Contains(ip) {
		return false
	}
	for _, p := range blocked6 {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

var (
	blocked4 = prefixes(
		"0.0.0.0/8",       // "this network", incl. 0.0.0.0
		"10.0.0.0/8",      // RFC 1918
		"100.64.0.0/10",   // CGNAT, RFC 6598
		"127.0.0.0/8",     // loopback
		"169.254.0.0/16",  // link-local, cloud metadata
		"172.16.0.0/12",   // RFC 1918
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // TEST-NET-1
		"192.88.99.0/24",  // 6to4 relay anycast
		"192.168.0.0/16",  // RFC 1918
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // TEST-NET-2
		"203.0.113.0/24",  // TEST-NET-3
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, incl. 255.255.255.255
	)
	global6  = netip.MustParsePrefix("2000::/3")
	blocked6 = prefixes(
		"2001::/23",     // IETF protocol assignments, incl. Teredo 2001::/32
		"2001:db8::/32", // documentation
		"2002::/16",     // 6to4: embeds an IPv4 address
		"3fff::/20",     // documentation
	)
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// guard dials only allowed addresses.
type guard struct {
	resolver Resolver
	extra    []netip.Prefix
	dialer   net.Dialer
}

func (g *guard) allowed(ip netip.Addr) bool {
	if Allowed(ip) {
		return true
	}
	u := ip.Unmap()
	for _, p := range g.extra {
		if u.Zone() == "" && p.Contains(u) {
			return true
		}
	}
	return false
}

// control re-checks the address the socket is about to connect to.
func (g *guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrBlocked, address)
	}
	if !g.allowed(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrBlocked, ap.Addr())
	}
	return nil
}

// dial resolves addr's host itself, refuses the whole destination when any
// of its addresses is refused (a name mixing a public and a private address
// is someone's trick), and dials the checked addresses in turn.
func (g *guard) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidHost, err)
	}
	ips, err := g.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	var cands []netip.Addr
	for _, ip := range ips {
		if !g.allowed(ip) {
			return nil, fmt.Errorf("%w: %s resolves to %s", ErrBlocked, host, ip)
		}
		ip = ip.Unmap()
		switch {
		case network == "tcp4" && !ip.Is4(), network == "tcp6" && !ip.Is6():
			continue
		}
		cands = append(cands, ip)
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("ssrf: %s has no %s address", host, network)
	}
	if len(cands) > maxAddrs {
		cands = cands[:maxAddrs]
	}
	var firstErr error
	for _, ip := range cands {
		c, err := g.dialer.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// resolve turns a host into addresses: IP literals in any form are parsed
// here (never given to a resolver, which might read 127.1 as 127.0.0.1 or
// send it to DNS); a host whose last label is a number must be such a
// literal; anything else is resolved.
func (g *guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, ok := ParseIP(host); ok {
		return []netip.Addr{ip}, nil
	}
	if looksNumeric(host) || !validHostname(host) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidHost, host)
	}
	ips, err := g.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("ssrf: resolve %s: %w", host, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("ssrf: %s has no address", host)
	}
	return ips, nil
}

// ParseIP parses host as an IP literal the way URL parsers and getaddrinfo
// read them: IPv6 (with or without brackets; a zone is kept, and Allowed
// refuses it), dotted-quad IPv4, and the legacy inet_aton forms — one to
// four parts, each decimal, octal (leading 0) or hex (0x), the last part
// filling the remaining bytes (127.1, 0x7f000001, 2130706433, 0177.0.0.1).
// A single trailing dot is ignored.
func ParseIP(host string) (netip.Addr, bool) {
	h := strings.TrimSuffix(host, ".")
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
		if a, err := netip.ParseAddr(h); err == nil && a.Is6() {
			return a, true
		}
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return a, true
	}
	return parseLegacy4(h)
}

func parseLegacy4(h string) (netip.Addr, bool) {
	if h == "" || len(h) > 64 {
		return netip.Addr{}, false
	}
	parts := strings.Split(h, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		v, ok := parseNum(p)
		if !ok {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	var n uint64
	last := len(vals) - 1
	for i, v := range vals[:last] {
		if v > 0xff {
			return netip.Addr{}, false
		}
		n |= v << (8 * (3 - i))
	}
	if vals[last] >= 1<<(8*(4-last)) {
		return netip.Addr{}, false
	}
	n |= vals[last]
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

// parseNum reads one inet_aton part: 0x/0X hex, leading-0 octal, decimal.
func parseNum(s string) (uint64, bool) {
	base := uint64(10)
	switch {
	case len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		base, s = 16, s[2:]
		if s == "" {
			return 0, true // "0x" is 0 for inet_aton
		}
	case len(s) >= 2 && s[0] == '0':
		base, s = 8, s[1:]
	case s == "":
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		var d uint64
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if d >= base {
			return 0, false
		}
		v = v*base + d
		if v > 0xffffffff {
			return 0, false
		}
	}
	return v, true
}

// looksNumeric reports whether the last label of host is a number (decimal
// or 0x hex): the WHATWG URL rule for "this is meant as an IPv4 address" —
// such a host that ParseIP refused (1.2.3.999, 0x1.2.3.4.5) is invalid, not
// a name to resolve.
func looksNumeric(host string) bool {
	h := strings.TrimSuffix(host, ".")
	if i := strings.LastIndexByte(h, '.'); i >= 0 {
		h = h[i+1:]
	}
	if h == "" {
		return false
	}
	if len(h) >= 2 && h[0] == '0' && (h[1] == 'x' || h[1] == 'X') {
		h = h[2:]
		for i := 0; i < len(h); i++ {
			if !isHex(h[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(h); i++ {
		if h[i] < '0' || h[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// validHostname accepts DNS names of letters, digits, '-', '_' and dots
// (IDNs arrive as punycode from url.Parse's caller or fail here).
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Client returns an *http.Client for user-chosen URLs: every connection
// goes to an allowed address (see Allowed), proxies from the environment are
// ignored, at most MaxRedirects redirects are followed (each re-checked),
// only http and https are spoken, and the total time and the body size are
// capped. Errors wrap the package's sentinels.
func Client(opts Options) *http.Client {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxRedirects == 0 {
		opts.MaxRedirects = DefaultMaxRedirects
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	g := &guard{resolver: opts.Resolver, extra: append([]netip.Prefix(nil), opts.InsecureAllowPrefixes...)}
	dialTimeout := min(5*time.Second, opts.Timeout)
	g.dialer = net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second, Control: g.control}
	tr := &http.Transport{
		Proxy:                  nil, // never from the environment
		DialContext:            g.dial,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    dialTimeout,
		ResponseHeaderTimeout:  opts.Timeout,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           16,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        30 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		DisableCompression:     true, // no transparent gzip: the cap counts wire bytes
	}
	maxRedirects := opts.MaxRedirects
	return &http.Client{
		Transport: &capTransport{next: tr, max: opts.MaxBodyBytes},
		Timeout:   opts.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if maxRedirects < 0 {
				return http.ErrUseLastResponse
			}
			if len(via) > maxRedirects {
				return fmt.Errorf("%w (%d)", ErrTooManyRedirects, maxRedirects)
			}
			if s := req.URL.Scheme; s != "http" && s != "https" {
				return ErrScheme
			}
			return nil
		},
	}
}

// capTransport refuses other schemes and caps response bodies.
type capTransport struct {
	next http.RoundTripper
	max  int64
}

func (t *capTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if s := req.URL.Scheme; s != "http" && s != "https" {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, ErrScheme
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil || t.max < 0 {
		return resp, err
	}
	if resp.ContentLength > t.max {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("%w: Content-Length %d exceeds %d", ErrTooLarge, resp.ContentLength, t.max)
	}
	resp.Body = &cappedBody{rc: resp.Body, left: t.max}
	return resp, nil
}

// cappedBody returns ErrTooLarge once more than its limit has been read.
type cappedBody struct {
	rc   io.ReadCloser
	left int64
}

func (c *cappedBody) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.left <= 0 {
		var one [1]byte
		n, err := c.rc.Read(one[:])
		if n > 0 {
			return 0, ErrTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.rc.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *cappedBody) Close() error { return c.rc.Close() }
