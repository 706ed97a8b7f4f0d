package devgw

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/kongconf"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginrt"
)

func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var b struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("body %q is not the edge's JSON error: %v", body, err)
	}
	return b.Error.Code
}

// logLines decodes a JSON log.
func logLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func accessLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range logLines(t, s) {
		if m["message"] == "request" {
			out = append(out, m)
		}
	}
	return out
}

const simpleYML = `_format_version: "3.0"
services:
- name: svc
  url: %s
  routes:
  - name: r
    paths: [/v1/models, /auth/]
    strip_path: false
    plugins:
    - name: header-guard
`

func TestUnmatchedRequestsAre404NoRoute(t *testing.T) {
	up := newUpstream(t, nil)
	g, logs := newGateway(t, fmt.Sprintf(simpleYML, up.URL), Options{})
	for _, target := range []string{"/admin", "/internal/api-keys/validate", "/metrics", "/realms/master/",
		"/v1/models/../../admin", "/v1/%2e%2e/admin", "/", "/v1/model", "/V1/models"} {
		rec := serve(g, httptest.NewRequest("GET", target, nil))
		if rec.Code != 404 || errorCode(t, rec.Body.Bytes()) != CodeNoRoute {
			t.Errorf("%s: %d %s", target, rec.Code, rec.Body)
		}
		if !strings.Contains(rec.Body.String(), "no Route matched with those values") || rec.Header().Get("X-Request-ID") == "" {
			t.Errorf("%s: body %s headers %v", target, rec.Body, rec.Header())
		}
	}
	if up.count() != 0 {
		t.Fatalf("the upstream received %d requests", up.count())
	}
	lines := accessLines(t, logs.String())
	if len(lines) != 9 || lines[0]["status"] != 404.0 || lines[0]["path"] != "/admin" || lines[0]["request_id"] == "" {
		t.Fatalf("access log: %v", lines)
	}
}

func TestUnreachableServiceIs502UpstreamUnavailable(t *testing.T) {
	for _, target := range []string{"http://127.0.0.1:1", "http://no-such-service.invalid:8080"} {
		t.Run(target, func(t *testing.T) {
			g, logs := newGateway(t, fmt.Sprintf(simpleYML, target), Options{})
			r := httptest.NewRequest("GET", "/v1/models?api_key=secret-in-query", nil)
			r.Header.Set("X-Request-ID", "rid-502")
			rec := serve(g, r)
			if rec.Code != 502 || errorCode(t, rec.Body.Bytes()) != CodeUpstreamUnavailable {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			if rec.Header().Get("X-Request-ID") != "rid-502" {
				t.Fatalf("header-guard's response headers are missing on the 502: %v", rec.Header())
			}
			s := logs.String()
			if !strings.Contains(s, `"message":"upstream unavailable"`) || !strings.Contains(s, `"request_id":"rid-502"`) {
				t.Fatalf("log: %s", s)
			}
			if strings.Contains(s, "secret-in-query") {
				t.Fatalf("the query string reached the log: %s", s)
			}
		})
	}
}

func TestProxyForwardsPathQueryHostAndForwardedHeaders(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Request-ID", "from-upstream")
		w.Header().Set("X-Upstream", "yes")
		w.WriteHeader(201)
	})
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
- name: svc
  url: %s
  routes:
  - name: keep
    paths: [/keep]
    strip_path: false
    plugins: [{name: header-guard}]
  - name: strip
    paths: [/strip]
  - name: host
    paths: [/host]
    preserve_host: true
    strip_path: false
- name: based
  url: %s/base
  routes:
  - name: based
    paths: [/b]
    strip_path: true
