package kongconf

// Tests of the repository's kong/kong.yml against docs/architecture.md
// ("Routes", "Kong configuration", "Secrets"): the route table, the paths
// that must never be reachable, authentication on every protected route,
// secrets only as file paths, and Kong's built-in plugins (cors,
// request-size-limiting) against their Kong 3.9.3 schemas. The
// plugin-config-vs-`-dump` check of our own plugins is in schema_test.go.

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// designRoutes is the route table of docs/architecture.md "Routes": gateway
// path → upstream service.
var designRoutes = map[string]string{
	"/v1/models":           "llm-api",
	"/v1/chat/completions": "llm-api",
	"/v1/completions":      "llm-api",
	"/v1/embeddings":       "llm-api",
	"/v1/usage":            "llm-api",
	"/v1/media":            "media-api",
	// signed downloads (GET/HEAD): the URL is the capability, no credential
	"~/v1/media/jan_[a-z2-7]{26}/content$": "media-api",
	"/v1/mcp":                              "mcp-tools",
	"/v1/approvals":                        "mcp-tools",
	"/auth/guest-login":                    "llm-api",
	"/auth/refresh":                        "llm-api",
	"/auth/logout":                         "llm-api",
	"/auth/api-keys":                       "llm-api",
	"/v1/admin/":                           "llm-api",
	"/realms/jan/protocol/openid-connect/": "keycloak",
	"/realms/jan/.well-known/":             "keycloak",
	"/realms/jan/device":                   "keycloak",
	"/realms/jan/login-actions/":           "keycloak",
	"/realms/jan/account":                  "keycloak",
	"/resources/":                          "keycloak",
}

// upstreamHosts are the hosts of the services (compose service names;
// ExternalName services in k8s/): the target of the upstream of the same
// name for the mTLS services, the url's host for Keycloak.
var upstreamHosts = map[string]string{
	"llm-api":   "llm-api:8080",
	"media-api": "media-api:8080",
	"mcp-tools": "mcp-tools:8080",
	"keycloak":  "keycloak:8080",
}

// forbiddenPaths must never reach an upstream (docs/architecture.md "Routes":
// "Anything under /admin, /realms/master, /internal or /metrics is never
// routed").
var forbiddenPaths = []string{"/admin", "/realms/master", "/internal", "/metrics"}

// unauthenticatedRoutes are the only routes without an auth plugin; each is
// limited per client IP instead.
var unauthenticatedRoutes = []string{"guest-auth", "keycloak-public", "media-signed-download"}

var authPlugins = []string{"keycloak-jwt", "keycloak-apikey"}

type routeOf struct {
	service *Service
	route   *Route
}

