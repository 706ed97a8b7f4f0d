package dpop

import (
	"net/netip"
	"strconv"
	"strings"
)

// NormalizeURL is the form in which htu values are compared (RFC 9449
// §4.3 check 9: without query and fragment, after RFC 3986 §6.2.2
// syntax-based and §6.2.3 scheme-based normalisation): scheme and host in
// lower case, the scheme's default port (or an empty one) dropped, an empty
// path as "/", and the path normalised as Kong normalises the path it
// routes and gives the plugins (kong.request.get_path, NormalizePath). The
// result is a comparison key, not a URL (the path stays decoded as Kong
// decodes it). ok is false for anything but an absolute http(s) URL with a
// host and without user information.
//
// It splits the URL itself rather than with net/url, whose parser decodes
// the path (turning a kept %2F into a separator) and refuses the raw bytes
// Kong's decoded path may hold.
func NormalizeURL(raw string) (string, bool) { return normalizeURL(raw, true) }

// normalizeURL is NormalizeURL; with normPath false the path is kept as
// given (a path Kong already normalised).
func normalizeURL(raw string, normPath bool) (string, bool) {
	i := strings.Index(raw, "://")
	if i <= 0 {
		return "", false
	}
	scheme := strings.ToLower(raw[:i])
	if scheme != "https" && scheme != "http" {
		return "", false
	}
	rest := raw[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, path := rest[:end], rest[end:]
	if cut := strings.IndexAny(path, "?#"); cut >= 0 {
		path = path[:cut]
	}
	host, port, ok := splitAuthority(authority)
	if !ok {
		return "", false
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	if path == "" {
		path = "/"
	}
	if normPath {
		path = NormalizePath(path)
	}
	return scheme + "://" + host + path, true
}

// splitAuthority splits host[:port] (host an IP literal in brackets, or a
// name of letters, digits, '-', '.', '_'); the host in lower case, the port
// as a decimal number without leading zeros ("" when absent or empty).
// User information is refused.
func splitAuthority(a string) (host, port string, ok bool) {
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return "", "", false
		}
		addr, err := netip.ParseAddr(a[1:end])
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return "", "", false
		}
		host, a = addr.String(), a[end+1:]
		if a != "" && a[0] != ':' {
			return "", "", false
		}
		if a != "" {
			port = a[1:]
		}
	} else {
		host, port, _ = strings.Cut(a, ":")
		if host == "" {
			return "", "", false
		}
		for i := 0; i < len(host); i++ {
			c := host[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
				return "", "", false
			}
		}
		host = strings.ToLower(host)
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 0 || n > 65535 || port[0] == '+' || port[0] == '-' {
			return "", "", false
		}
		port = strconv.Itoa(n)
	}
	return host, port, true
}

// SameURL reports whether the proof's htu matches the request's URL want:
// NormalizeURL(htu) equals want with its scheme and authority normalised
// and its path as given — the path Kong gives the plugins, which Kong
// normalised already (normalising it twice is not always the same: Kong
// decodes "%%32%65" to "%2e" and stops there). Query and fragment are
// ignored on both sides.
func SameURL(htu, want string) bool {
	a, ok := normalizeURL(htu, true)
	if !ok {
		return false
	}
	b, ok := normalizeURL(want, false)
	return ok && a == b
}

// reserved are the characters Kong keeps percent-encoded in a path
// (kong.tools.uri: RFC 3986's reserved set plus '%').
const reserved = "!*'();:@&=+$,/?%#[]"

// NormalizePath normalises a URL path as Kong 3.9 does before routing and
// in kong.request.get_path (kong/tools/uri.lua normalize with merged
// slashes): percent-encoded octets are decoded unless they are reserved
// characters (whose hex digits are upper-cased), "." and ".." segments are
// removed (RFC 3986 §5.2.4) and repeated slashes are merged. The edge
// compares the proof's htu with the path Kong gives it, so both go through
// this.
func NormalizePath(p string) string {
	if p == "" || p == "/" {
		return p
	}
	if strings.IndexByte(p, '%') >= 0 {
		var b strings.Builder
		b.Grow(len(p))
		for i := 0; i < len(p); i++ {
			if p[i] == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
				c := unhex(p[i+1])<<4 | unhex(p[i+2])
				if strings.IndexByte(reserved, c) < 0 {
					b.WriteByte(c)
				} else {
					b.WriteByte('%')
					b.WriteByte(upper(p[i+1]))
					b.WriteByte(upper(p[i+2]))
				}
				i += 2
				continue
			}
			b.WriteByte(p[i])
		}
		p = b.String()
	}
	if !strings.Contains(p, ".") && !strings.Contains(p, "//") {
		return p
	}
	var out []string
	for len(p) > 0 {
		switch {
		case p == "/.":
			p = "/"
		case p == "/..":
			p = "/"
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case p == "." || p == "..":
			p = ""
		case strings.HasPrefix(p, "../"):
			p = p[3:]
		case strings.HasPrefix(p, "./"):
			p = p[2:]
		case strings.HasPrefix(p, "/./"):
			p = p[2:]
		case strings.HasPrefix(p, "/../"):
			p = p[3:]
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case strings.HasPrefix(p, "//"):
			p = p[1:]
		default:
			i := strings.IndexByte(p[1:], '/')
			if i < 0 {
				out = append(out, p)
				p = ""
			} else {
				out = append(out, p[:i+1])
				p = p[i+1:]
			}
		}
	}
	return strings.Join(out, "")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}