`, up.URL, up.URL)
	g, _ := newGateway(t, yml, Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	upHost := strings.TrimPrefix(up.URL, "http://")

	tests := []struct {
		target, path, query, host string
	}{
		{"/keep/a%2Fb?x=1&y=2", "/keep/a%2Fb", "x=1&y=2", upHost},
		{"/keep/./c/../d", "/keep/d", "", upHost},
		{"/strip/models", "/models", "", upHost},
		{"/strip", "/", "", upHost},
		{"/host/x", "/host/x", "", "public.example"},
		{"/b/x", "/base/x", "", upHost},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "http://public.example"+tt.target, nil)
		r.Header.Set("X-Forwarded-For", "198.51.100.4")
		rec := serve(g, r)
		if rec.Code != 201 {
			t.Fatalf("%s: %d %s", tt.target, rec.Code, rec.Body)
		}
		got := up.last(t)
		escaped := got.RawPath
		if escaped == "" {
			escaped = got.Path
		}
		if escaped != tt.path || got.Query != tt.query || got.Host != tt.host {
			t.Errorf("%s: upstream got path %q query %q host %q; want %q %q %q", tt.target, escaped, got.Query, got.Host, tt.path, tt.query, tt.host)
		}
		if xff := got.Header.Get("X-Forwarded-For"); xff != "198.51.100.4, 192.0.2.1" {
			t.Errorf("X-Forwarded-For = %q: the peer must be appended", xff)
		}
		if got.Header.Get("X-Real-IP") != "198.51.100.4" || got.Header.Get("X-Forwarded-Host") != "public.example" {
			t.Errorf("forwarded headers: %v", got.Header)
		}
		if rec.Header().Get("X-Upstream") != "yes" {
			t.Errorf("upstream response headers lost: %v", rec.Header())
		}
	}
	// header-guard's X-Request-ID replaces the upstream's on the response.
	r := httptest.NewRequest("GET", "/keep/x", nil)
	r.Header.Set("X-Request-ID", "client-rid")
	rec := serve(g, r)
	if got := rec.Header().Values("X-Request-ID"); !slices.Equal(got, []string{"client-rid"}) {
		t.Fatalf("X-Request-ID on the response = %v", got)
	}
}

func TestPluginsRunInKongPriorityOrder(t *testing.T) {
	yml := `_format_version: "3.0"
plugins:
- name: prometheus
services:
- name: svc
  url: http://127.0.0.1:1
  plugins:
  - name: cors
  routes:
  - name: r
    paths: [/x]
    plugins:
    - name: redis-ratelimit
      config: {minute: 1, redis: {addresses: ["127.0.0.1:1"]}}
    - name: request-size-limiting
    - name: keycloak-apikey
      config: {validate_url: "http://127.0.0.1:1/v", internal_token_file: /nonexistent}
    - name: keycloak-jwt
      config: {issuers: [{issuer: "http://i"}]}
    - name: header-guard
    - name: edgeguard
      config: {header_guard: {max_headers: 10}}
    - name: acl
      config: {allow: [a]}
`
	g, logs := newGateway(t, yml, Options{})
	want := []string{"cors", "edgeguard", "header-guard", "keycloak-jwt", "keycloak-apikey", "request-size-limiting", "redis-ratelimit"}
	if got := g.Chain("r"); !slices.Equal(got, want) {
		t.Fatalf("chain = %v, want %v", got, want)
	}
	if got := g.NotEmulated(); !slices.Equal(got, []string{"acl", "prometheus"}) {
		t.Fatalf("not emulated = %v", got)
	}
	var warns int
	for _, m := range logLines(t, logs.String()) {
		if strings.Contains(fmt.Sprint(m["message"]), "not emulated") {
			warns++
			if fmt.Sprint(m["plugins"]) != "[acl prometheus]" {
				t.Fatalf("warn lists %v", m["plugins"])
			}
		}
	}
	if warns != 1 {
		t.Fatalf("%d not-emulated lines, want exactly 1:\n%s", warns, logs)
	}

	chain := []plugin{{name: "b", priority: 10}, {name: "a", priority: 10}, {name: "z", priority: 11}}
	sortChain(chain)
	if chain[0].name != "z" || chain[1].name != "a" || chain[2].name != "b" {
		t.Fatalf("ties are not ordered by name: %v", chain)
	}
}

func TestPluginPrecedenceIsRouteThenServiceThenGlobal(t *testing.T) {
	yml := `_format_version: "3.0"
plugins:
- name: header-guard
  config: {max_headers: 10}
services:
- name: a
  url: http://127.0.0.1:1
  plugins:
  - name: header-guard
    config: {max_headers: 20}
  routes:
  - name: own
    paths: [/own]
    plugins:
    - name: header-guard
      config: {max_headers: 30}
  - name: inherits
    paths: [/inherits]
  - name: disabled-own
    paths: [/disabled]
    plugins:
    - name: header-guard
      enabled: false
      config: {max_headers: 40}
- name: b
  url: http://127.0.0.1:1
  routes:
  - name: global
    paths: [/global]
`
	c, err := kongconf.Parse([]byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	for route, want := range map[string]int{"own": 30, "inherits": 20, "disabled-own": 20, "global": 10} {
		svc := "a"
		if route == "global" {
			svc = "b"
		}
		got, _ := routePlugins(c, svc, route)
		if n, _ := got["header-guard"]["max_headers"].(int); n != want {
			t.Errorf("route %s: header-guard config %v, want max_headers %d", route, got["header-guard"], want)
		}
	}
}

func TestConfigsDecodeAsKongSendsThemAndUnknownKeysAreRefused(t *testing.T) {
	base := `_format_version: "3.0"
