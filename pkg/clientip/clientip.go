// Package clientip finds the client address of a request that may have passed
// through trusted reverse proxies, and turns it into a rate-limit key.
//
// It is for code that sees the raw peer address and
// X-Forwarded-For lines: the client is the rightmost X-Forwarded-For address
// that is not a trusted proxy, and only when the direct peer itself is trusted;
// otherwise the peer. Under Kong the client address comes from
// kong.client.get_forwarded_ip (Kong's trusted_ips / real_ip settings) instead.
// IPv6 clients are keyed per /64, since one host usually owns a whole /64.
//
// It is not an authenticator: an address is a weak identity, used only to key
// limits of anonymous traffic. Nothing here does I/O, and bad input never
// panics: an unusable value yields the zero netip.Addr or an error.
package clientip

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// MaxHops bounds how many X-Forwarded-For entries FromForwarded walks (right
// to left) before it settles for the last address it reached.
const MaxHops = 64

// ErrInvalidPrefix is returned (wrapped) by ParseTrusted for an entry that is
// neither an address nor a CIDR prefix.
var ErrInvalidPrefix = errors.New("invalid trusted proxy prefix")

// FromForwarded returns the client address of a request whose direct peer is
// peer (a net/http RemoteAddr: "ip:port", "[ipv6]:port" or a bare address) and
// which carried the X-Forwarded-For header lines xff (in the order received;
// several lines count as one comma-separated list).
//
// When the peer is in trusted, it walks X-Forwarded-For from the right and
// returns the first address that is not in trusted; when every address is
// trusted, the leftmost one. Empty entries are skipped. An entry that is not an
// address (garbage, "unknown", an obfuscated identifier) stops the walk: the
// last address reached (a trusted proxy, or the peer) is returned, since
// anything left of garbage cannot be attributed. When the peer is not trusted,
// X-Forwarded-For is ignored and the peer is returned.
//
// IPv4-mapped IPv6 addresses are unmapped and zones dropped before they are
// matched, so IPv4 proxies belong in trusted as IPv4 prefixes (ParseTrusted
// converts mapped ones). The zero Addr is returned only when peer is not an
// address.
func FromForwarded(peer string, xff []string, trusted []netip.Prefix) netip.Addr {
	addr, ok := parseHop(peer)
	if !ok {
		return netip.Addr{}
	}
	if !contains(trusted, addr) {
		return addr
	}
	hops := 0
	for i := len(xff) - 1; i >= 0; i-- {
		line := xff[i]
		for {
			entry := line
			comma := strings.LastIndexByte(line, ',')
			if comma >= 0 {
				entry, line = line[comma+1:], line[:comma]
			}
			entry = strings.TrimSpace(entry)
			if entry != "" {
				hops++
				if hops > MaxHops {
					return addr
				}
				hop, ok := parseHop(entry)
				if !ok {
					return addr
				}
				addr = hop
				if !contains(trusted, addr) {
					return addr
				}
			}
			if comma < 0 {
				break
			}
		}
	}
	return addr
}

// Key returns the rate-limit key of a client address: an IPv4 address as is
// ("203.0.113.7"), an IPv6 address as its /64 prefix ("2001:db8:1:2::/64").
// IPv4-mapped IPv6 counts as IPv4. The zero Addr yields "".
func Key(addr netip.Addr) string {
	if !addr.IsValid() {
		return ""
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is4() {
		return addr.String()
	}
	return netip.PrefixFrom(addr, 64).Masked().String()
}

// ParseTrusted parses a list of trusted proxies, each a CIDR prefix
// ("10.0.0.0/8", "2001:db8::/32") or a single address ("192.0.2.10", a /32 or
// /128). IPv4-mapped IPv6 entries are turned into IPv4 ones. Entries are
// trimmed; an empty list yields nil (no proxy trusted).
func ParseTrusted(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		p, err := parsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%w %q", ErrInvalidPrefix, truncate(s, 64))
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, errors.New("not an address")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a := p.Addr()
	if a.Is4In6() {
		bits := p.Bits() - 96
		if bits < 0 {
			return netip.Prefix{}, errors.New("mapped prefix shorter than ::ffff:0:0/96")
		}
		p = netip.PrefixFrom(a.Unmap(), bits)
	}
	return p.Masked(), nil
}

// parseHop parses one address as it appears in RemoteAddr or in an
// X-Forwarded-For entry: "1.2.3.4", "1.2.3.4:80", "2001:db8::1",
// "[2001:db8::1]", "[2001:db8::1]:443".
func parseHop(s string) (netip.Addr, bool) {
	if s == "" || len(s) > 64 {
		return netip.Addr{}, false
	}
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		rest := s[end+1:]
		if rest != "" && !validPort(rest) {
			return netip.Addr{}, false
		}
		s = s[1:end]
	} else if i := strings.IndexByte(s, ':'); i >= 0 && strings.IndexByte(s[i+1:], ':') < 0 {
		// Exactly one colon: IPv4 with a port.
		if !validPort(s[i:]) {
			return netip.Addr{}, false
		}
		s = s[:i]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// validPort reports whether s is ":" followed by 1–5 decimal digits.
func validPort(s string) bool {
	if len(s) < 2 || len(s) > 6 || s[0] != ':' {
		return false
	}
	for _, c := range []byte(s[1:]) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func contains(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
