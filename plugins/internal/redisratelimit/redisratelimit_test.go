package redisratelimit

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/edgeguard/edgeguard/plugins/internal/pipeline"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Kong/go-pdk/test"
	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/ratelimit"
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

// withLocal provisions c on an in-process limiter (fast unit tests; the
// Redis path is covered by the integration tests below).
func withLocal(t testing.TB, set map[string]any) *Config {
	t.Helper()
	local, err := ratelimit.NewLocal(ratelimit.LocalConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return withDecider(t, set, local)
}

// withDecider provisions c on d instead of Redis.
func withDecider(t testing.TB, set map[string]any, d decider) *Config {
	t.Helper()
	c := decode(t, kongJSON(t, set))
	if _, err := c.rt.Get(Name, c.Audit, func() (*pipeline.Pipeline, error) {
		p, err := c.compile()
		if err != nil {
			return nil, err
		}
		p.limiter = d
		return p.pipeline(), nil
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

func request(id *identity.Identity, ip string, h map[string][]string) *exchange.Fake {
	f := exchange.NewFake("GET", "/v1/models", h)
	f.Identity = id
	if ip != "" {
		f.ClientAddr = ip
	}
	return f
}

func code(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return e.Error.Code
}

func TestLimitsHeadersAnd429(t *testing.T) {
	c := withLocal(t, map[string]any{"second": 3, "minute": 100})
	alice := &identity.Identity{Subject: "alice", AuthMethod: "jwt"}
	for i := range 3 {
		f := request(alice, "", nil)
		c.Handle(f)
		if f.ExitStatus != 0 {
			t.Fatalf("request %d refused: %d %s", i, f.ExitStatus, f.ExitBody)
		}
		want := map[string]string{
			"RateLimit-Limit": "3", "RateLimit-Remaining": []string{"2", "1", "0"}[i],
			"X-RateLimit-Limit-Second": "3", "X-RateLimit-Limit-Minute": "100",
			"X-RateLimit-Remaining-Minute": []string{"99", "98", "97"}[i],
		}
		for k, v := range want {
			if f.Response[k] != v {
				t.Errorf("request %d: %s = %q, want %q", i, k, f.Response[k], v)
			}
		}
	}
	f := request(alice, "", nil)
	c.Handle(f)
	if f.ExitStatus != 429 || code(t, f.ExitBody) != CodeRateLimited {
		t.Fatalf("4th request: %d %s", f.ExitStatus, f.ExitBody)
	}
	if f.ExitHeaders["Retry-After"] != "1" || f.ExitHeaders["RateLimit-Remaining"] != "0" {
		t.Fatalf("429 headers %v", f.ExitHeaders)
	}
	// Another user has their own budget; so does an unauthenticated IP.
	for _, r := range []*exchange.Fake{request(&identity.Identity{Subject: "bob"}, "", nil), request(nil, "198.51.100.1", nil)} {
		c.Handle(r)
		if r.ExitStatus != 0 {
			t.Fatalf("independent subject refused: %d", r.ExitStatus)
		}
	}
}

func TestSubjectSelection(t *testing.T) {
	key := &identity.Identity{Subject: "owner", AuthMethod: "apikey", APIKeyID: "AbCd1234"}
	key2 := &identity.Identity{Subject: "owner", AuthMethod: "apikey", APIKeyID: "ZzZz9999"}
	tests := []struct {
		name     string
		config   map[string]any
		a, b     *exchange.Fake
		separate bool // a and b count separately
	}{
		{"identity: spoofed X-User-ID does not change the subject", map[string]any{"second": 1},
			request(&identity.Identity{Subject: "u"}, "", map[string][]string{"X-User-ID": {"x"}}),
			request(&identity.Identity{Subject: "u"}, "", map[string][]string{"X-User-ID": {"y"}}), false},
		{"identity: no identity falls back to the IP", map[string]any{"second": 1},
			request(nil, "203.0.113.9", nil), request(nil, "203.0.113.9", nil), false},
		{"identity: other IPs are separate", map[string]any{"second": 1},
			request(nil, "203.0.113.9", nil), request(nil, "203.0.113.10", nil), true},
		{"ip: one IPv6 /64 is one client", map[string]any{"second": 1, "limit_by": "ip"},
			request(nil, "2001:db8:1:2::1", nil), request(nil, "2001:db8:1:2:ffff::9", nil), false},
		{"ip: another /64 is another client", map[string]any{"second": 1, "limit_by": "ip"},
			request(nil, "2001:db8:1:2::1", nil), request(nil, "2001:db8:1:3::1", nil), true},
		{"ip: authenticated users behind one IP share it", map[string]any{"second": 1, "limit_by": "ip"},
			request(&identity.Identity{Subject: "a"}, "203.0.113.9", nil), request(&identity.Identity{Subject: "b"}, "203.0.113.9", nil), false},
		{"api_key: two keys of one owner are separate", map[string]any{"second": 1, "limit_by": "api_key"},
			request(key, "", nil), request(key2, "", nil), true},
		{"header: by tenant header", map[string]any{"second": 1, "limit_by": "header:X-Tenant"},
			request(nil, "203.0.113.1", map[string][]string{"X-Tenant": {"t1"}}), request(nil, "203.0.113.2", map[string][]string{"X-Tenant": {"t1"}}), false},
		{"route: everyone shares the route", map[string]any{"second": 1, "limit_by": "route", "namespace": "llm-openai"},
			request(&identity.Identity{Subject: "a"}, "", nil), request(nil, "203.0.113.2", nil), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := withLocal(t, tc.config)
			c.Handle(tc.a)
			c.Handle(tc.b)
			if tc.a.ExitStatus != 0 {
				t.Fatalf("first request refused %d", tc.a.ExitStatus)
			}
			if got := tc.b.ExitStatus == 0; got != tc.separate {
				t.Fatalf("second request allowed=%v, want %v", got, tc.separate)
			}
		})
	}
}

func TestGuestsGetTheirOverride(t *testing.T) {
	c := withLocal(t, map[string]any{"second": 10, "role_overrides": []map[string]any{{"role": "guest", "second": 1}}})
	guest := &identity.Identity{Subject: "g", RealmRoles: []string{"guest"}}
	user := &identity.Identity{Subject: "u", RealmRoles: []string{"user"}}
	for i, want := range []int{0, 429} {
		f := request(guest, "", nil)
		c.Handle(f)
		if f.ExitStatus != want {
			t.Fatalf("guest request %d: %d", i, f.ExitStatus)
		}
	}
	for i := range 5 {
		f := request(user, "", nil)
		c.Handle(f)
		if f.ExitStatus != 0 || f.Response["RateLimit-Limit"] != "10" {
			t.Fatalf("user request %d: %d %v", i, f.ExitStatus, f.Response)
		}
	}
}

func TestHideClientHeaders(t *testing.T) {
	c := withLocal(t, map[string]any{"second": 1, "hide_client_headers": true})
	f := request(&identity.Identity{Subject: "u"}, "", nil)
	c.Handle(f)
	if len(f.Response) != 0 {
		t.Fatalf("headers %v", f.Response)
	}
	f = request(&identity.Identity{Subject: "u"}, "", nil)
	c.Handle(f)
	if f.ExitStatus != 429 || f.ExitHeaders["Retry-After"] == "" || f.ExitHeaders["RateLimit-Limit"] != "" {
		t.Fatalf("%d %v", f.ExitStatus, f.ExitHeaders)
	}
}

func TestMisconfiguredInstanceFailsClosedWithoutLeakingTheSecret(t *testing.T) {
	dir := t.TempDir()
	secret := "s3cr3t-redis-password-value"
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	short, placeholder := filepath.Join(dir, "short"), filepath.Join(dir, "placeholder")
	_ = os.WriteFile(short, []byte(secret[:15]), 0o600)
	_ = os.WriteFile(placeholder, []byte("changeme"), 0o600)
	cases := map[string]map[string]any{
		"no limits":             {"redis": map[string]any{"addresses": []string{"127.0.0.1:1"}}},
		"negative limit":        {"second": -1, "redis": map[string]any{"addresses": []string{"127.0.0.1:1"}}},
		"bad limit_by":          {"second": 1, "limit_by": "cookie", "redis": map[string]any{"addresses": []string{"127.0.0.1:1"}}},
		"header of identity":    {"second": 1, "limit_by": "header:X-User-ID", "redis": map[string]any{"addresses": []string{"127.0.0.1:1"}}},
		"route w/o namespace":   {"second": 1, "limit_by": "route", "redis": map[string]any{"addresses": []string{"127.0.0.1:1"}}},
		"no redis":              {"second": 1},
		"missing password file": {"second": 1, "redis": map[string]any{"addresses": []string{"127.0.0.1:1"}, "password_file": filepath.Join(dir, "nope")}},
		"bad fail policy":       {"second": 1, "redis": map[string]any{"addresses": []string{"127.0.0.1:1"}, "password_file": pw}, "on_redis_error": "maybe"},
		"short password":        {"second": 1, "redis": map[string]any{"addresses": []string{"127.0.0.1:1"}, "password_file": short}},
		"placeholder password":  {"second": 1, "redis": map[string]any{"addresses": []string{"127.0.0.1:1"}, "password_file": placeholder}},
		"override without role": {"second": 1, "redis": map[string]any{"addresses": []string{"127.0.0.1:1"}}, "role_overrides": []map[string]any{{"second": 1}}},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			c := decode(t, kongJSON(t, cfg))
			var logs bytes.Buffer
			l := zerolog.New(&logs)
			c.rt.Log = &l
			for range 2 {
				f := request(nil, "", nil)
				c.Handle(f)
				if f.ExitStatus != 500 || code(t, f.ExitBody) != "edge_misconfigured" {
					t.Fatalf("%d %s", f.ExitStatus, f.ExitBody)
				}
			}
			if n := strings.Count(logs.String(), "invalid configuration"); n != 1 {
				t.Fatalf("logged %d times", n)
			}
			if strings.Contains(logs.String(), secret) {
				t.Fatal("the Redis password reached the log")
			}
		})
	}
}

// TestPDKCallsPerPath pins the PDK calls of each path (README.md lists them).
func TestPDKCallsPerPath(t *testing.T) {
	const (
		get  = kongadapter.CallSharedGet
		ip   = kongadapter.CallGetForwardedIP
		resp = kongadapter.CallResponseSetHeaders
		exit = kongadapter.CallExit
		hdrs = kongadapter.CallGetHeaders
		path = kongadapter.CallGetPath
	)
	idJSON, _ := json.Marshal(identity.Identity{Subject: "u-1", AuthMethod: "jwt"})
	tests := []struct {
		name   string
		authed bool
		audit  bool
		n      int // requests before the measured one
		want   []string
		status int
	}{
		{"allow, authenticated", true, false, 0, []string{get, resp}, 200},
		{"allow, anonymous (client IP)", false, false, 0, []string{get, ip, resp}, 200},
		{"429, authenticated", true, false, 1, []string{get, exit}, 429},
		// audit on: the event's client address, X-Request-ID and path are
		// read BEFORE kong.response.exit (Kong closes the event with it);
		// an allowed request costs nothing more
		{"allow, authenticated, audited", true, true, 0, []string{get, resp}, 200},
		{"429, authenticated, audited", true, true, 1, []string{get, ip, hdrs, path, exit}, 429},
		{"429, anonymous, audited", false, true, 1, []string{get, ip, hdrs, path, exit}, 429},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set := map[string]any{"second": 1}
			if tc.audit { // nothing listens there: events are dropped, the calls are what is pinned
				set["audit"] = map[string]any{"redis": map[string]any{"addresses": []string{"127.0.0.1:1"}}}
			}
			c := withLocal(t, set)
			var env *kongtest.Env
			for range tc.n + 1 {
				env = kongtest.New(t, test.Request{Method: "GET", Url: "http://gw.example/v1/models", Headers: http.Header{}})
				if tc.authed {
					env.Ctx.Store[kongadapter.IdentityKey] = string(idJSON)
				}
				env.Access(kongadapter.Handler(c))
			}
			if got := env.Calls(); !slices.Equal(got, tc.want) {
				t.Fatalf("PDK calls %v, want %v", got, tc.want)
			}
			if tc.status == 429 && env.ClientRes.Status != 429 {
				t.Fatalf("status %d", env.ClientRes.Status)
			}
			if tc.status == 200 && env.ClientRes.Headers.Get("RateLimit-Limit") != "1" {
				t.Fatalf("response headers %v", env.ClientRes.Headers)
			}
			// OpenAI's x-ratelimit-*-requests ride in the same batched call
			// (set_headers on 200, exit on 429): no PDK call more.
			h := env.ClientRes.Headers
			reset, err := time.ParseDuration(h.Get(HeaderResetRequests))
			if h.Get(HeaderLimitRequests) != "1" || h.Get(HeaderRemainingRequests) != "0" || err != nil || reset <= 0 || reset > time.Second {
				t.Fatalf("OpenAI headers %v", h)
			}
		})
	}
}