services:
- name: s
  url: http://127.0.0.1:1
  routes:
  - name: r
    paths: [/x]
    plugins:
    - name: header-guard
      config: %s
`
	// Kong sends every schema field, unset ones null.
	g, _ := newGateway(t, fmt.Sprintf(base, "{max_headers: ~, max_header_bytes: ~, strip_headers: ~}"), Options{})
	rec := serve(g, httptest.NewRequest("GET", "/x", nil))
	if rec.Header().Get("X-Request-ID") == "" {
		t.Fatalf("header-guard did not run: %d %v", rec.Code, rec.Header())
	}

	c, err := kongconf.Parse([]byte(fmt.Sprintf(base, "{max_headerz: 5}")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{Config: c})
	if err == nil || !strings.Contains(err.Error(), `route "r": plugin header-guard`) || !strings.Contains(err.Error(), "max_headerz") {
		t.Fatalf("err = %v", err)
	}

	// The configs decode through their UnmarshalJSON (package kongjson),
	// which the decoder's strictness does not reach: a misspelt key deep in
	// a record is still refused, as Kong's schema validation would.
	nested := strings.Replace(base, "name: header-guard", "name: redis-ratelimit", 1)
	c, err = kongconf.Parse([]byte(fmt.Sprintf(nested, "{second: 1, redis: {addresses: [127.0.0.1:1]}, audit: {redis: {adresses: [127.0.0.1:1]}}}")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{Config: c})
	if err == nil || !strings.Contains(err.Error(), `route "r": plugin redis-ratelimit`) || !strings.Contains(err.Error(), "config.audit.redis.adresses: not in the plugin's schema") {
		t.Fatalf("err = %v", err)
	}
}

func TestMisconfiguredInstanceAnswers500AndLogsOnce(t *testing.T) {
	yml := `_format_version: "3.0"
services:
- name: s
  url: http://127.0.0.1:1
  routes:
  - name: r
    paths: [/x]
    plugins:
    - name: header-guard
      config: {max_headers: 5000}
`
	g, logs := newGateway(t, yml, Options{})
	for range 3 {
		rec := serve(g, httptest.NewRequest("GET", "/x", nil))
		if rec.Code != 500 || errorCode(t, rec.Body.Bytes()) != pluginrt.CodeMisconfigured {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
	if g.Warm() != 1 {
		t.Fatal("Warm does not count the misconfigured instance")
	}
	n := 0
	for _, m := range logLines(t, logs.String()) {
		if m["level"] == "error" {
			n++
			if m["route"] != "r" || m["plugin"] != "header-guard" || !strings.Contains(fmt.Sprint(m["error"]), "max_headers") {
				t.Fatalf("misconfiguration line: %v", m)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d misconfiguration lines, want 1:\n%s", n, logs)
	}
}

type panicky struct{}

func (panicky) MaxHeaders() int { return 100 }
func (panicky) Handle(ex exchange.Exchange) {
	ex.SetUpstreamHeader("X-User-ID", "half-done")
	panic("boom")
}

func TestPanickingPluginFailsClosed(t *testing.T) {
	l := zerolog.Nop()
	s := &edgeStep{name: "p", log: l, provision: func() (pluginrt.Handler, error) { return panicky{}, nil }}
	ex := newTestExchange(t, nil)
	s.run(ex)
	if !ex.Exited() || ex.exitStatus != 500 || errorCode(t, ex.exitBody) != "edge_error" {
		t.Fatalf("exit %v %d %s", ex.Exited(), ex.exitStatus, ex.exitBody)
	}
	out := http.Header{}
	ex.applyUpstream(out)
	if len(out) != 0 {
		t.Fatalf("a panicking plugin's upstream writes survived: %v", out)
	}
}

func TestUpstreamOverridesAndRewrites(t *testing.T) {
	up := newUpstream(t, nil)
	yml := `_format_version: "3.0"
services:
- name: llm-api
  url: http://llm-api:8080/api
  routes:
  - name: r
    paths: [/x]
    strip_path: false
- name: keycloak
  url: http://keycloak:8080
  routes:
  - name: k
    paths: [/k]
    strip_path: false
