package keycloakjwt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/edgeguard/edgeguard/plugins/internal/auth"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Kong/go-pdk/test"
	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter/kongtest"
	"github.com/edgeguard/edgeguard/plugins/internal/plugintest"
)

// kongJSON renders a config as Kong sends it (plugintest.KongJSON).
func kongJSON(t testing.TB, set map[string]any) []byte {
	t.Helper()
	return plugintest.KongJSON(t, New(), set)
}

// decode does what go-pdk does with Kong's JSON, with a silent logger.
func decode(t testing.TB, js []byte) *Config {
	t.Helper()
	c := plugintest.Decode(t, New, js).(*Config)
	nop := zerolog.Nop()
	c.rt.Log = &nop
	return c
}

func baseConfig(p *jwttest.IdP, extra map[string]any) map[string]any {
	m := map[string]any{
		"issuers":     []map[string]any{{"issuer": p.Issuer, "jwks_url": p.JWKSURL()}},
		"audiences":   []string{"jan-api"},
		"allowed_azp": []string{"jan-cli", "jan-web", "guest-login"},
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func newConfig(t testing.TB, p *jwttest.IdP, extra map[string]any) *Config {
	t.Helper()
	c := decode(t, kongJSON(t, baseConfig(p, extra)))
	if _, err := c.Pipeline(); err != nil {
		t.Fatal(err)
	}
	pl, err := c.Provision() // the same process-wide verifier (jwtauth.Shared)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !pl.authn.verifier.Ready() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return c
}

func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Error.Code
}

func TestKongShapedConfigDecodesWithDefaults(t *testing.T) {
	p := jwttest.New(t)
	c := decode(t, kongJSON(t, baseConfig(p, nil)))
	pl, err := c.Provision()
	if err != nil {
		t.Fatal(err)
	}
	if pl.Authenticate.Optional || pl.Authenticate.HideCredential || pl.MaxHeaders != exchange.DefaultMaxHeaders {
		t.Fatalf("defaults: %+v", pl)
	}
	zero := 0
	c = decode(t, kongJSON(t, baseConfig(p, map[string]any{"leeway_seconds": zero})))
	if c.LeewaySeconds == nil || *c.LeewaySeconds != 0 {
		t.Fatal("explicit zero leeway must be kept apart from null")
	}
}

func TestAuthenticationPaths(t *testing.T) {
	p := jwttest.New(t)
	good := p.Token(t, "u-1", nil)
	guest := p.Token(t, "g-1", map[string]any{"realm_access": map[string]any{"roles": []string{"guest"}}})
	admin := p.Token(t, "a-1", map[string]any{"realm_access": map[string]any{"roles": []string{"user", "admin"}}})
	expired := p.Token(t, "u-1", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})
	idToken := p.Token(t, "u-1", map[string]any{"typ": "ID"})

	type want struct {
		status   int // 0: passed on
		code     string
		subject  string
		www      string
		upstream map[string]string
		cleared  []string
	}
	tests := []struct {
		name    string
		config  map[string]any
		headers map[string][]string
		want    want
	}{
		{"valid token", nil, map[string][]string{"Authorization": {"Bearer " + good}},
			want{subject: "u-1", upstream: map[string]string{"X-User-ID": "u-1", "X-Auth-Method": "jwt", "X-User-Roles": "user,offline_access", "X-User-Guest": "false", "X-User-Username": "user-u-1"}}},
		{"lower-case scheme", nil, map[string][]string{"Authorization": {"bearer " + good}}, want{subject: "u-1"}},
		{"spoofed identity headers are stripped", nil, map[string][]string{"Authorization": {"Bearer " + good}, "X-User-ID": {"victim"}, "x_auth_method": {"apikey"}, "X-Consumer-ID": {"c"}},
			want{subject: "u-1", upstream: map[string]string{"X-User-ID": "u-1"}, cleared: []string{"x-user-id", "x_auth_method", "x-consumer-id"}}},
		{"missing token", nil, map[string][]string{"Accept": {"*/*"}},
			want{status: 401, code: auth.CodeCredentialMissing, www: auth.ChallengeMissing}},
		{"missing token, optional", map[string]any{"credential_optional": true}, map[string][]string{"X-User-ID": {"victim"}},
			want{cleared: []string{"x-user-id"}}},
		{"API key in Bearer is not a JWT", nil, map[string][]string{"Authorization": {"Bearer sk_live_abc"}},
			want{status: 401, code: auth.CodeCredentialMissing}},
		{"API key in Bearer, optional: left to keycloak-apikey", map[string]any{"credential_optional": true}, map[string][]string{"Authorization": {"Bearer sk_live_abc"}},
			want{}},
		{"Basic auth is not a bearer token", nil, map[string][]string{"Authorization": {"Basic dXNlcjpwYXNz"}},
			want{status: 401, code: auth.CodeCredentialMissing}},
		{"empty bearer token is invalid, not absent", map[string]any{"credential_optional": true}, map[string][]string{"Authorization": {"Bearer "}},
			want{status: 401, code: "token_malformed", www: auth.ChallengeInvalid}},
		{"invalid token is 401 even when optional", map[string]any{"credential_optional": true}, map[string][]string{"Authorization": {"Bearer " + good[:len(good)-3] + "AAA"}},
			want{status: 401, code: "signature_invalid", www: auth.ChallengeInvalid}},
		{"expired", nil, map[string][]string{"Authorization": {"Bearer " + expired}}, want{status: 401, code: "token_expired"}},
		{"ID token", nil, map[string][]string{"Authorization": {"Bearer " + idToken}}, want{status: 401, code: "token_type_invalid"}},
		{"garbage", nil, map[string][]string{"Authorization": {"Bearer ../../etc/passwd"}}, want{status: 401, code: "token_malformed"}},
		{"two Authorization headers", nil, map[string][]string{"Authorization": {"Bearer " + good, "Bearer " + admin}},
			want{status: 401, code: auth.CodeDuplicateCredentials, www: auth.ChallengeRequest}},
		{"token in header and a different one in cookie", map[string]any{"cookie_names": []string{"kc_token"}},
			map[string][]string{"Authorization": {"Bearer " + good}, "Cookie": {"kc_token=" + admin}},
			want{status: 401, code: auth.CodeDuplicateCredentials}},
		{"same token twice is one credential", map[string]any{"cookie_names": []string{"kc_token"}},
			map[string][]string{"Authorization": {"Bearer " + good}, "Cookie": {"kc_token=" + good}}, want{subject: "u-1"}},
		{"token from cookie", map[string]any{"cookie_names": []string{"kc_token"}}, map[string][]string{"Cookie": {"a=1; kc_token=" + good}}, want{subject: "u-1"}},
		{"token from extra header", map[string]any{"header_names": []string{"X-Access"}}, map[string][]string{"X-Access": {good}}, want{subject: "u-1"}},
		{"guest forbidden", map[string]any{"forbidden_roles": []string{"guest"}}, map[string][]string{"Authorization": {"Bearer " + guest}},
			want{status: 403, code: "forbidden_role"}},
		{"admin required", map[string]any{"required_roles": []string{"admin"}}, map[string][]string{"Authorization": {"Bearer " + good}},
			want{status: 403, code: "insufficient_role"}},
		{"admin present", map[string]any{"required_roles": []string{"admin"}}, map[string][]string{"Authorization": {"Bearer " + admin}}, want{subject: "a-1"}},
		{"scope required", map[string]any{"required_scopes": []string{"models:write"}}, map[string][]string{"Authorization": {"Bearer " + good}},
			want{status: 403, code: "insufficient_scope", www: auth.ChallengeScope}},
		{"api keys only", map[string]any{"auth_methods": []string{"apikey"}}, map[string][]string{"Authorization": {"Bearer " + good}},
			want{status: 403, code: "auth_method_not_allowed"}},
		{"hide credentials", map[string]any{"hide_credentials": true}, map[string][]string{"Authorization": {"Bearer " + good}},
			want{subject: "u-1", cleared: []string{"authorization"}}},
		{"hide cookie credential keeps other cookies", map[string]any{"hide_credentials": true, "cookie_names": []string{"kc_token"}},
			map[string][]string{"Cookie": {"a=1; kc_token=" + good + "; b=2"}}, want{subject: "u-1", upstream: map[string]string{"Cookie": "a=1; b=2"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newConfig(t, p, tc.config)
			f := exchange.NewFake("GET", "/v1/models", tc.headers)
			c.Handle(f)
			if f.ExitStatus != tc.want.status {
				t.Fatalf("status %d (body %s), want %d", f.ExitStatus, f.ExitBody, tc.want.status)
			}
			if tc.want.status != 0 {
				if got := errorCode(t, f.ExitBody); got != tc.want.code {
					t.Fatalf("code %q, want %q", got, tc.want.code)
				}
				if tc.want.www != "" && f.ExitHeaders["WWW-Authenticate"] != tc.want.www {
					t.Fatalf("WWW-Authenticate %q", f.ExitHeaders["WWW-Authenticate"])
				}
				if f.Identity != nil || len(f.Upstream) != 0 {
					t.Fatal("a refused request must not carry an identity")
				}
				return
			}
			if tc.want.subject == "" {
				if f.Identity != nil {
					t.Fatalf("no credential, yet identity %+v", f.Identity)
				}
			} else if f.Identity == nil || f.Identity.Subject != tc.want.subject {
				t.Fatalf("identity %+v, want subject %s", f.Identity, tc.want.subject)
			}
			for k, v := range tc.want.upstream {
				if f.Upstream[k] != v {
					t.Errorf("upstream %s = %q, want %q", k, f.Upstream[k], v)
				}
			}
			for _, n := range tc.want.cleared {
				if !slices.Contains(f.Cleared, n) {
					t.Errorf("%s not cleared (cleared %v)", n, f.Cleared)
				}
			}
		})
	}
}

func TestIdPUnavailableIs503(t *testing.T) {
	p := jwttest.New(t)
	p.SetDown(true)
	c := decode(t, kongJSON(t, baseConfig(p, map[string]any{"jwks_timeout_ms": 500, "audiences": []string{"jan-api-down"}})))
	f := exchange.NewFake("GET", "/v1/models", map[string][]string{"Authorization": {"Bearer " + p.Token(t, "u", map[string]any{"aud": "jan-api-down"})}})
	c.Handle(f)
	if f.ExitStatus != 503 || errorCode(t, f.ExitBody) != "idp_unavailable" || f.ExitHeaders["Retry-After"] == "" {
		t.Fatalf("%d %s %v", f.ExitStatus, f.ExitBody, f.ExitHeaders)
	}
}

func TestTooManyHeadersIs431(t *testing.T) {
	p := jwttest.New(t)
	c := newConfig(t, p, map[string]any{"max_headers": 3})
	h := map[string][]string{"Authorization": {"Bearer " + p.Token(t, "u", nil)}}
	for i := range 5 {
		h[fmt.Sprint("X-", i)] = []string{"v"}
	}
	f := exchange.NewFake("GET", "/", h)
	c.Handle(f)
	if f.ExitStatus != 431 {
		t.Fatalf("status %d", f.ExitStatus)
	}
}

func TestMisconfiguredInstanceFailsClosedAndLogsOnce(t *testing.T) {
	notAKey := filepath.Join(t.TempDir(), "edge.pem")
	if err := os.WriteFile(notAKey, []byte("-----BEGIN PRIVATE KEY-----\nZm9v\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]map[string]any{
		"no issuer":         {"audiences": []string{"jan-api"}},
		"no audience":       {"issuers": []map[string]any{{"issuer": "https://idp/realms/jan"}}},
		"alg none":          {"issuers": []map[string]any{{"issuer": "https://idp/realms/jan"}}, "audiences": []string{"a"}, "algorithms": []string{"none"}},
		"HS256":             {"issuers": []map[string]any{{"issuer": "https://idp/realms/jan"}}, "audiences": []string{"a"}, "algorithms": []string{"HS256"}},
		"bad roles mode":    {"issuers": []map[string]any{{"issuer": "https://idp/realms/jan"}}, "audiences": []string{"a"}, "roles_mode": "most"},
		"bad auth method":   {"issuers": []map[string]any{{"issuer": "https://idp/realms/jan"}}, "audiences": []string{"a"}, "auth_methods": []string{"basic"}},
		"max_headers 5000":  {"issuers": []map[string]any{{"issuer": "https://idp/realms/jan"}}, "audiences": []string{"a"}, "max_headers": 5000},
		"negative leeway":   {"issuers": []map[string]any{{"issuer": "https://idp/realms/jan"}}, "audiences": []string{"a"}, "leeway_seconds": -1},
		"bad header name":   {"issuers": []map[string]any{{"issuer": "https://idp/realms/jan"}}, "audiences": []string{"a"}, "header_names": []string{"X Bad"}},
		"authorization ext": {"issuers": []map[string]any{{"issuer": "https://idp/realms/jan"}}, "audiences": []string{"a"}, "header_names": []string{"authorization"}},
		"missing signing key file": {"issuers": []map[string]any{{"issuer": "https://idp/realms/jan"}}, "audiences": []string{"a"},
			"upstream_name": "llm-api", "edge_signing_key_file": "/nonexistent/edge.pem"},
		"signing key file not a key": {"issuers": []map[string]any{{"issuer": "https://idp/realms/jan"}}, "audiences": []string{"a"},
			"upstream_name": "llm-api", "edge_signing_key_file": notAKey},
		"signing key without upstream": {"issuers": []map[string]any{{"issuer": "https://idp/realms/jan"}}, "audiences": []string{"a"},
			"edge_signing_key_file": notAKey},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			c := decode(t, kongJSON(t, cfg))
			var logs bytes.Buffer
			var mu sync.Mutex
			l := zerolog.New(zerolog.SyncWriter(&lockedWriter{&logs, &mu}))
			c.rt.Log = &l
			for range 3 {
				f := exchange.NewFake("GET", "/", map[string][]string{"Authorization": {"Bearer x.y.z"}})
				c.Handle(f)
				if f.ExitStatus != 500 || errorCode(t, f.ExitBody) != "edge_misconfigured" {
					t.Fatalf("%d %s", f.ExitStatus, f.ExitBody)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if n := strings.Count(logs.String(), "invalid configuration"); n != 1 {
				t.Fatalf("logged %d times: %s", n, logs.String())
			}
		})
	}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestPDKCallsPerPath pins the PDK calls of each path through go-pdk's test
// environment (the Kong adapter path); README.md lists the same table.
func TestPDKCallsPerPath(t *testing.T) {
	p := jwttest.New(t)
	good := p.Token(t, "u-1", nil)
	const (
		get    = kongadapter.CallGetHeaders
		clr    = kongadapter.CallClearHeader
		set    = kongadapter.CallSetHeaders
		shared = kongadapter.CallSharedSet
		exit   = kongadapter.CallExit
		ip     = kongadapter.CallGetForwardedIP
		path   = kongadapter.CallGetPath
	)
	// audit on (nothing listens there: the events are dropped, the calls
	// are what is pinned)
	audited := func(m map[string]any) map[string]any {
		out := map[string]any{"audit": map[string]any{"redis": map[string]any{"addresses": []string{"127.0.0.1:1"}}}}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name    string
		config  map[string]any
		headers http.Header
		want    []string
		status  int
	}{
		{"allow", nil, http.Header{"Authorization": {"Bearer " + good}}, []string{get, shared, set}, 200},
		{"allow, spoofed X-User-ID is overwritten without a clear", nil, http.Header{"Authorization": {"Bearer " + good}, "X-User-Id": {"victim"}}, []string{get, shared, set}, 200},
		{"allow, spoofed x_user_id needs one clear", nil, http.Header{"Authorization": {"Bearer " + good}, "X_user_id": {"victim"}}, []string{get, shared, clr, set}, 200},
		{"allow, hide credentials", map[string]any{"hide_credentials": true}, http.Header{"Authorization": {"Bearer " + good}}, []string{get, shared, clr, set}, 200},
		{"deny: invalid token", nil, http.Header{"Authorization": {"Bearer " + good + "x"}}, []string{get, exit}, 401},
		{"deny: policy", map[string]any{"required_roles": []string{"admin"}}, http.Header{"Authorization": {"Bearer " + good}}, []string{get, exit}, 403},
		{"missing credential", nil, http.Header{"Accept": {"*/*"}}, []string{get, exit}, 401},
		{"missing credential, optional", map[string]any{"credential_optional": true}, http.Header{"Accept": {"*/*"}}, []string{get}, 200},
		// audit on: a denial reads the client address and the path for its
		// event BEFORE kong.response.exit (Kong closes the event with it);
		// an allowed request costs nothing more
		{"allow, audited", audited(nil), http.Header{"Authorization": {"Bearer " + good}}, []string{get, shared, set}, 200},
		{"deny: invalid token, audited", audited(nil), http.Header{"Authorization": {"Bearer " + good + "x"}}, []string{get, ip, path, exit}, 401},
		{"deny: policy, audited", audited(map[string]any{"required_roles": []string{"admin"}}), http.Header{"Authorization": {"Bearer " + good}}, []string{get, ip, path, exit}, 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newConfig(t, p, tc.config)
			env := kongtest.New(t, test.Request{Method: "GET", Url: "http://gw.example/v1/models", Headers: tc.headers})
			env.Access(kongadapter.Handler(c))
			if got := env.Calls(); !slices.Equal(got, tc.want) {
				t.Fatalf("PDK calls %v, want %v", got, tc.want)
			}
			if tc.status != 200 {
				if env.ClientRes.Status != tc.status {
					t.Fatalf("status %d, want %d", env.ClientRes.Status, tc.status)
				}
				return
			}
			if strings.Contains(tc.name, "allow") {
				if got := env.ServiceReq.Headers.Get("X-User-ID"); got != "u-1" {
					t.Fatalf("upstream X-User-ID %q", got)
				}
				raw, _ := env.Ctx.Store[kongadapter.IdentityKey].(string)
				var id identity.Identity
				if err := json.Unmarshal([]byte(raw), &id); err != nil || id.Subject != "u-1" {
					t.Fatalf("kong.ctx.shared identity %q: %v", raw, err)
				}
			}
		})
	}
}

// FuzzCredentialHeaders feeds arbitrary header values to the plugin: it must
// never panic, never authenticate without the one valid token, and answer
// every refusal with a JSON error.
func FuzzCredentialHeaders(f *testing.F) {
	p := jwttest.New(f)
	good := p.Token(f, "u-1", nil)
	for _, s := range []string{"Bearer " + good, "bearer\t" + good, "Bearer  " + good + " ", "Bearer", "Bearer ", "Bearerx",
		"Bearer sk_live_0123", "Basic YTpi", "Bearer " + good + "\r\nX-User-ID: admin", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.",
		strings.Repeat("Bearer ", 1000), "\x00\xff", "kc_token=" + good, "a=1;;;kc_token=;kc_token=" + good} {
		f.Add(s, s)
	}
	c := newConfig(f, p, map[string]any{"credential_optional": true, "cookie_names": []string{"kc_token"}, "header_names": []string{"X-Access"}})
	f.Fuzz(func(t *testing.T, auth, cookie string) {
		fk := exchange.NewFake("GET", "/", map[string][]string{"Authorization": {auth}, "Cookie": {cookie}, "X-Access": {auth}})
		c.Handle(fk)
		if fk.Identity != nil && fk.Identity.Subject != "u-1" {
			t.Fatalf("authenticated as %q", fk.Identity.Subject)
		}
		if fk.ExitStatus != 0 {
			var e map[string]any
			if json.Unmarshal(fk.ExitBody, &e) != nil {
				t.Fatalf("non-JSON error %q", fk.ExitBody)
			}
			if strings.Contains(string(fk.ExitBody), good[len(good)-20:]) {
				t.Fatal("error body carries the token")
			}
		}
	})
}

func TestEdgeIdentityAssertion(t *testing.T) {
	p := jwttest.New(t)
	key, jwks := plugintest.EdgeKey(t)
	c := newConfig(t, p, map[string]any{"upstream_name": "llm-api", "edge_signing_key_file": key})
	env := kongtest.New(t, test.Request{Method: "POST", Url: "http://gw.example/v1/chat/completions", Body: []byte("{}"),
		Headers: http.Header{"Authorization": {"Bearer " + p.Token(t, "u-1", nil)}, "X-Edge-Identity": {"forged"}}})
	env.Access(kongadapter.Handler(c))
	want := []string{kongadapter.CallGetHeaders, kongadapter.CallGetForwardedIP, kongadapter.CallGetMethod, kongadapter.CallGetPath, kongadapter.CallSharedSet, kongadapter.CallSetHeaders}
	if got := env.Calls(); !slices.Equal(got, want) {
		t.Fatalf("PDK calls %v, want %v", got, want)
	}
	v, _ := edgeid.NewVerifier(jwks, "llm-api", time.Now)
	claims, err := v.VerifyClaims(env.ServiceReq.Headers.Get("X-Edge-Identity"), "POST", "/v1/chat/completions")
	if err != nil || claims.Identity.Subject != "u-1" || claims.Identity.AuthMethod != "jwt" {
		t.Fatalf("assertion: %v %v", claims, err)
	}
	// The client address Kong decided (go-pdk's test environment: always
	// 10.10.10.1) travels signed, for the services' limits, audit and logs.
	if claims.Cip != "10.10.10.1" {
		t.Fatalf("assertion cip %q, want Kong's client address 10.10.10.1", claims.Cip)
	}
	half := decode(t, kongJSON(t, baseConfig(p, map[string]any{"upstream_name": "llm-api"})))
	f := exchange.NewFake("GET", "/", nil)
	half.Handle(f)
	if f.ExitStatus != 500 {
		t.Fatalf("upstream_name without a key: %d", f.ExitStatus)
	}
}
