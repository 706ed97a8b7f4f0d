package devgw

import (
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/plugins/internal/kongconf"
)

// neverRouted are DESIGN.md's paths that no kong.yml route may reach.
var neverRouted = []string{"/admin", "/realms/master", "/internal", "/metrics"}

// FuzzRouteLookup normalizes arbitrary paths and looks them up in the
// repository's kong.yml: it never panics, a normalized path is stable and
// free of dot segments and empty segments, a matched route's prefix starts
// the path, the path sent upstream is the normalized one (kong.yml never
// strips), and nothing under /admin, /realms/master, /internal or /metrics
// is ever routed.
func FuzzRouteLookup(f *testing.F) {
	c, err := kongconf.Load(kongYML)
	if err != nil {
		f.Fatal(err)
	}
	g, err := New(Options{Config: c})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		"/v1/models", "/v1/models/../../admin", "/v1/%2e%2e/admin", "/v1/admin/x", "/admin", "//admin",
		"/realms/jan/../master/x", "/realms/jan/%2E%2E/master", "/v1/models/..%2F..%2Fadmin", "/%2Fadmin",
		"/auth/api-keys/./../../internal", "/resources/../metrics", "/v1/chat/completions?x=1", "/%zz", "/%",
		"/a/b/c/./../../..", "/V1/MODELS", "/v1/models%00", "/\x00", "/.well-known/../realms/jan/device",
	} {
		f.Add("GET", s)
	}
	f.Fuzz(func(t *testing.T, method, raw string) {
		p, ok := normalizePath(raw)
		if !ok {
			return
		}
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") || strings.Contains(p, "/./") ||
			strings.Contains(p, "/../") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") {
			t.Fatalf("normalizePath(%q) = %q keeps a dot or empty segment", raw, p)
		}
		if again, ok := normalizePath(p); !ok || again != p {
			t.Fatalf("normalizePath is not stable: %q -> %q -> %q", raw, p, again)
		}
		r, prefix := g.table.lookup(method, "localhost", p)
		if r == nil {
			return
		}
		if !strings.HasPrefix(p, prefix) {
			t.Fatalf("%q routed to %s by prefix %q", p, r.name, prefix)
		}
		up := upstreamPath(r.service.path, prefix, p, r.strip)
		if up != p {
			t.Fatalf("%q goes upstream as %q", p, up)
		}
		for _, f := range neverRouted {
			if p == f || strings.HasPrefix(p, f+"/") || strings.HasPrefix(up, f) {
				t.Fatalf("%q (from %q) is routed to %s", p, raw, r.name)
			}
		}
	})
}
