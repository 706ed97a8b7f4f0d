package clientip

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func mustTrusted(t testing.TB, list ...string) []netip.Prefix {
	t.Helper()
	p, err := ParseTrusted(list)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFromForwardedChoosesRightmostUntrustedHop(t *testing.T) {
	trusted := mustTrusted(t, "10.0.0.0/8", "192.0.2.10", "2001:db8:ffff::/48")
	tests := []struct {
		name string
		peer string
		xff  []string
		want string
	}{
		{"untrusted peer: XFF ignored", "203.0.113.9:5555", []string{"198.51.100.1"}, "203.0.113.9"},
		{"untrusted peer spoofing a trusted hop", "203.0.113.9:5555", []string{"10.0.0.1"}, "203.0.113.9"},
		{"trusted peer, no XFF: the peer", "10.1.2.3:443", nil, "10.1.2.3"},
		{"trusted peer, one hop", "10.1.2.3:443", []string{"198.51.100.1"}, "198.51.100.1"},
		{"trusted peer, client spoofs left part", "10.1.2.3:443", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		{"trusted hops are skipped", "10.1.2.3:443", []string{"1.1.1.1, 198.51.100.1, 10.9.9.9, 192.0.2.10"}, "198.51.100.1"},
		{"several header lines form one list", "10.1.2.3:443", []string{"1.1.1.1, 198.51.100.1", "10.9.9.9", "192.0.2.10"}, "198.51.100.1"},
		{"rightmost untrusted in a later line", "10.1.2.3:443", []string{"1.1.1.1", "198.51.100.7, 10.0.0.2"}, "198.51.100.7"},
		{"all hops trusted: the leftmost", "10.1.2.3:443", []string{"10.0.0.7, 192.0.2.10"}, "10.0.0.7"},
		{"spaces and tabs", "10.1.2.3:443", []string{"  198.51.100.1\t,\t10.0.0.2  "}, "198.51.100.1"},
		{"empty entries skipped", "10.1.2.3:443", []string{"198.51.100.1,, ,10.0.0.2,", ""}, "198.51.100.1"},
		{"hop with port", "10.1.2.3:443", []string{"198.51.100.1:4711"}, "198.51.100.1"},
		{"bracketed IPv6 hop with port", "10.1.2.3:443", []string{"[2001:db8:1:2::5]:443"}, "2001:db8:1:2::5"},
		{"bracketed IPv6 hop without port", "10.1.2.3:443", []string{"[2001:db8:1:2::5]"}, "2001:db8:1:2::5"},
		{"bare IPv6 hop", "10.1.2.3:443", []string{"2001:db8:1:2::5"}, "2001:db8:1:2::5"},
		{"IPv6 trusted peer", "[2001:db8:ffff::1]:443", []string{"198.51.100.1"}, "198.51.100.1"},
		{"IPv6 trusted hop skipped", "10.1.2.3:443", []string{"198.51.100.1, 2001:db8:ffff:1::1"}, "198.51.100.1"},
		{"IPv4-mapped peer is trusted as IPv4", "[::ffff:10.1.2.3]:443", []string{"198.51.100.1"}, "198.51.100.1"},
		{"IPv4-mapped hop is unmapped", "10.1.2.3:443", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"IPv4-mapped trusted hop is skipped", "10.1.2.3:443", []string{"198.51.100.1, ::ffff:10.0.0.9"}, "198.51.100.1"},
		{"IPv4-mapped untrusted peer", "[::ffff:203.0.113.9]:1", nil, "203.0.113.9"},
		{"garbage rightmost: the peer", "10.1.2.3:443", []string{"198.51.100.1, garbage"}, "10.1.2.3"},
		{"garbage after a trusted hop: that hop", "10.1.2.3:443", []string{"198.51.100.1, unknown, 10.0.0.5"}, "10.0.0.5"},
		{"garbage left of the client: the client", "10.1.2.3:443", []string{"garbage, 198.51.100.1"}, "198.51.100.1"},
		{"bad port is garbage", "10.1.2.3:443", []string{"198.51.100.1:http"}, "10.1.2.3"},
		{"unclosed bracket is garbage", "10.1.2.3:443", []string{"[2001:db8::1"}, "10.1.2.3"},
		{"obfuscated identifier is garbage", "10.1.2.3:443", []string{"_hidden"}, "10.1.2.3"},
		{"zone dropped", "10.1.2.3:443", []string{"fe80::1%eth0"}, "fe80::1"},
		{"bare peer without port", "10.1.2.3", []string{"198.51.100.1"}, "198.51.100.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FromForwarded(tt.peer, tt.xff, trusted)
			if got.String() != tt.want {
				t.Fatalf("FromForwarded(%q, %q) = %s, want %s", tt.peer, tt.xff, got, tt.want)
			}
		})
	}
}

func TestFromForwardedWithoutTrustedProxiesAlwaysReturnsThePeer(t *testing.T) {
	got := FromForwarded("203.0.113.9:1", []string{"198.51.100.1"}, nil)
	if got.String() != "203.0.113.9" {
		t.Fatalf("got %s", got)
	}
}

func TestFromForwardedBadPeerYieldsZeroAddr(t *testing.T) {
	for _, peer := range []string{"", "garbage", "@", "[::1", "1.2.3.4:x", "unix:/tmp/sock"} {
		if got := FromForwarded(peer, []string{"198.51.100.1"}, mustTrusted(t, "0.0.0.0/0")); got.IsValid() {
			t.Errorf("peer %q: got %s, want the zero Addr", peer, got)
		}
	}
}

func TestFromForwardedStopsAfterMaxHops(t *testing.T) {
	trusted := mustTrusted(t, "10.0.0.0/8")
	hops := make([]string, 0, MaxHops+10)
	hops = append(hops, "198.51.100.1")
	for range MaxHops + 9 {
		hops = append(hops, "10.0.0.1")
	}
	got := FromForwarded("10.1.1.1:1", []string{strings.Join(hops, ",")}, trusted)
	if got.String() != "10.0.0.1" {
		t.Fatalf("got %s, want the last trusted hop reached", got)
	}
}

func TestKeyUsesIPv4AsIsAndIPv6Per64(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"203.0.113.7", "203.0.113.7"},
		{"::ffff:203.0.113.7", "203.0.113.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"::1", "::/64"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := Key(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Fatalf("Key(%s) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
	if got := Key(netip.Addr{}); got != "" {
		t.Fatalf("Key(zero) = %q, want empty", got)
	}
}

func TestKeySharesOne64AcrossHostsOfTheSameNetwork(t *testing.T) {
	a := Key(FromForwarded("[2001:db8:1:2::aaaa]:1", nil, nil))
	b := Key(FromForwarded("[2001:db8:1:2:ffff::1]:1", nil, nil))
	if a != b {
		t.Fatalf("same /64 keyed differently: %q vs %q", a, b)
	}
}

func TestParseTrustedAcceptsAddressesAndPrefixes(t *testing.T) {
	tests := []struct{ in, want string }{
		{"10.0.0.0/8", "10.0.0.0/8"},
		{" 10.1.2.3/8 ", "10.0.0.0/8"},
		{"192.0.2.10", "192.0.2.10/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
		{"::ffff:10.0.0.1", "10.0.0.1/32"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTrusted([]string{tt.in})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].String() != tt.want {
				t.Fatalf("got %v, want %s", got, tt.want)
			}
		})
	}
}

