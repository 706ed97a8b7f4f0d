package devgw

import (
	"fmt"
	"slices"
	"strings"
)

// routeEntry is one path of one route in the lookup table.
type routeEntry struct {
	prefix string // normalized; "" for a route without paths
	weight int    // Kong's match weight: one per match category used
	order  int    // file order, the last tie-break
	route  *route
}

// table finds the route of a request as Kong's router does for prefix
// paths: the candidates are the entries whose prefix the normalized path
// starts with (a plain string prefix, as Kong: /v1/models also matches
// /v1/modelsX) and whose route accepts the method and the Host (a route
// host without a port matches on any port, as Kong); the winner is the one
// using more match categories (paths, methods, hosts), then the longest
// prefix, then the first in the file.
type table struct {
	entries []routeEntry
}

func newTable(routes []*route) (*table, error) {
	t := &table{}
	for i, r := range routes {
		w := 0
		if len(r.methods) > 0 {
			w++
		}
		if len(r.hosts) > 0 {
			w++
		}
		if len(r.paths) == 0 {
			t.entries = append(t.entries, routeEntry{weight: w, order: i, route: r})
			continue
		}
		w++
		for _, p := range r.paths {
			if strings.HasPrefix(p, "~") {
				return nil, fmt.Errorf("route %q: regex path %q is not supported by the dev gateway (prefix paths only)", r.name, p)
			}
			np, ok := normalizePath(p)
			if !ok {
				return nil, fmt.Errorf("route %q: path %q is not a valid path", r.name, p)
			}
			t.entries = append(t.entries, routeEntry{prefix: np, weight: w, order: i, route: r})
		}
	}
	slices.SortStableFunc(t.entries, func(a, b routeEntry) int {
		if a.weight != b.weight {
			return b.weight - a.weight
		}
		if len(a.prefix) != len(b.prefix) {
			return len(b.prefix) - len(a.prefix)
		}
		return a.order - b.order
	})
	return t, nil
}

// lookup returns the route for a method, a Host header and a normalized
// path, and the prefix that matched; nil when no route matches.
func (t *table) lookup(method, host, path string) (*route, string) {
	for i := range t.entries {
		e := &t.entries[i]
		if !strings.HasPrefix(path, e.prefix) {
			continue
		}
		if len(e.route.methods) > 0 && !slices.Contains(e.route.methods, method) {
			continue
		}
		if len(e.route.hosts) > 0 && !hostMatches(e.route.hosts, host) {
			continue
		}
		return e.route, e.prefix
	}
	return nil, ""
}

// hostMatches reports whether a request's Host header is one of a route's
// hosts (lower case): "name" matches "name" on any port, "name:port" only
// that port, in any case.
func hostMatches(hosts []string, host string) bool {
	host = strings.ToLower(host)
	name := host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		name = host[:i]
	}
	for _, h := range hosts {
		if h == host || h == name {
			return true
		}
	}
	return false
}

func lowerAll(list []string) []string {
	var out []string
	for _, s := range list {
		out = append(out, strings.ToLower(s))
	}
	return out
}

// upstreamPath is the path sent to the service, with Kong's path_handling
// v0 (its default): the service's path joined with the request path, or
// with what follows the matched prefix when strip_path is on.
func upstreamPath(servicePath, prefix, path string, strip bool) string {
	rest := path
	if strip {
		rest = path[len(prefix):]
		if rest == "" {
			if servicePath == "" {
				return "/"
			}
			return servicePath
		}
		if rest[0] != '/' {
			rest = "/" + rest
		}
	}
	switch {
	case servicePath == "" || servicePath == "/":
		return rest
	case strings.HasSuffix(servicePath, "/"):
		return servicePath + rest[1:]
	}
	return servicePath + rest
}

// normalizePath normalizes an escaped request path as Kong does before
// routing (RFC 3986 §6.2.2): percent-encoded unreserved characters are
// decoded, other escapes get upper-case hex, dot segments are removed and
// runs of slashes merged. ok is false for a path that does not start with
// "/" or carries an invalid escape; such a request matches no route.
func normalizePath(p string) (string, bool) {
	if p == "" || p[0] != '/' {
		return "", false
	}
	if p == "/" {
		return p, true
	}
	if strings.IndexByte(p, '%') >= 0 {
		var ok bool
		if p, ok = decodeUnreserved(p); !ok {
			return "", false
		}
	}
	if !strings.Contains(p, "//") && !strings.Contains(p, "/.") {
		return p, true
	}
	return removeDotSegments(p), true
}

// decodeUnreserved decodes %XX escapes of unreserved characters and
// upper-cases the hex of the others.
func decodeUnreserved(p string) (string, bool) {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(p) {
			return "", false
		}
		hi, ok1 := unhex(p[i+1])
		lo, ok2 := unhex(p[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		d := hi<<4 | lo
		if unreserved(d) {
			b.WriteByte(d)
		} else {
			const hexdigits = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hexdigits[hi])
			b.WriteByte(hexdigits[lo])
		}
		i += 2
	}
	return b.String(), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// removeDotSegments resolves "." and ".." segments and merges empty ones
// (runs of slashes). The result starts with "/" and keeps a trailing slash
// ("/a/b/" stays, "/a/b/." and "/a/b/.." end with one); ".." never climbs
// above the root.
func removeDotSegments(p string) string {
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	trailing := false
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case "", ".":
			trailing = last
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			trailing = last
		default:
			out = append(out, s)
			trailing = false
		}
	}
	r := "/" + strings.Join(out, "/")
	if trailing && len(out) > 0 {
		r += "/"
	}
	return r
}
