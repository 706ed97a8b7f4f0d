package devgw

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/plugins/internal/kongconf"
)

func TestNormalizePathAsKong(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"/", "/", true},
		{"/v1/models", "/v1/models", true},
		{"/v1//models", "/v1/models", true},
		{"/v1/./models/", "/v1/models/", true},
		{"/v1/models/../../admin", "/admin", true},
		{"/v1/%2e%2e/admin", "/admin", true},
		{"/v1/%2E%2e/%2e/admin/.", "/admin/", true},
		{"/%76%31/models", "/v1/models", true},                   // unreserved escapes decoded
		{"/v1/a%2fb", "/v1/a%2Fb", true},                         // reserved ones kept, hex upper-cased
		{"/v1/models/..%2Fadmin", "/v1/models/..%2Fadmin", true}, // an encoded slash is no segment
		{"/../../etc", "/etc", true},
		{"/a/b/..", "/a/", true},
		{"//", "/", true},
		{"/a%zz", "", false},
		{"/a%4", "", false},
		{"*", "", false},
		{"", "", false},
		{"v1/models", "", false},
	}
	for _, tt := range tests {
		got, ok := normalizePath(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("normalizePath(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func testRoutes() []*route {
	return []*route{
		{name: "models", paths: []string{"/v1/models"}},
		{name: "v1", paths: []string{"/v1"}},
		{name: "guest", paths: []string{"/auth/guest-login", "/auth/refresh"}, methods: []string{"POST", "OPTIONS"}},
		{name: "auth-any", paths: []string{"/auth/guest-login/x"}},
		{name: "keys", paths: []string{"/auth/api-keys"}},
		{name: "first", paths: []string{"/dup"}},
		{name: "second", paths: []string{"/dup"}},
	}
}

func TestLookupMatchesPrefixesAsKong(t *testing.T) {
	tab, err := newTable(testRoutes())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path string
		route        string
		prefix       string
	}{
		{"GET", "/v1/models", "models", "/v1/models"},
		{"GET", "/v1/models/gpt-4", "models", "/v1/models"},
		{"GET", "/v1/modelsX", "models", "/v1/models"}, // Kong's prefix is a plain string prefix
		{"GET", "/v1/chat", "v1", "/v1"},               // longest prefix wins
		{"POST", "/auth/guest-login", "guest", "/auth/guest-login"},
		{"OPTIONS", "/auth/refresh", "guest", "/auth/refresh"},
		{"GET", "/auth/guest-login", "", ""},                          // method not accepted, and no other route
		{"POST", "/auth/guest-login/x", "guest", "/auth/guest-login"}, // paths+methods outweighs a longer path
		{"GET", "/auth/guest-login/x", "auth-any", "/auth/guest-login/x"},
		{"DELETE", "/auth/api-keys/k1", "keys", "/auth/api-keys"},
		{"GET", "/dup", "first", "/dup"}, // equal: file order
		{"GET", "/admin", "", ""},
		{"GET", "/", "", ""},
		{"GET", "/V1/models", "", ""}, // case-sensitive, as Kong
	}
	for _, tt := range tests {
		r, prefix := tab.lookup(tt.method, "api.example.com", tt.path)
		name := ""
		if r != nil {
			name = r.name
		}
		if name != tt.route || prefix != tt.prefix {
			t.Errorf("lookup(%s %s) = %q %q; want %q %q", tt.method, tt.path, name, prefix, tt.route, tt.prefix)
		}
	}
}

func TestRouteWithoutPathsMatchesEveryPathOfItsMethods(t *testing.T) {
	tab, err := newTable([]*route{{name: "posts", methods: []string{"POST"}}, {name: "root", paths: []string{"/"}, methods: []string{"GET"}}})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := tab.lookup("POST", "", "/anything"); r == nil || r.name != "posts" {
		t.Fatalf("POST = %v", r)
	}
	if r, _ := tab.lookup("GET", "", "/anything"); r == nil || r.name != "root" {
		t.Fatalf("GET = %v", r)
	}
}

func TestRegexPathsAreRefusedWithTheReason(t *testing.T) {
	_, err := newTable([]*route{{name: "re", paths: []string{"~/v1/(a|b)$"}}})
	if err == nil || !strings.Contains(err.Error(), `route "re": regex path "~/v1/(a|b)$" is not supported`) {
		t.Fatalf("err = %v", err)
	}
}

func TestUpstreamPathFollowsStripPathAndServicePath(t *testing.T) {
	tests := []struct {
		name                string
		service, prefix, in string
		strip               bool
		want                string
	}{
		{"no strip, no service path", "", "/v1/models", "/v1/models/x", false, "/v1/models/x"},
		{"no strip, service path", "/api", "/v1", "/v1/models", false, "/api/v1/models"},
		{"no strip, service path with slash", "/api/", "/v1", "/v1/models", false, "/api/v1/models"},
		{"strip", "", "/v1", "/v1/models", true, "/models"},
		{"strip to nothing", "", "/v1", "/v1", true, "/"},
		{"strip to nothing, service path", "/s", "/v1", "/v1", true, "/s"},
		{"strip mid-segment (path_handling v0)", "/s", "/fv0", "/fv0req", true, "/s/req"},
		{"strip, service path with slash", "/s/", "/fv0/", "/fv0/req", true, "/s/req"},
		{"root service path", "/", "/v1", "/v1/models", false, "/v1/models"},
	}
	for _, tt := range tests {
		if got := upstreamPath(tt.service, tt.prefix, tt.in, tt.strip); got != tt.want {
			t.Errorf("%s: upstreamPath(%q, %q, %q, %v) = %q, want %q", tt.name, tt.service, tt.prefix, tt.in, tt.strip, got, tt.want)
		}
	}
}

func TestRoutesTheDevGatewayCannotServeAreRefused(t *testing.T) {
	tests := []struct {
		name, route, want string
	}{
		{"wildcard hosts", "hosts: [\"*.example.com\"]", "wildcard hosts are not supported"},
		{"headers", "headers: {x-v: [a]}", "headers are not supported"},
		{"https only", "protocols: [https]", "plain http only"},
		{"regex", `paths: ["~/v1/.*"]`, "regex path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yml := "_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://127.0.0.1:1\n  routes:\n  - name: r\n    paths: [/x]\n    " + tt.route + "\n"
			if tt.name == "regex" {
				yml = strings.Replace(yml, "    paths: [/x]\n", "", 1)
			}
			c, err := kongconf.Parse([]byte(yml))
			if err != nil {
				t.Fatal(err)
			}
			_, err = New(Options{Config: c})
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrConfig with %q", err, tt.want)
			}
		})
	}
}

// TestRouteHostsMatchAsKong: a route with hosts answers only those Hosts
// (any port unless the host names one, any case) and outweighs a route
// without hosts on the same path.
func TestRouteHostsMatchAsKong(t *testing.T) {
	tab, err := newTable([]*route{
		{name: "kc", paths: []string{"/realms/"}, hosts: []string{"localhost", "sso.example.com:8443"}},
		{name: "any", paths: []string{"/realms/jan/"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{
		"localhost": "kc", "localhost:8000": "kc", "LocalHost:1": "kc", "sso.example.com:8443": "kc",
		"sso.example.com": "any", "sso.example.com:443": "any", "evil.example": "any", "127.0.0.1:8000": "any", "": "any",
	} {
		if r, _ := tab.lookup("GET", host, "/realms/jan/x"); r == nil || r.name != want {
			t.Errorf("Host %q: %v, want %s", host, r, want)
		}
	}
	if r, _ := tab.lookup("GET", "evil.example", "/realms/master"); r != nil {
		t.Errorf("a foreign Host on a path only the hosts route has: %s, want no route", r.name)
	}
}