func TestParseTrustedRejectsGarbageWithSentinel(t *testing.T) {
	for _, in := range []string{"", "garbage", "10.0.0.0/33", "::ffff:0:0/90", "fe80::1%eth0", "10.0.0.1/8/8"} {
		_, err := ParseTrusted([]string{"10.0.0.0/8", in})
		if !errors.Is(err, ErrInvalidPrefix) {
			t.Errorf("%q: err = %v, want ErrInvalidPrefix", in, err)
		}
	}
	if got, err := ParseTrusted(nil); err != nil || got != nil {
		t.Fatalf("empty list: %v, %v", got, err)
	}
}

func FuzzFromForwarded(f *testing.F) {
	seeds := []struct{ peer, xff string }{
		{"10.0.0.1:1", "198.51.100.1"},
		{"10.0.0.1:1", "1.1.1.1, 10.0.0.2, [2001:db8::1]:80"},
		{"10.0.0.1:1", ",,,,"},
		{"10.0.0.1:1", "[[[::1]]]"},
		{"10.0.0.1:1", "[::1]:99999999"},
		{"10.0.0.1:1", "::ffff:1.2.3.4, ::ffff:10.0.0.1"},
		{"10.0.0.1:1", "fe80::1%" + strings.Repeat("z", 100)},
		{"10.0.0.1:1", "unknown, _obf, \x00\xff, 1.2.3.4:"},
		{"10.0.0.1:1", strings.Repeat("10.0.0.9,", 200)},
		{"[::ffff:10.0.0.1]:1", "1.2.3.4 ,\t2.3.4.5"},
		{"", ""},
		{"[", "]"},
		{"1.2.3.4:", "1.2.3.4:%"},
	}
	for _, s := range seeds {
		f.Add(s.peer, s.xff)
	}
	trusted := mustTrusted(f, "10.0.0.0/8", "2001:db8::/32")
	f.Fuzz(func(t *testing.T, peer, xff string) {
		got := FromForwarded(peer, strings.Split(xff, "\n"), trusted)
		if !got.IsValid() {
			return
		}
		if got.Is4In6() || got.Zone() != "" {
			t.Fatalf("not normalized: %s", got)
		}
		k := Key(got)
		if k == "" {
			t.Fatalf("valid address %s has an empty key", got)
		}
		// The answer is either the peer or one of the XFF entries.
		if p, ok := parseHop(peer); !ok {
			t.Fatalf("peer %q unparseable but got %s", peer, got)
		} else if !contains(trusted, p) && p != got {
			t.Fatalf("untrusted peer %s but got %s", p, got)
		}
	})
}

func FuzzParseTrusted(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "::ffff:10.0.0.0/104", "2001:db8::/129", "1.2.3.4", "", "/", "::ffff:0:0/96"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParseTrusted([]string{s})
		if err != nil {
			if !errors.Is(err, ErrInvalidPrefix) {
				t.Fatalf("error without sentinel: %v", err)
			}
			return
		}
		for _, p := range ps {
			if !p.IsValid() || p.Addr().Is4In6() || p != p.Masked() {
				t.Fatalf("bad prefix %v from %q", p, s)
			}
		}
	})
}

func BenchmarkFromForwarded(b *testing.B) {
	trusted := mustTrusted(b, "10.0.0.0/8", "192.0.2.10")
	xff := []string{"1.1.1.1, 198.51.100.1, 10.9.9.9, 192.0.2.10"}
	b.ReportAllocs()
	for b.Loop() {
		_ = Key(FromForwarded("10.1.2.3:443", xff, trusted))
	}
}
