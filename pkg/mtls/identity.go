package mtls

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Identity is a workload identity a client certificate must carry: a URI
// subject alternative name (a SPIFFE ID such as spiffe://edgeguard/edge, or
// any absolute URI) or a DNS name (edgeguard-edge). The Common Name is never
// looked at.
type Identity struct {
	uri bool
	// canonical: for a URI, lower-case scheme and host and the path as is;
	// for a DNS name, the lower-case name without a trailing dot.
	canonical string
}

// ErrIdentity is returned (wrapped) when a verified client certificate
// carries none of the accepted identities.
var ErrIdentity = errors.New("mtls: the client certificate carries no accepted identity")

// ParseIdentity reads one identity: a value containing "://" is a URI
// (scheme and host required; no user, query or fragment), anything else a
// DNS name (letters, digits, '-' and '.', no wildcard).
func ParseIdentity(s string) (Identity, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "://") {
		c, ok := canonicalURI(s)
		if !ok {
			return Identity{}, fmt.Errorf("%q is not an absolute URI with a host and without a user, query or fragment", s)
		}
		return Identity{uri: true, canonical: c}, nil
	}
	c, ok := canonicalDNS(s)
	if !ok {
		return Identity{}, fmt.Errorf("%q is neither a URI (scheme://host/path) nor a DNS name", s)
	}
	return Identity{canonical: c}, nil
}

// String is the identity as configured (canonical form).
func (id Identity) String() string { return id.canonical }

// IsURI reports whether the identity is a URI SAN (else a DNS name).
func (id Identity) IsURI() bool { return id.uri }

// Matches reports whether cert carries the identity among its subject
// alternative names.
func (id Identity) Matches(cert *x509.Certificate) bool {
	if cert == nil || id.canonical == "" {
		return false
	}
	if id.uri {
		for _, u := range cert.URIs {
			if u != nil {
				if c, ok := canonicalURI(u.String()); ok && c == id.canonical {
					return true
				}
			}
		}
		return false
	}
	for _, n := range cert.DNSNames {
		if c, ok := canonicalDNS(n); ok && c == id.canonical {
			return true
		}
	}
	return false
}

// CheckPeer returns nil when the leaf certificate carries one of ids, else
// an error wrapping ErrIdentity that names what the certificate carries
// (names, never key material).
func CheckPeer(leaf *x509.Certificate, ids []Identity) error {
	if leaf == nil {
		return fmt.Errorf("%w: no certificate", ErrIdentity)
	}
	for _, id := range ids {
		if id.Matches(leaf) {
			return nil
		}
	}
	return fmt.Errorf("%w (it carries %s)", ErrIdentity, describeSANs(leaf))
}

func describeSANs(c *x509.Certificate) string {
	var parts []string
	for _, u := range c.URIs {
		if u != nil {
			parts = append(parts, "uri:"+clip(u.String()))
		}
	}
	for _, n := range c.DNSNames {
		parts = append(parts, "dns:"+clip(n))
	}
	if len(parts) == 0 {
		return "no URI or DNS name"
	}
	if len(parts) > 4 {
		parts = append(parts[:4], fmt.Sprintf("… %d more", len(parts)-4))
	}
	return strings.Join(parts, ", ")
}

// clip bounds what a client-chosen name adds to a log line and keeps it
// printable.
func clip(s string) string {
	if len(s) > 128 {
		s = s[:128] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

func canonicalURI(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(s, " \t\r\n") {
		return "", false
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + u.EscapedPath(), true
}

func canonicalDNS(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSuffix(s, "."))
	if s == "" || len(s) > 253 {
		return "", false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return "", false
			}
		}
	}
	return s, true
}