func kongRoutes(t *testing.T) (*Config, []routeOf) {
	t.Helper()
	c, err := Load(kongYML)
	if err != nil {
		t.Fatal(err)
	}
	var out []routeOf
	for i := range c.Services {
		s := &c.Services[i]
		for j := range s.Routes {
			out = append(out, routeOf{s, &s.Routes[j]})
		}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		for j := range c.Services {
			if c.Services[j].Name == string(r.Service) {
				out = append(out, routeOf{&c.Services[j], r})
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("kong.yml has no routes")
	}
	return c, out
}

// effectivePlugins returns the enabled plugins that apply to a route by
// name, with Kong's precedence: route, then service, then global.
func effectivePlugins(c *Config, ro routeOf) map[string]map[string]any {
	out := map[string]map[string]any{}
	add := func(ps []Plugin, match func(Plugin) bool) {
		for _, p := range ps {
			if _, done := out[p.Name]; done || !p.EnabledOrDefault() || !match(p) {
				continue
			}
			cfg := p.Config
			if cfg == nil {
				cfg = map[string]any{}
			}
			out[p.Name] = cfg
		}
	}
	all := func(Plugin) bool { return true }
	defer expandAllInOne(out)
	add(ro.route.Plugins, all)
	add(c.Plugins, func(p Plugin) bool { return string(p.Route) == ro.route.Name })
	add(ro.service.Plugins, all)
	add(c.Plugins, func(p Plugin) bool { return p.Route == "" && string(p.Service) == ro.service.Name })
	add(c.Plugins, func(p Plugin) bool { return p.Route == "" && p.Service == "" })
	return out
}

// allInOneSections maps the all-in-one edgeguard plugin's sections to the
// separate plugins they run.
var allInOneSections = map[string]string{
	"header_guard": "header-guard", "jwt": "keycloak-jwt", "apikey": "keycloak-apikey", "ratelimit": "redis-ratelimit",
}

// expandAllInOne replaces an edgeguard plugin by its sections, so every
// route check applies to what actually runs (a route must not carry both).
func expandAllInOne(ps map[string]map[string]any) {
	eg, ok := ps["edgeguard"]
	if !ok {
		return
	}
	delete(ps, "edgeguard")
	for section, plugin := range allInOneSections {
		if cfg, ok := eg[section].(map[string]any); ok {
			ps[plugin] = cfg
		}
	}
}

// serviceAddress is where a service's requests go: its upstream's one
// target, or its url's host:port.
func serviceAddress(c *Config, s *Service) string {
	if u := c.Upstream(s.Hostname()); u != nil {
		if len(u.Targets) != 1 {
			return fmt.Sprintf("%d targets", len(u.Targets))
		}
		return u.Targets[0].Target
	}
	if u, err := url.Parse(s.URL); err == nil {
		return u.Host
	}
	return ""
}

func TestKongYMLRoutesAreDesignsTable(t *testing.T) {
	c, routes := kongRoutes(t)
	seen := map[string]bool{}
	for _, ro := range routes {
		want, ok := upstreamHosts[ro.service.Name]
		if !ok {
			t.Errorf("route %q points at service %q, which is not one of %v", ro.route.Name, ro.service.Name, keys(upstreamHosts))
			continue
		}
		if got := serviceAddress(c, ro.service); got != want {
			t.Errorf("service %q reaches %q, want %s", ro.service.Name, got, want)
		}
		if ro.route.StripPathOrDefault() {
			t.Errorf("route %q: strip_path must be false (services serve their public paths)", ro.route.Name)
		}
		for _, p := range ro.route.Paths {
			svc, ok := designRoutes[p]
			switch {
			case !ok:
				t.Errorf("route %q: path %q is not in docs/architecture.md's route table", ro.route.Name, p)
			case svc != ro.service.Name:
				t.Errorf("route %q: path %q goes to %q, docs/architecture.md says %q", ro.route.Name, p, ro.service.Name, svc)
			}
			if seen[p] {
				t.Errorf("path %q is routed twice", p)
			}
			seen[p] = true
		}
	}
	for p := range designRoutes {
		if !seen[p] {
			t.Errorf("docs/architecture.md routes %q but kong.yml does not", p)
		}
	}
}

// reaches reports whether a route with these paths (as Kong matches them: a
// plain path is a prefix, "~" starts a regex anchored at the start; no paths
// at all matches every path) can receive a request for something under
// forbidden. Conservative: a plain path inside the forbidden tree (or a
// sibling sharing its prefix, like /adminx) counts too.
func reaches(paths []string, forbidden string) (bool, error) {
	if len(paths) == 0 {
		return true, nil
	}
	for _, p := range paths {
		if rx, ok := strings.CutPrefix(p, "~"); ok {
			re, err := regexp.Compile("^(?:" + rx + ")")
			if err != nil {
				return true, err // unreadable: assume the worst
			}
			for _, probe := range []string{forbidden, forbidden + "/", forbidden + "/x", forbidden + "/realms/jan/users"} {
				if re.MatchString(probe) {
					return true, nil
				}
			}
			continue
		}
		if strings.HasPrefix(forbidden, p) || strings.HasPrefix(p, forbidden) {
			return true, nil
		}
	}
	return false, nil
}

func TestReachesMatchesAsKongDoes(t *testing.T) {
	tests := []struct {
		paths     []string
		forbidden string
		want      bool
	}{
		{[]string{"/"}, "/admin", true},
		{[]string{"/realms/"}, "/realms/master", true},
		{[]string{"/realms/jan/"}, "/realms/master", false},
		{[]string{"/admin/realms"}, "/admin", true},
		{[]string{"/adminx"}, "/admin", true},
		{[]string{"/v1/admin/"}, "/admin", false},
		{[]string{"/metrics"}, "/metrics", true},
		{[]string{"/v1/models", "/int"}, "/internal", true},
		{nil, "/internal", true},
		{[]string{"~/(v1|admin)/"}, "/admin", true},
		{[]string{"~/realms/[a-z]+/"}, "/realms/master", true},
		{[]string{"~/v1/.*"}, "/admin", false},
		{[]string{"/resources/"}, "/internal", false},
	}
	for _, tt := range tests {
		got, err := reaches(tt.paths, tt.forbidden)
		if err != nil || got != tt.want {
			t.Errorf("reaches(%q, %q) = %v, %v; want %v", tt.paths, tt.forbidden, got, err, tt.want)
		}
	}
}

func TestKongYMLNeverRoutesAdminMasterInternalOrMetrics(t *testing.T) {
	_, routes := kongRoutes(t)
	for _, ro := range routes {
		for _, f := range forbiddenPaths {
			hit, err := reaches(ro.route.Paths, f)
			if err != nil {
				t.Errorf("route %q: %v", ro.route.Name, err)
			}
			if hit {
				t.Errorf("route %q (paths %q) can reach %s", ro.route.Name, ro.route.Paths, f)
			}
		}
	}
}

func TestKongYMLProtectedRoutesCarryAnAuthPlugin(t *testing.T) {
	c, routes := kongRoutes(t)
	for _, ro := range routes {
		ps := effectivePlugins(c, ro)
		if _, ok := ps["header-guard"]; !ok {
			t.Errorf("route %q: no header-guard", ro.route.Name)
		}
		if slices.Contains(unauthenticatedRoutes, ro.route.Name) {
			rl, ok := ps["redis-ratelimit"]
			if !ok || rl["limit_by"] != "ip" {
				t.Errorf("unauthenticated route %q: needs redis-ratelimit with limit_by: ip", ro.route.Name)
			}
			continue
		}
		var auth []string
		required := false
		for _, a := range authPlugins {
			cfg, ok := ps[a]
			if !ok {
				continue
			}
			auth = append(auth, a)
			if opt, _ := cfg["credential_optional"].(bool); !opt {
				required = true
			}
		}
		if len(auth) == 0 {
			t.Errorf("protected route %q carries no auth plugin (%v)", ro.route.Name, authPlugins)
			continue
		}
		if !required {
			t.Errorf("route %q: every auth plugin (%v) is credential_optional: a request without a credential would pass", ro.route.Name, auth)
		}
		if _, ok := ps["redis-ratelimit"]; !ok {
			t.Errorf("route %q: no redis-ratelimit", ro.route.Name)
		}
	}
}

// jwtOnly are the routes of docs/architecture.md "Routes" that accept only a
// Keycloak JWT, with their role requirements.
func TestKongYMLJWTOnlyRoutesAndRoles(t *testing.T) {
	want := map[string]struct{ required, forbidden []string }{
		"llm-api-keys": {nil, []string{"guest"}},
		"llm-admin":    {[]string{"admin"}, nil},
		"approvals":    {[]string{"admin"}, nil},
	}
	c, routes := kongRoutes(t)
	for _, ro := range routes {
		w, ok := want[ro.route.Name]
		if !ok {
			continue
		}
		delete(want, ro.route.Name)
		ps := effectivePlugins(c, ro)
		if _, ok := ps["keycloak-apikey"]; ok {
			t.Errorf("route %q accepts API keys; docs/architecture.md: JWT only", ro.route.Name)
		}
		jwt := ps["keycloak-jwt"]
		if jwt == nil {
			t.Errorf("route %q: no keycloak-jwt", ro.route.Name)
			continue
		}
		if got := strs(jwt["auth_methods"]); !slices.Equal(got, []string{"jwt"}) {
			t.Errorf("route %q: auth_methods %v, want [jwt]", ro.route.Name, got)
		}
		if got := strs(jwt["required_roles"]); !slices.Equal(got, w.required) {
			t.Errorf("route %q: required_roles %v, want %v", ro.route.Name, got, w.required)
		}
		if got := strs(jwt["forbidden_roles"]); !slices.Equal(got, w.forbidden) {
			t.Errorf("route %q: forbidden_roles %v, want %v", ro.route.Name, got, w.forbidden)
		}
	}
	for name := range want {
		t.Errorf("kong.yml has no route %q", name)
	}
}

// Every JWT section accepts the realm's four clients (jan-agent: DPoP-bound
// tokens only) and can check DPoP proofs: the public base URL is the
// issuer's (the gateway's public URL, before the TLS-terminating balancer)
// and the proofs' jti go to the Redis every Kong node shares
// (docs/architecture.md "The edge pipeline", keycloak/README.md).
func TestKongYMLJWTSectionsCheckDPoPProofs(t *testing.T) {
	c, routes := kongRoutes(t)
	n := 0
	for _, ro := range routes {
		jwt := effectivePlugins(c, ro)["keycloak-jwt"]
		if jwt == nil {
			continue
		}
		n++
		name := ro.route.Name
		if got := strs(jwt["allowed_azp"]); !slices.Equal(got, []string{"jan-cli", "jan-agent", "jan-web", "guest-login"}) {
			t.Errorf("route %q: allowed_azp %v", name, got)
		}
		issuers, _ := jwt["issuers"].([]any)
		if len(issuers) != 1 {
			t.Errorf("route %q: %d issuers", name, len(issuers))
			continue
		}
		iss, _ := issuers[0].(map[string]any)["issuer"].(string)
		base, _ := jwt["dpop_public_base_url"].(string)
		if base == "" || strings.TrimSuffix(iss, "/realms/jan") != base {
			t.Errorf("route %q: dpop_public_base_url %q, want the issuer's origin (%q)", name, base, iss)
		}
		r, _ := jwt["dpop_redis"].(map[string]any)
		if got := strs(r["addresses"]); !slices.Equal(got, []string{"redis:6379"}) || r["password_file"] != "/etc/kong/secrets/redis_password" {
			t.Errorf("route %q: dpop_redis %v", name, r)
		}
		if p, ok := jwt["dpop_on_redis_error"]; ok && p != "local" {
			t.Errorf("route %q: dpop_on_redis_error %v", name, p)
		}
	}
	if n == 0 {
		t.Fatal("no route carries a JWT section")
	}
}

// Every Redis user of the edge (rate limits, the API-key cache, DPoP proofs'
// jti, audit) names the same Redis Cluster by one seed — redis:6379, the
// compose network alias of every node and the headless Service of k8s —
// with cluster: true, so a single seed address gives a Cluster client
// (pkg/redisconn) that discovers the other nodes. scripts/dev.sh renders a
// single local Redis by replacing the literal "cluster: true" with "cluster:
// false": that text must occur in the redis records and nowhere else.
func TestKongYMLRedisRecordsNameTheClusterBySeed(t *testing.T) {
	c, _ := kongRoutes(t)
	records := 0
	for _, name := range c.PluginNames() {
		for _, ref := range c.PluginConfigs(name) {
			walk("config", ref.Config, func(at, key string, v any) {
				r, ok := v.(map[string]any)
				if !ok {
					return
				}
				_, hasAddrs := r["addresses"]
				_, hasCluster := r["cluster"]
				if !hasAddrs && !hasCluster {
					return
				}
				records++
				where := fmt.Sprintf("%s on %s/%s: %s", name, ref.Service, ref.Route, at)
				if key != "redis" && key != "dpop_redis" {
					t.Errorf("%s: a record with addresses/cluster under %q, not a redis record", where, key)
				}
				if got := strs(r["addresses"]); !slices.Equal(got, []string{"redis:6379"}) {
					t.Errorf("%s: addresses %v, want [redis:6379] (the cluster's seed name)", where, got)
				}
				if r["cluster"] != true {
					t.Errorf("%s: cluster %v, want true (one seed address is a single node otherwise)", where, r["cluster"])
				}
				if r["password_file"] != "/etc/kong/secrets/redis_password" {
					t.Errorf("%s: password_file %v", where, r["password_file"])
				}
				if r["sentinel_master"] != nil || r["database"] != nil {
					t.Errorf("%s: sentinel_master/database set: a Redis Cluster has neither", where)
				}
			})
		}
	}
	if records == 0 {
		t.Fatal("kong.yml has no redis record")
	}
	raw, err := os.ReadFile(kongYML)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(raw), "cluster: true"); n != records {
		t.Errorf(`kong.yml has "cluster: true" %d times and %d redis records: scripts/dev.sh's rewrite to "cluster: false" would touch something else`, n, records)
	}
	if strings.Contains(string(raw), "cluster: false") {
		t.Error(`kong.yml says "cluster: false" somewhere`)
	}
}

var secretKey = regexp.MustCompile(`(?i)(password|secret|token|pepper|private_key|signing_key|api_key)$`)

// Secrets are file paths under /etc/kong/secrets (what kong/Dockerfile,
// compose and k8s mount), never values: Kong's Admin API would show them.
func TestKongYMLHasNoInlineSecrets(t *testing.T) {
	c, _ := kongRoutes(t)
	for _, name := range c.PluginNames() {
		for _, ref := range c.PluginConfigs(name) {
			walk("config", ref.Config, func(at, key string, v any) {
				s, isString := v.(string)
				switch {
				case strings.HasSuffix(key, "_file"):
					if !isString || !strings.HasPrefix(s, "/etc/kong/secrets/") {
						t.Errorf("%s on %s/%s: %s = %v, want a file under /etc/kong/secrets/", name, ref.Service, ref.Route, at, v)
					}
				case secretKey.MatchString(key) && v != nil:
					t.Errorf("%s on %s/%s: %s holds a value; secrets go in a *_file option", name, ref.Service, ref.Route, at)
				}
			})
		}
	}
}

func walk(at string, v any, f func(at, key string, v any)) {
	switch x := v.(type) {
	case map[string]any:
		for k, sub := range x {
			f(at+"."+k, k, sub)
			walk(at+"."+k, sub, f)
		}
	case []any:
		for _, sub := range x {
			walk(at+"[]", sub, f)
		}
	}
}

// TestKongYMLBuiltinPluginsMatchKongSchemas checks the configs of Kong's
// own plugins against their schemas as declared in Kong 3.9.3
// (kong/plugins/<name>/schema.lua, transcribed to testdata: a fast check
// without Kong; tests/kong TestValidateScriptChecksWithKongItself has the
// real Kong validate the same file), and docs/architecture.md's requirements on them ("Kong
// configuration": cors with explicit origins and no credentials;
// request-size-limiting on llm-openai and media).
func TestKongYMLBuiltinPluginsMatchKongSchemas(t *testing.T) {
	raw, err := os.ReadFile("testdata/kong-3.9.3-builtin-schemas.json")
	if err != nil {
		t.Fatal(err)
	}
	var schemas map[string]any
	if err := json.Unmarshal(raw, &schemas); err != nil {
		t.Fatal(err)
	}
	c, routes := kongRoutes(t)
	for name, js := range schemas {
		schema, err := parseField(js)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, ref := range c.PluginConfigs(name) {
			if err := CheckConfig(schema, ref.Config); err != nil {
				t.Errorf("kong.yml, %s on service %q route %q:\n%v", name, ref.Service, ref.Route, err)
			}
		}
	}
	for _, ref := range c.PluginConfigs("cors") {
		for _, m := range strs(ref.Config["methods"]) {
			if !slices.Contains([]string{"GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS"}, m) {
				t.Errorf("cors on %s/%s: method %q", ref.Service, ref.Route, m)
			}
		}
		for _, o := range strs(ref.Config["origins"]) {
			if o == "*" || !strings.HasPrefix(o, "http") {
				t.Errorf("cors on %s/%s: origin %q; want explicit origins", ref.Service, ref.Route, o)
			}
		}
		if cred, _ := ref.Config["credentials"].(bool); cred {
			t.Errorf("cors on %s/%s: credentials true; clients send bearer tokens, not cookies", ref.Service, ref.Route)
		}
		// a browser client of DPoP-bound tokens sends DPoP proofs and reads
		// the server's nonce and the challenge of a refused proof
		if !slices.Contains(strs(ref.Config["headers"]), "DPoP") {
			t.Errorf("cors on %s/%s: the DPoP request header is not allowed", ref.Service, ref.Route)
		}
		// and the rate limit's headers, RateLimit-* and OpenAI's
		// x-ratelimit-*-requests (OpenAI's SDKs in a browser read them)
		for _, h := range []string{"DPoP-Nonce", "WWW-Authenticate", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After",
			"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"} {
			if !slices.Contains(strs(ref.Config["exposed_headers"]), h) {
				t.Errorf("cors on %s/%s: %s is not exposed", ref.Service, ref.Route, h)
			}
		}
	}
	limits := map[string]bool{"media": false, "llm-openai": false}
	for _, ro := range routes {
		if cfg, ok := effectivePlugins(c, ro)["request-size-limiting"]; ok {
			limits[ro.route.Name] = true
			if unit, _ := cfg["size_unit"].(string); cfg["allowed_payload_size"] == nil ||
				!slices.Contains([]string{"megabytes", "kilobytes", "bytes"}, unit) {
				t.Errorf("route %q: request-size-limiting needs an explicit allowed_payload_size and a size_unit Kong knows", ro.route.Name)
			}
		}
	}
	for route, ok := range limits {
		if !ok {
			t.Errorf("route %q: no request-size-limiting", route)
		}
	}
}

func strs(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