`
	g, _ := newGateway(t, yml, Options{
		Upstreams: map[string]string{"llm-api": up.URL},
		Rewrites:  []Rewrite{{"http://keycloak:8080", up.URL + "/kc"}},
	})
	if rec := serve(g, httptest.NewRequest("GET", "/x/1", nil)); rec.Code != 200 || up.last(t).Path != "/api/x/1" {
		t.Fatalf("override: %d, upstream path %q (the kong.yml service path stays)", rec.Code, up.last(t).Path)
	}
	if rec := serve(g, httptest.NewRequest("GET", "/k/1", nil)); rec.Code != 200 || up.last(t).Path != "/kc/k/1" {
		t.Fatalf("rewrite: %d, upstream path %q", rec.Code, up.last(t).Path)
	}
	if got := g.Services(); got["llm-api"] != up.URL+"/api" || got["keycloak"] != up.URL+"/kc" {
		t.Fatalf("services = %v", got)
	}

	c, _ := kongconf.Parse([]byte(yml))
	if _, err := New(Options{Config: c, Upstreams: map[string]string{"llm-apii": up.URL}}); err == nil ||
		!strings.Contains(err.Error(), "no such service") {
		t.Fatalf("a typo in --upstream: %v", err)
	}
}

func TestRewriteReachesEveryPluginConfigString(t *testing.T) {
	c, err := kongconf.Parse([]byte(`_format_version: "3.0"
plugins:
- name: x
  config: {a: "/etc/kong/secrets/k", list: ["redis:6379", 5], nested: {deep: ["/etc/kong/secrets/p"]}}
services:
- name: s
  url: http://s
  plugins: [{name: y, config: {u: "http://keycloak:8080/realms"}}]
  routes:
  - name: r
    paths: [/r]
    plugins: [{name: z, config: {f: "/etc/kong/secrets/redis_password"}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	rules := []Rewrite{{"/etc/kong/secrets/redis_password", ""}, {"/etc/kong/secrets/", "/tmp/s/"}, {"redis:6379", "127.0.0.1:6390"}, {"keycloak:8080", "127.0.0.1:8081"}}
	out := rewriteConfig(c, rules)
	got, _ := json.Marshal([]any{out.Plugins[0].Config, out.Services[0].Plugins[0].Config, out.Services[0].Routes[0].Plugins[0].Config})
	want := `[{"a":"/tmp/s/k","list":["127.0.0.1:6390",5],"nested":{"deep":["/tmp/s/p"]}},{"u":"http://127.0.0.1:8081/realms"},{"f":""}]`
	if string(got) != want {
		t.Fatalf("rewritten:\n got  %s\n want %s", got, want)
	}
	if c.Plugins[0].Config["a"] != "/etc/kong/secrets/k" {
		t.Fatal("rewriteConfig modified its input")
	}

	for _, bad := range []string{"", "=x", "noequals"} {
		if _, err := ParseRewrite(bad); err == nil {
			t.Errorf("ParseRewrite(%q) accepted", bad)
		}
	}
	if r, err := ParseRewrite("http://a:1=http://b:2/p=q"); err != nil || r.Old != "http://a:1" || r.New != "http://b:2/p=q" {
		t.Errorf("ParseRewrite = %+v, %v", r, err)
	}
	for _, bad := range []string{"llm-api", "=http://x", "llm-api=ftp://x", "llm-api=http://x?q=1", "llm-api=/path"} {
		if _, _, err := ParseUpstream(bad); err == nil {
			t.Errorf("ParseUpstream(%q) accepted", bad)
		}
	}
}

func TestAccessLogCarriesNoCredentialOrQuery(t *testing.T) {
	up := newUpstream(t, nil)
	g, logs := newGateway(t, fmt.Sprintf(simpleYML, up.URL), Options{})
	r := httptest.NewRequest("GET", "/v1/models?token=query-secret&code=query-code", nil)
	r.Header.Set("Authorization", "Bearer header-secret")
	r.Header.Set("Cookie", "session=cookie-secret")
	r.Header.Set("X-API-Key", "sk_live_keysecret")
	r.Header.Set("X-Request-ID", "rid-log")
	if rec := serve(g, r); rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	s := logs.String()
	for _, secret := range []string{"query-secret", "query-code", "header-secret", "cookie-secret", "keysecret", "token="} {
		if strings.Contains(s, secret) {
			t.Errorf("%q in the log:\n%s", secret, s)
		}
	}
	lines := accessLines(t, s)
	if len(lines) != 1 {
		t.Fatalf("access log: %s", s)
	}
	m := lines[0]
	if m["request_id"] != "rid-log" || m["route"] != "r" || m["status"] != 200.0 || m["path"] != "/v1/models" ||
		m["service"] != "svc" || m["duration_ms"] == nil || m["client_ip"] != "192.0.2.1" {
		t.Fatalf("access line: %v", m)
	}
}
