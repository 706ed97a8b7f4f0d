package allinone

import (
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/Kong/go-pdk/test"

	"github.com/edgeguard/edgeguard/pkg/dpop"
	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/headerguard"
	"github.com/edgeguard/edgeguard/plugins/internal/keycloakapikey"
	"github.com/edgeguard/edgeguard/plugins/internal/keycloakjwt"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter/kongtest"
	"github.com/edgeguard/edgeguard/plugins/internal/plugintest"
	"github.com/edgeguard/edgeguard/plugins/internal/redisratelimit"
)

// deadRedis is an address nothing listens on: the limiter falls back to its
// in-process GCRA ("local"), so these unit tests need no Redis.
func deadRedis(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// sections returns the four sections' settings for one route.
func sections(t *testing.T, p *jwttest.IdP, key string) map[string]map[string]any {
	return map[string]map[string]any{
		"header_guard": {"max_headers": 50},
		"jwt": {
			"issuers":             []map[string]any{{"issuer": p.Issuer, "jwks_url": p.JWKSURL()}},
			"audiences":           []string{"jan-api"},
			"credential_optional": true,
			"upstream_name":       "llm-api", "edge_signing_key_file": key,
		},
		"apikey": {
			"validate_url":        "http://127.0.0.1:1/internal/api-keys/validate",
			"internal_token_file": tokenFile(t),
			"upstream_name":       "llm-api", "edge_signing_key_file": key,
		},
		"ratelimit": {"second": 100, "redis": map[string]any{"addresses": []string{deadRedis(t)}}, "timeout_ms": 20, "on_redis_error": "local"},
	}
}

func tokenFile(t *testing.T) string {
	dir := t.TempDir()
	p := dir + "/token"
	if err := os.WriteFile(p, []byte("internal-token-0123456789abcdef0123"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// kongJSON renders the all-in-one config as Kong sends it: every section a
// record with every field present (unset ones null, an unset section a
// record of nulls).
func kongJSON(t *testing.T, s map[string]map[string]any) []byte {
	set := map[string]any{}
	for name, sec := range s {
		set[name] = sec
	}
	return plugintest.KongJSON(t, New(), set)
}

func decode(t *testing.T, js []byte) *Config {
	return plugintest.Decode(t, New, js).(*Config)
}

func TestTheWholeChainOnOneExchange(t *testing.T) {
	p := jwttest.New(t)
	key, jwks := plugintest.EdgeKey(t)
	c := decode(t, kongJSON(t, sections(t, p, key)))
	f := exchange.NewFake("POST", "/v1/chat/completions", map[string][]string{
		"Authorization": {"Bearer " + p.Token(t, "u-1", nil)},
		"X-User-ID":     {"victim"}, "X_Auth_Method": {"apikey"}, "X-Request-ID": {"req-1"},
	})
	c.Handle(f)
	if f.ExitStatus != 0 {
		t.Fatalf("refused: %d %s", f.ExitStatus, f.ExitBody)
	}
	v, _ := edgeid.NewVerifier(jwks, "llm-api", nil)
	id, err := v.Verify(f.Upstream["X-Edge-Identity"], "POST", "/v1/chat/completions")
	if err != nil || id.Subject != "u-1" {
		t.Fatalf("edge identity: %v %v", id, err)
	}
	if f.Upstream["X-User-ID"] != "u-1" || f.Upstream["X-Request-ID"] != "req-1" || f.Response["X-Request-ID"] != "req-1" {
		t.Fatalf("upstream %v response %v", f.Upstream, f.Response)
	}
	if f.Response["RateLimit-Limit"] != "100" || f.Response[redisratelimit.HeaderLimitRequests] != "100" ||
		f.Response[redisratelimit.HeaderRemainingRequests] != f.Response["RateLimit-Remaining"] ||
		f.Response[redisratelimit.HeaderResetRequests] == "" {
		t.Fatalf("rate-limit headers %v", f.Response)
	}
	if !f.WasCleared("x_auth_method") {
		t.Fatalf("spoofed header not cleared: %v", f.Cleared)
	}
	// No credential at all: keycloak-apikey (not optional) refuses.
	f = exchange.NewFake("GET", "/v1/models", nil)
	c.Handle(f)
	if f.ExitStatus != 401 || f.Response["X-Request-ID"] == "" {
		t.Fatalf("no credential: %d %v", f.ExitStatus, f.ExitHeaders)
	}
	// refused before the limiter: nothing was limited, no rate-limit header
	for _, k := range []string{"RateLimit-Limit", redisratelimit.HeaderLimitRequests, redisratelimit.HeaderRemainingRequests, redisratelimit.HeaderResetRequests} {
		if _, ok := f.ExitHeaders[k]; ok {
			t.Fatalf("401 carries %s: %v", k, f.ExitHeaders)
		}
	}
}

func TestMisconfiguredSectionFailsClosed(t *testing.T) {
	for name, s := range map[string]map[string]map[string]any{
		"nothing":      {},
		"bad guard":    {"header_guard": {"max_headers": 5000}},
		"jwt no issue": {"jwt": {"audiences": []string{"a"}}},
	} {
		t.Run(name, func(t *testing.T) {
			c := decode(t, kongJSON(t, s))
			f := exchange.NewFake("GET", "/", nil)
			c.Handle(f)
			if f.ExitStatus != 500 || !strings.Contains(string(f.ExitBody), "edge_misconfigured") {
				t.Fatalf("%d %s", f.ExitStatus, f.ExitBody)
			}
		})
	}
}

// TestHalfThePDKCallsOfTheSeparatePlugins runs one request through the four
// separate plugins and through the all-in-one plugin (go-pdk's test
// environment, the Kong adapter path) and compares the PDK calls. The one
// kong.client.get_forwarded_ip both make for the assertion's client
// address (claim cip) is the same cost on both sides and is left out of
// the ratio.
func TestHalfThePDKCallsOfTheSeparatePlugins(t *testing.T) {
	p := jwttest.New(t)
	key, _ := plugintest.EdgeKey(t)
	s := sections(t, p, key)
	tok := p.Token(t, "u-1", nil)
	req := func() test.Request {
		return test.Request{Method: "POST", Url: "http://gw.example/v1/chat/completions", Body: []byte("{}"),
			Headers: http.Header{"Authorization": {"Bearer " + tok}, "X-Request-Id": {"req-1"}}}
	}
	// The separate plugins, one after another on the same request (as Kong
	// runs them by priority).
	sep := kongtest.New(t, req())
	sep.Access(kongadapter.Handler(plugintest.Decode(t, func() interface{} { return headerguard.New() }, plugintest.KongJSON(t, headerguard.New(), s["header_guard"])).(*headerguard.Config)))
	sep.Access(kongadapter.Handler(plugintest.Decode(t, keycloakjwt.New, plugintest.KongJSON(t, keycloakjwt.New(), s["jwt"])).(*keycloakjwt.Config)))
	sep.Access(kongadapter.Handler(plugintest.Decode(t, keycloakapikey.New, plugintest.KongJSON(t, keycloakapikey.New(), s["apikey"])).(*keycloakapikey.Config)))
	sep.Access(kongadapter.Handler(plugintest.Decode(t, redisratelimit.New, plugintest.KongJSON(t, redisratelimit.New(), s["ratelimit"])).(*redisratelimit.Config)))
	separate := sep.Calls()

	one := kongtest.New(t, req())
	one.Access(kongadapter.Handler(decode(t, kongJSON(t, s))))
	combined := one.Calls()
	t.Logf("separate plugins: %d calls %v", len(separate), separate)
	t.Logf("edgeguard: %d calls %v", len(combined), combined)
	if one.ClientRes.Status != 0 && one.ClientRes.Status != 200 {
		t.Fatalf("all-in-one refused: %d", one.ClientRes.Status)
	}
	notIP := func(calls []string) []string {
		return slices.DeleteFunc(slices.Clone(calls), func(c string) bool { return c == kongadapter.CallGetForwardedIP })
	}
	if n := len(combined) - len(notIP(combined)); n != 1 || len(separate)-len(notIP(separate)) != 1 {
		t.Fatalf("client address read %d times by edgeguard, %d by the separate plugins: want once each (the assertion's cip)",
			n, len(separate)-len(notIP(separate)))
	}
	if 2*len(notIP(combined)) > len(notIP(separate)) {
		t.Fatalf("edgeguard made %d PDK calls, the separate plugins %d: want at most half", len(combined), len(separate))
	}
	// the README's seven calls: every response header — X-Request-ID,
	// RateLimit-*, X-RateLimit-*, OpenAI's x-ratelimit-*-requests — in the
	// one kong.response.set_headers
	want := []string{kongadapter.CallGetHeaders, kongadapter.CallGetForwardedIP, kongadapter.CallGetMethod,
		kongadapter.CallGetPath, kongadapter.CallSharedSet, kongadapter.CallSetHeaders, kongadapter.CallResponseSetHeaders}
	if !slices.Equal(combined, want) {
		t.Fatalf("edgeguard PDK calls\n got  %v\n want %v", combined, want)
	}
	h := one.ClientRes.Headers
	for _, k := range []string{"X-Request-ID", "RateLimit-Limit", "X-RateLimit-Limit-Second",
		redisratelimit.HeaderLimitRequests, redisratelimit.HeaderRemainingRequests, redisratelimit.HeaderResetRequests} {
		if h.Get(k) == "" {
			t.Fatalf("response without %s: %v", k, h)
		}
	}
}

// TestAuditedDenialUnderKong: the chain's audit event is built before
// kong.response.exit (Kong closes the PDK event with it; kongtest fails a
// later call), and audit off costs no call.
func TestAuditedDenialUnderKong(t *testing.T) {
	p := jwttest.New(t)
	key, _ := plugintest.EdgeKey(t)
	for _, tc := range []struct {
		name  string
		audit bool
		want  []string
	}{
		{"audit off", false, []string{kongadapter.CallGetHeaders, kongadapter.CallExit}},
		{"audit on", true, []string{kongadapter.CallGetHeaders, kongadapter.CallGetForwardedIP, kongadapter.CallGetPath, kongadapter.CallExit}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sections(t, p, key)
			if tc.audit { // nothing listens there: events are dropped, the calls are what is pinned
				s["audit"] = map[string]any{"redis": map[string]any{"addresses": []string{deadRedis(t)}}}
			}
			env := kongtest.New(t, test.Request{Method: "GET", Url: "http://gw.example/v1/models", Headers: http.Header{"Accept": {"*/*"}}})
			env.Access(kongadapter.Handler(decode(t, kongJSON(t, s))))
			if env.ClientRes.Status != 401 {
				t.Fatalf("status %d", env.ClientRes.Status)
			}
			if got := env.Calls(); !slices.Equal(got, tc.want) {
				t.Fatalf("PDK calls\n got  %v\n want %v", got, tc.want)
			}
		})
	}
}

// TestDPoPInTheChain: a DPoP-bound token with its proof passes the
// all-in-one plugin with the same PDK calls as a bearer token (the proof is
// in the one header read; method and path are read once, as the assertion
// reads them anyway), the assertion carries cnf, and the bound token sent
// as a bearer token is refused.
func TestDPoPInTheChain(t *testing.T) {
	p := jwttest.New(t)
	key, jwks := plugintest.EdgeKey(t)
	s := sections(t, p, key)
	s["jwt"]["dpop_public_base_url"] = "https://api.example.com"
	k, _, _ := dpop.GenerateKey()
	bound := p.Token(t, "u-1", map[string]any{"cnf": map[string]any{"jkt": k.Thumbprint()}})
	c := decode(t, kongJSON(t, s))
	run := func(h http.Header) *kongtest.Env {
		env := kongtest.New(t, test.Request{Method: "POST", Url: "http://gw.example/v1/chat/completions", Body: []byte("{}"), Headers: h})
		env.Access(kongadapter.Handler(c))
		return env
	}
	bearer := run(http.Header{"Authorization": {"Bearer " + p.Token(t, "u-2", nil)}})
	pr, _ := k.Proof("POST", "https://api.example.com/v1/chat/completions", dpop.ProofOptions{AccessToken: bound})
	bound1 := run(http.Header{"Authorization": {"DPoP " + bound}, "Dpop": {pr}})
	if bound1.ClientRes.Status != 0 && bound1.ClientRes.Status != 200 {
		t.Fatalf("DPoP request refused: %d %s", bound1.ClientRes.Status, bound1.ClientRes.Body)
	}
	a, b := slices.Sorted(slices.Values(bearer.Calls())), slices.Sorted(slices.Values(bound1.Calls()))
	if !slices.Equal(a, b) {
		t.Fatalf("PDK calls: bearer %v, DPoP %v", bearer.Calls(), bound1.Calls())
	}
	v, _ := edgeid.NewVerifier(jwks, "llm-api", nil)
	claims, err := v.VerifyClaims(bound1.ServiceReq.Headers.Get("X-Edge-Identity"), "POST", "/v1/chat/completions")
	if err != nil || claims.Identity.Cnf == nil || claims.Identity.Cnf.JKT != k.Thumbprint() {
		t.Fatalf("assertion %+v %v", claims, err)
	}
	down := run(http.Header{"Authorization": {"Bearer " + bound}})
	if down.ClientRes.Status != 401 || !strings.Contains(string(down.ClientRes.Body), string(dpop.ReasonDowngrade)) {
		t.Fatalf("downgrade: %d %s", down.ClientRes.Status, down.ClientRes.Body)
	}
}