func FuzzSubjectHeaders(f *testing.F) {
	for _, s := range []string{"", "t1", "{x}", strings.Repeat("a", 10000), "\x00", "ip:1.2.3.4", "u:admin"} {
		f.Add(s, "203.0.113.1")
	}
	f.Add("t", "not-an-ip")
	f.Add("t", "::ffff:1.2.3.4")
	c := withLocal(f, map[string]any{"second": 1000, "limit_by": "header:X-Tenant"})
	f.Fuzz(func(t *testing.T, tenant, ip string) {
		fk := request(nil, ip, map[string][]string{"X-Tenant": {tenant}})
		c.Handle(fk)
		if fk.ExitStatus != 0 && fk.ExitStatus != 429 && fk.ExitStatus != 403 {
			t.Fatalf("status %d %s", fk.ExitStatus, fk.ExitBody)
		}
	})
}

// slowDecider answers like ratelimit.Limiter whose Redis is slower than its
// caller's deadline: with a deadline on ctx, the caller's error once it
// passes; without one, the fail policy's answer (here: allowed).
type slowDecider struct{ sawDeadline bool }

func (d *slowDecider) Allow(ctx context.Context, _ string, p *ratelimit.Policy) (ratelimit.Result, error) {
	if _, ok := ctx.Deadline(); ok {
		d.sawDeadline = true
		<-ctx.Done()
		return ratelimit.Result{}, ctx.Err()
	}
	return ratelimit.Result{Allowed: true}, nil
}

// The limiter bounds its own Redis round trip (timeout_ms) and then applies
// on_redis_error; the plugin must not race it with a deadline of its own,
// which turned a slow Redis into 503 rate_limiter_unavailable under
// on_redis_error: local on a starved CPU (make load).
func TestTheLimitersOwnTimeoutDecidesNotAPluginDeadline(t *testing.T) {
	d := &slowDecider{}
	c := withDecider(t, map[string]any{"second": 10, "timeout_ms": 1,
		"redis": map[string]any{"addresses": []string{"127.0.0.1:1"}}}, d)
	f := request(&identity.Identity{Subject: "u"}, "", nil)
	done := make(chan struct{})
	go func() { defer close(done); c.Handle(f) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the plugin hung")
	}
	if d.sawDeadline || f.ExitStatus != 0 {
		t.Fatalf("deadline on the limiter's context: %t; answer %d %s", d.sawDeadline, f.ExitStatus, f.ExitBody)
	}
}
