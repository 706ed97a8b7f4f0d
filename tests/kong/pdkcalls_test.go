package kong

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/dpop"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
)

// pdkPath is one request path whose PDK calls the real Kong's plugin
// servers count (edgeguard_plugin_pdk_calls, a histogram per plugin).
type pdkPath struct {
	name   string
	path   string
	header func(i int) http.Header
	status int
	// prime: requests sent before the measured ones (e.g. to use up a limit)
	prime int
	// calls per request, by plugin server; the same numbers as the unit
	// tests that pin the exact call lists through go-pdk's test package
	// (the test named in each row) and the plugins' READMEs
	calls map[string]int
}

// TestPDKCallsPerRequestInTheRealKong scrapes each plugin server's
// /metrics before and after N requests of each path through the real Kong
// and checks the PDK calls per request the plugin counted: every request
// observed once, and exactly the number the unit tests assert.
func TestPDKCallsPerRequestInTheRealKong(t *testing.T) {
	p := jwttest.New(t)
	up := newUpstream(t)
	redis := redisAddr(t)
	secrets, _ := secretsDir(t, "")
	run := randomSecret(t)[:8] // fresh rate-limit namespaces and subject: the Redis is shared
	sub := "u-pdk-" + run
	creds := newCredentials(t, p, sub)
	issuer := []map[string]any{{"issuer": p.Issuer, "jwks_url": p.JWKSURL()}}
	jwt := map[string]any{"issuers": issuer, "audiences": []string{"jan-api"}}
	// DPoP: a token bound to k, a fresh proof per request for the public
	// URL (not Kong's own address: TLS ends at the balancer)
	const public = "https://gw.example.com"
	dk, _, err := dpop.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	bound := p.Token(t, sub, map[string]any{"cnf": map[string]any{"jkt": dk.Thumbprint()}})
	dpopReq := func(path string) func(int) http.Header {
		return func(int) http.Header {
			pr, err := dk.Proof(http.MethodGet, public+path, dpop.ProofOptions{AccessToken: bound})
			if err != nil {
				t.Fatal(err)
			}
			return http.Header{"Authorization": {"DPoP " + bound}, "DPoP": {pr}, "X-Request-Id": {"req-1"}}
		}
	}
	jwtDPoP := map[string]any{"issuers": issuer, "audiences": []string{"jan-api"}, "dpop_public_base_url": public,
		"dpop_redis": map[string]any{"addresses": []string{redis}}}
	limit := func(ns string, window string, n int) map[string]any {
		return map[string]any{window: n, "namespace": ns + "-" + run, "redis": map[string]any{"addresses": []string{redis}}}
	}
	const key = "/etc/kong/secrets/edge_identity.pem"
	k := startKong(t, kongOptions{secrets: secrets, config: declarative(service("pdk", up.URL(),
		route("hg", "/hg", plugin("header-guard", map[string]any{"max_headers": 20})),
		route("jwt", "/jwt", plugin("keycloak-jwt", jwt)),
		route("jwtdpop", "/jwtdpop", plugin("keycloak-jwt", jwtDPoP)),
		route("apikey", "/apikey", plugin("keycloak-apikey", map[string]any{
			"validate_url": up.URL() + "/internal/api-keys/validate", "internal_token_file": "/etc/kong/secrets/internal_token"})),
		route("rl", "/rl", plugin("redis-ratelimit", limit("rl", "second", 100000))),
		route("rl429", "/rl429", plugin("redis-ratelimit", limit("rl429", "minute", 1))),
		route("jwtrl", "/jwtrl", plugin("keycloak-jwt", jwt), plugin("redis-ratelimit", limit("jwtrl", "second", 100000))),
		route("jwtrl429", "/jwtrl429", plugin("keycloak-jwt", jwt), plugin("redis-ratelimit", limit("jwtrl429", "minute", 1))),
		route("edgeguard", "/edgeguard", plugin("edgeguard", map[string]any{
			"header_guard": map[string]any{"max_headers": 50},
			"jwt": map[string]any{"issuers": issuer, "audiences": []string{"jan-api"}, "credential_optional": true,
				"upstream_name": "llm-api", "edge_signing_key_file": key},
			"apikey": map[string]any{"validate_url": up.URL() + "/internal/api-keys/validate",
				"internal_token_file": "/etc/kong/secrets/internal_token", "upstream_name": "llm-api", "edge_signing_key_file": key},
			"ratelimit": limit("edgeguard", "second", 100000),
		})),
		route("edgeguarddpop", "/edgeguarddpop", plugin("edgeguard", map[string]any{
			"header_guard": map[string]any{"max_headers": 50},
			"jwt": map[string]any{"issuers": issuer, "audiences": []string{"jan-api"}, "credential_optional": true,
				"dpop_public_base_url": public, "dpop_redis": map[string]any{"addresses": []string{redis}},
				"upstream_name": "llm-api", "edge_signing_key_file": key},
			"apikey": map[string]any{"validate_url": up.URL() + "/internal/api-keys/validate",
				"internal_token_file": "/etc/kong/secrets/internal_token", "upstream_name": "llm-api", "edge_signing_key_file": key},
			"ratelimit": limit("edgeguarddpop", "second", 100000),
		})),
	))})

	bearer := func(tok string) func(int) http.Header {
		return func(int) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	}
	none := func(int) http.Header { return http.Header{} }
	tooMany := func(int) http.Header {
		h := http.Header{}
		for i := range 25 {
			h.Set(fmt.Sprintf("X-Extra-%d", i), "v")
		}
		return h
	}
	paths := []pdkPath{
		// headerguard TestPDKCallsPerPath "clean request": get_headers, service set_headers, response set_headers
		{"header-guard allow", "/hg", none, 200, 0, map[string]int{"header-guard": 3}},
		// headerguard TestPDKCallsPerPath "too many headers": get_headers, exit
		{"header-guard 431 too many headers", "/hg", tooMany, 431, 0, map[string]int{"header-guard": 2}},
		// keycloakjwt TestPDKCallsPerPath "allow": get_headers, ctx.shared.set, service set_headers
		{"keycloak-jwt allow", "/jwt", bearer(creds.valid), 200, 0, map[string]int{"keycloak-jwt": 3}},
		// keycloakjwt TestPDKCallsPerPath "missing credential": get_headers, exit
		{"keycloak-jwt 401 missing credential", "/jwt", none, 401, 0, map[string]int{"keycloak-jwt": 2}},
		// keycloakjwt TestPDKCallsPerPath "deny: invalid token": get_headers, exit
		{"keycloak-jwt 401 forged token", "/jwt", bearer(creds.forged), 401, 0, map[string]int{"keycloak-jwt": 2}},
		{"keycloak-jwt 401 expired token", "/jwt", bearer(creds.expired), 401, 0, map[string]int{"keycloak-jwt": 2}},
		// keycloakapikey TestPDKCallsPerPath "missing credential": get_headers, ctx.shared.get, exit
		{"keycloak-apikey 401 missing credential", "/apikey", none, 401, 0, map[string]int{"keycloak-apikey": 3}},
		// redisratelimit TestPDKCallsPerPath "allow, anonymous (client IP)": ctx.shared.get, get_forwarded_ip, response set_headers
		{"redis-ratelimit allow, anonymous", "/rl", none, 200, 0, map[string]int{"redis-ratelimit": 3}},
		// redis-ratelimit README "429: 2 (3 anonymous)": ctx.shared.get, get_forwarded_ip, exit
		{"redis-ratelimit 429, anonymous", "/rl429", none, 429, 1, map[string]int{"redis-ratelimit": 3}},
		// redisratelimit TestPDKCallsPerPath "allow, authenticated": ctx.shared.get, response set_headers
		{"keycloak-jwt + redis-ratelimit allow", "/jwtrl", bearer(creds.valid), 200, 0, map[string]int{"keycloak-jwt": 3, "redis-ratelimit": 2}},
		// redisratelimit TestPDKCallsPerPath "429, authenticated": ctx.shared.get, exit
		{"keycloak-jwt + redis-ratelimit 429", "/jwtrl429", bearer(creds.valid), 429, 1, map[string]int{"keycloak-jwt": 3, "redis-ratelimit": 2}},
		// edgeguard README "PDK calls" (allinone TestHalfThePDKCallsOfTheSeparatePlugins, same sections):
		// get_headers, get_forwarded_ip (the assertion's cip), get_method, get_path, ctx.shared.set,
		// service set_headers, response set_headers
		{"edgeguard allow (JWT, edge identity, rate limit)", "/edgeguard", func(int) http.Header {
			return http.Header{"Authorization": {"Bearer " + creds.valid}, "X-Request-Id": {"req-1"}}
		}, 200, 0, map[string]int{"edgeguard": 7}},
		// keycloakjwt TestDPoPPDKCallsAndAssertion without the assertion: get_headers (the proof
		// too), get_method, get_path (the proof's htm and htu), ctx.shared.set, service set_headers
		{"keycloak-jwt allow, DPoP-bound token with its proof", "/jwtdpop", dpopReq("/jwtdpop"), 200, 0, map[string]int{"keycloak-jwt": 5}},
		// allinone TestDPoPInTheChain: the same 7 as a bearer token (the assertion reads method
		// and path anyway)
		{"edgeguard allow, DPoP-bound token with its proof", "/edgeguarddpop", dpopReq("/edgeguarddpop"), 200, 0, map[string]int{"edgeguard": 7}},
	}
	const n = 20
	for _, pp := range paths {
		for i := range pp.prime {
			mustDo(t, http.MethodGet, k.proxy+pp.path, pp.header(-1-i))
		}
		before := map[string]map[string]float64{}
		for plugin := range pp.calls {
			before[plugin] = k.scrape(t, plugin)
		}
		for i := range n {
			r := mustDo(t, http.MethodGet, k.proxy+pp.path, pp.header(i))
			if r.status != pp.status {
				t.Fatalf("%s: request %d: %d %s, want %d", pp.name, i, r.status, r.body, pp.status)
			}
		}
		var got []string
		for plugin, want := range pp.calls {
			count := `edgeguard_plugin_pdk_calls_count{plugin="` + plugin + `"}`
			sum := `edgeguard_plugin_pdk_calls_sum{plugin="` + plugin + `"}`
			// A plugin records a request after its last PDK call: after a
			// kong.response.exit the client may have the answer first.
			var after map[string]float64
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				after = k.scrape(t, plugin)
				if after[count]-before[plugin][count] >= n || time.Now().After(deadline) {
					break
				}
			}
			dc, ds := after[count]-before[plugin][count], after[sum]-before[plugin][sum]
			got = append(got, fmt.Sprintf("%s %g", plugin, ds/dc))
			if dc != n {
				t.Errorf("%s: %s counted %g requests, want %d", pp.name, plugin, dc, n)
				continue
			}
			if ds != float64(want*n) {
				t.Errorf("%s: %s made %g PDK calls per request in the real Kong, the unit tests assert %d", pp.name, plugin, ds/dc, want)
			}
		}
		t.Logf("%-50s %d: PDK calls per request %s", pp.name, pp.status, strings.Join(got, ", "))
	}
}
