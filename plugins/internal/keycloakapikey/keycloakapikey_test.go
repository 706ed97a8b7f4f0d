package keycloakapikey

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/edgeguard/edgeguard/plugins/internal/auth"
	"github.com/edgeguard/edgeguard/plugins/internal/pipeline"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Kong/go-pdk/test"
	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/apikey"
	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter/kongtest"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginmetrics"
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

func mustKey(t testing.TB) apikey.Key {
	t.Helper()
	k, err := apikey.Generate("live")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// stubValidator answers from a map of keys; every other key is unknown.
type stubValidator struct {
	mu    sync.Mutex
	valid map[string]*identity.Identity
	calls int
	err   error
}

func (s *stubValidator) Cached(apikey.Key) (*identity.Identity, bool) { return nil, false }

func (s *stubValidator) Validate(_ context.Context, _ string, k apikey.Key) (*identity.Identity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.err != nil {
		return nil, s.err
	}
	if id := s.valid[k.Secret()]; id != nil {
		return id, nil
	}
	return nil, apikey.ReasonUnknown
}

func withStub(t testing.TB, set map[string]any, s *stubValidator) *Config {
	t.Helper()
	c := decode(t, kongJSON(t, set))
	if _, err := c.rt.Get(Name, c.Audit, func() (*pipeline.Pipeline, error) {
		p, err := c.compile()
		if err != nil {
			return nil, err
		}
		p.authn.validator = s
		return p.pipeline(), nil
	}); err != nil {
		t.Fatal(err)
	}
	return c
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

func TestAuthenticationPaths(t *testing.T) {
	alice, other := mustKey(t), mustKey(t)
	aliceID := &identity.Identity{Subject: "alice", Username: "alice", RealmRoles: []string{"user"}, AuthMethod: "apikey", APIKeyID: alice.KID()}
	guestKey := mustKey(t)
	guestID := &identity.Identity{Subject: "g", RealmRoles: []string{"guest"}, Guest: true, AuthMethod: "apikey", APIKeyID: guestKey.KID()}
	stub := func() *stubValidator {
		return &stubValidator{valid: map[string]*identity.Identity{alice.Secret(): aliceID, guestKey.Secret(): guestID}}
	}
	jwtAlice := &identity.Identity{Subject: "alice", AuthMethod: "jwt"}
	jwtBob := &identity.Identity{Subject: "bob", AuthMethod: "jwt"}

	tests := []struct {
		name     string
		config   map[string]any
		headers  map[string][]string
		jwt      *identity.Identity
		status   int
		code     string
		subject  string // of the recorded identity
		cleared  []string
		consumer bool
	}{
		{"X-API-Key", nil, map[string][]string{"X-API-Key": {alice.Secret()}}, nil, 0, "", "alice", []string{"x-api-key"}, true},
		{"Authorization Bearer sk_", nil, map[string][]string{"Authorization": {"Bearer " + alice.Secret()}}, nil, 0, "", "alice", []string{"authorization"}, true},
		{"extra header", map[string]any{"header_names": []string{"apikey"}}, map[string][]string{"apikey": {alice.Secret()}}, nil, 0, "", "alice", nil, true},
		{"spoofed identity stripped", nil, map[string][]string{"X-API-Key": {alice.Secret()}, "X_User_ID": {"root"}, "X-Auth-Method": {"jwt"}}, nil, 0, "", "alice", []string{"x_user_id", "x-auth-method"}, true},
		{"no hiding", map[string]any{"hide_credentials": false}, map[string][]string{"X-API-Key": {alice.Secret()}}, nil, 0, "", "alice", nil, true},
		{"no consumer", map[string]any{"authenticate_consumer": false}, map[string][]string{"X-API-Key": {alice.Secret()}}, nil, 0, "", "alice", nil, false},
		{"missing", nil, map[string][]string{"Accept": {"*/*"}}, nil, 401, auth.CodeCredentialMissing, "", nil, false},
		{"missing, optional", map[string]any{"credential_optional": true}, map[string][]string{"X-User-ID": {"x"}}, nil, 0, "", "", []string{"x-user-id"}, false},
		{"missing, JWT already authenticated", nil, map[string][]string{"Authorization": {"Bearer eyJ.x.y"}}, jwtAlice, 0, "", "alice", nil, false},
		{"unknown key", nil, map[string][]string{"X-API-Key": {other.Secret()}}, nil, 401, "key_unknown", "", nil, false},
		{"malformed key", nil, map[string][]string{"X-API-Key": {"sk_live_short"}}, nil, 401, "key_malformed", "", nil, false},
		{"checksum broken", nil, map[string][]string{"X-API-Key": {alice.Secret()[:len(alice.Secret())-1] + "x"}}, nil, 401, "", "", nil, false},
		{"two different keys", nil, map[string][]string{"X-API-Key": {alice.Secret()}, "Authorization": {"Bearer " + other.Secret()}}, nil, 401, auth.CodeDuplicateCredentials, "", nil, false},
		{"two key headers", nil, map[string][]string{"X-API-Key": {alice.Secret(), alice.Secret()}}, nil, 401, auth.CodeDuplicateCredentials, "", nil, false},
		{"same key twice is one credential", nil, map[string][]string{"X-API-Key": {alice.Secret()}, "Authorization": {"Bearer " + alice.Secret()}}, nil, 0, "", "alice", nil, true},
		{"JWT of another user plus a key", nil, map[string][]string{"X-API-Key": {alice.Secret()}}, jwtBob, 401, auth.CodeSubjectMismatch, "", nil, false},
		{"JWT of the same user plus a key keeps the JWT identity", nil, map[string][]string{"X-API-Key": {alice.Secret()}}, jwtAlice, 0, "", "alice", []string{"x-api-key"}, false},
		{"JWT plus an invalid key is refused", nil, map[string][]string{"X-API-Key": {other.Secret()}}, jwtAlice, 401, "key_unknown", "", nil, false},
		{"guest forbidden", map[string]any{"forbidden_roles": []string{"guest"}}, map[string][]string{"X-API-Key": {guestKey.Secret()}}, nil, 403, "forbidden_role", "", nil, false},
		{"jwt-only route refuses keys", map[string]any{"auth_methods": []string{"jwt"}}, map[string][]string{"X-API-Key": {alice.Secret()}}, nil, 403, "auth_method_not_allowed", "", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := withStub(t, tc.config, stub())
			f := exchange.NewFake("POST", "/v1/chat/completions", tc.headers)
			f.Identity = tc.jwt
			c.Handle(f)
			if f.ExitStatus != tc.status {
				t.Fatalf("status %d %s, want %d", f.ExitStatus, f.ExitBody, tc.status)
			}
			if tc.status != 0 {
				if tc.code != "" && code(t, f.ExitBody) != tc.code {
					t.Fatalf("code %q, want %q", code(t, f.ExitBody), tc.code)
				}
				if tc.jwt == nil && f.Identity != nil {
					t.Fatal("refused request carries an identity")
				}
				return
			}
			got := ""
			if f.Identity != nil {
				got = f.Identity.Subject
			}
			if got != tc.subject {
				t.Fatalf("identity subject %q, want %q", got, tc.subject)
			}
			if tc.jwt == nil && tc.subject != "" {
				if f.Upstream["X-Auth-Method"] != "apikey" || f.Upstream["X-API-Key-ID"] != aliceID.APIKeyID {
					t.Fatalf("upstream %v", f.Upstream)
				}
			}
			for _, n := range tc.cleared {
				if !slices.Contains(f.Cleared, n) {
					t.Errorf("%s not cleared: %v", n, f.Cleared)
				}
			}
			if (f.Consumer[0] != "") != tc.consumer {
				t.Errorf("consumer %v, want authenticated=%v", f.Consumer, tc.consumer)
			}
		})
	}
}

func TestValidatorFailuresMapToStatuses(t *testing.T) {
	k := mustKey(t)
	for _, tc := range []struct {
		err    error
		status int
		code   string
		retry  string
	}{
		{&apikey.TooManyFailuresError{RetryAfter: 30 * time.Second}, 429, "too_many_auth_failures", "30"},
		{apikey.ErrBusy, 503, "key_validation_busy", "1"},
		{apikey.ErrUnavailable, 503, "key_validation_unavailable", "1"},
		{context.DeadlineExceeded, 503, "key_validation_unavailable", "1"},
		{apikey.ReasonRevoked, 401, "key_revoked", ""},
	} {
		c := withStub(t, nil, &stubValidator{err: tc.err})
		f := exchange.NewFake("GET", "/", map[string][]string{"X-API-Key": {k.Secret()}})
		c.Handle(f)
		if f.ExitStatus != tc.status || code(t, f.ExitBody) != tc.code || f.ExitHeaders["Retry-After"] != tc.retry {
			t.Errorf("%v: %d %s %v", tc.err, f.ExitStatus, f.ExitBody, f.ExitHeaders)
		}
	}
}

// fakeService is an httptest stand-in for llm-api's validate endpoint
// (docs/contracts.md).
type fakeService struct {
	srv   *httptest.Server
	token string
	mu    sync.Mutex
	keys  map[string]string // secret → subject
	calls atomic.Int64
}

func newFakeService(t testing.TB) *fakeService {
	s := &fakeService{token: "internal-token-0123456789abcdef0123456789", keys: map[string]string{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("X-Internal-Token") != s.token {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":{"code":"internal_auth_failed","message":"no"}}`)
			return
		}
		var body struct{ Key string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		s.mu.Lock()
		sub := s.keys[body.Key]
		s.mu.Unlock()
		k, err := apikey.Parse(body.Key)
		if sub == "" || err != nil {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":{"code":"key_unknown","message":"unknown"}}`)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"subject": sub, "username": sub, "roles": []string{"user"},
			"key_id": k.KID(), "expires_at": nil, "guest": false})
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *fakeService) add(k apikey.Key, sub string) {
	s.mu.Lock()
	s.keys[k.Secret()] = sub
	s.mu.Unlock()
}

func (s *fakeService) configFor(t testing.TB, extra map[string]any) map[string]any {
	dir := t.TempDir()
	tf := filepath.Join(dir, "token")
	if err := os.WriteFile(tf, []byte(s.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := map[string]any{"validate_url": s.srv.URL + "/internal/api-keys/validate", "internal_token_file": tf}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// TestPDKCallsPerPath pins the PDK calls through go-pdk's test environment
// on the real pkg/apikey validator (README.md lists the same table).
func TestPDKCallsPerPath(t *testing.T) {
	svc := newFakeService(t)
	k := mustKey(t)
	svc.add(k, "alice")
	const (
		get      = kongadapter.CallGetHeaders
		sget     = kongadapter.CallSharedGet
		sset     = kongadapter.CallSharedSet
		ip       = kongadapter.CallGetForwardedIP
		consumer = kongadapter.CallAuthenticate
		clr      = kongadapter.CallClearHeader
		set      = kongadapter.CallSetHeaders
		exit     = kongadapter.CallExit
		status   = 0
	)
	c := decode(t, kongJSON(t, svc.configFor(t, map[string]any{"negative_ttl_seconds": 60})))
	run := func(h http.Header) *kongtest.Env {
		env := kongtest.New(t, test.Request{Method: "GET", Url: "http://gw.example/v1/models", Headers: h})
		env.Access(kongadapter.Handler(c))
		return env
	}
	// First use: a miss asks for the client address (failure limit).
	env := run(http.Header{"X-Api-Key": {k.Secret()}})
	if got, want := env.Calls(), []string{get, sget, ip, sset, consumer, clr, set}; !slices.Equal(got, want) {
		t.Fatalf("miss: %v, want %v", got, want)
	}
	if env.ServiceReq.Headers.Get("X-API-Key-ID") != k.KID() || env.ServiceReq.Headers.Get("X-Api-Key") != "" {
		t.Fatalf("upstream %v", env.ServiceReq.Headers)
	}
	// Cached allow path: no client address needed.
	env = run(http.Header{"X-Api-Key": {k.Secret()}})
	if got, want := env.Calls(), []string{get, sget, sset, consumer, clr, set}; !slices.Equal(got, want) {
		t.Fatalf("cached allow: %v, want %v", got, want)
	}
	// Missing credential.
	env = run(http.Header{"Accept": {"*/*"}})
	if got, want := env.Calls(), []string{get, sget, exit}; !slices.Equal(got, want) || env.ClientRes.Status != 401 {
		t.Fatalf("missing: %v %d", got, env.ClientRes.Status)
	}
	// Malformed key: refused before any lookup.
	env = run(http.Header{"X-Api-Key": {"sk_live_nope"}})
	if got, want := env.Calls(), []string{get, sget, exit}; !slices.Equal(got, want) || env.ClientRes.Status != 401 {
		t.Fatalf("malformed: %v %d", got, env.ClientRes.Status)
	}
	if n := svc.calls.Load(); n != 1 {
		t.Fatalf("validator called %d times, want 1", n)
	}
	_ = status

	// Audit on (nothing listens there: events are dropped, the calls are
	// what is pinned): a denial reads the client address and the path for
	// its event BEFORE kong.response.exit (Kong closes the event with it);
	// an allowed request costs nothing more.
	c = decode(t, kongJSON(t, svc.configFor(t, map[string]any{"negative_ttl_seconds": 60,
		"audit": map[string]any{"redis": map[string]any{"addresses": []string{"127.0.0.1:1"}}}})))
	for _, want := range [][]string{{get, sget, ip, sset, consumer, clr, set}, {get, sget, sset, consumer, clr, set}} { // miss, then cached
		if env = run(http.Header{"X-Api-Key": {k.Secret()}}); !slices.Equal(env.Calls(), want) {
			t.Fatalf("allow, audited: %v, want %v", env.Calls(), want)
		}
	}
	env = run(http.Header{"Accept": {"*/*"}})
	if got, want := env.Calls(), []string{get, sget, ip, kongadapter.CallGetPath, exit}; !slices.Equal(got, want) || env.ClientRes.Status != 401 {
		t.Fatalf("missing, audited: %v %d", got, env.ClientRes.Status)
	}
	// refused by the validator: the address was read for the failure limit
	env = run(http.Header{"X-Api-Key": {mustKey(t).Secret()}})
	if got, want := env.Calls(), []string{get, sget, ip, kongadapter.CallGetPath, exit}; !slices.Equal(got, want) || env.ClientRes.Status != 401 {
		t.Fatalf("refused, audited: %v %d", got, env.ClientRes.Status)
	}
}

func TestMisconfiguredInstanceFailsClosedWithoutLeakingTheToken(t *testing.T) {
	svc := newFakeService(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, nil, 0o600)
	cases := map[string]map[string]any{
		"no url":            {"internal_token_file": empty},
		"no token file":     {"validate_url": svc.srv.URL},
		"empty token file":  {"validate_url": svc.srv.URL, "internal_token_file": empty},
		"missing file":      {"validate_url": svc.srv.URL, "internal_token_file": filepath.Join(dir, "nope")},
		"short token file":  {"validate_url": svc.srv.URL, "internal_token_file": secretIn(t, dir, "short", svc.token[:31])},
		"placeholder token": {"validate_url": svc.srv.URL, "internal_token_file": secretIn(t, dir, "placeholder", "${INTERNAL_TOKEN}")},
		"short redis password": svc.configFor(t, map[string]any{"redis": map[string]any{"addresses": []string{"127.0.0.1:1"},
			"password_file": secretIn(t, dir, "redis-short", svc.token[:15])}}),
		"bad header name":  svc.configFor(t, map[string]any{"header_names": []string{"X-User-ID"}}),
		"bad roles mode":   svc.configFor(t, map[string]any{"roles_mode": "most"}),
		"max_headers 5000": svc.configFor(t, map[string]any{"max_headers": 5000}),
		"negative ttl":     svc.configFor(t, map[string]any{"positive_ttl_seconds": -1}),
		"bad redis":        svc.configFor(t, map[string]any{"redis": map[string]any{"addresses": []string{"redis://u:" + svc.token + "@h:1"}}}),
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			c := decode(t, kongJSON(t, cfg))
			var logs bytes.Buffer
			l := zerolog.New(&logs)
			c.rt.Log = &l
			for range 2 {
				f := exchange.NewFake("GET", "/", map[string][]string{"X-API-Key": {"sk_x"}})
				c.Handle(f)
				if f.ExitStatus != 500 || code(t, f.ExitBody) != "edge_misconfigured" {
					t.Fatalf("%d %s", f.ExitStatus, f.ExitBody)
				}
			}
			if n := strings.Count(logs.String(), "invalid configuration"); n != 1 {
				t.Fatalf("logged %d times", n)
			}
			// the token, and the shortened copies the short-file cases wrote
			for _, secret := range []string{svc.token, svc.token[:31], svc.token[:15]} {
				if strings.Contains(logs.String(), secret) {
					t.Fatal("a secret file's content reached the log")
				}
			}
		})
	}
}

func secretIn(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func FuzzCredentialHeaders(f *testing.F) {
	k := mustKey(f)
	for _, s := range []string{k.Secret(), "Bearer " + k.Secret(), "sk_", "sk_live_" + strings.Repeat("A", 38), "Bearer sk_\r\nX: y",
		"sk_live_' OR 1=1 --", "\x00", strings.Repeat("sk_", 3000), "sk_tëst_ü"} {
		f.Add(s, s)
	}
	c := withStub(f, map[string]any{"credential_optional": true}, &stubValidator{valid: map[string]*identity.Identity{
		k.Secret(): {Subject: "alice", AuthMethod: "apikey", APIKeyID: k.KID()}}})
	f.Fuzz(func(t *testing.T, xkey, auth string) {
		fk := exchange.NewFake("GET", "/", map[string][]string{"X-API-Key": {xkey}, "Authorization": {auth}})
		c.Handle(fk)
		if fk.Identity != nil && fk.Identity.Subject != "alice" {
			t.Fatalf("authenticated as %q", fk.Identity.Subject)
		}
		if fk.ExitStatus >= 500 {
			t.Fatalf("status %d for client input", fk.ExitStatus)
		}
		if fk.ExitStatus != 0 && strings.Contains(string(fk.ExitBody), k.Secret()) {
			t.Fatal("error body carries the key")
		}
	})
}

func TestEdgeIdentityAssertionForKeys(t *testing.T) {
	k := mustKey(t)
	keyFile, jwks := plugintest.EdgeKey(t)
	c := withStub(t, map[string]any{"upstream_name": "media-api", "edge_signing_key_file": keyFile},
		&stubValidator{valid: map[string]*identity.Identity{k.Secret(): {Subject: "alice", AuthMethod: "apikey", APIKeyID: k.KID()}}})
	f := exchange.NewFake("POST", "/v1/media", map[string][]string{"X-API-Key": {k.Secret()}, "X-Edge-Identity": {"forged"}})
	c.Handle(f)
	v, _ := edgeid.NewVerifier(jwks, "media-api", time.Now)
	id, err := v.Verify(f.Upstream["X-Edge-Identity"], "POST", "/v1/media")
	if err != nil || id.Subject != "alice" || id.APIKeyID != k.KID() || id.AuthMethod != "apikey" {
		t.Fatalf("assertion: %+v %v", id, err)
	}
}

// lookups reads edgeguard_apikey_lookups_total from the plugin server's
// registry.
func lookups(t *testing.T) float64 {
	t.Helper()
	mfs, err := pluginmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "edgeguard_apikey_lookups_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("edgeguard_apikey_lookups_total is not registered")
	return 0
}

// Every well-formed key looked up counts once (the denominator of the cache
// hit ratio); garbage and requests without a key do not.
func TestLookupsAreCountedForTheHitRatio(t *testing.T) {
	alice := mustKey(t)
	c := withStub(t, nil, &stubValidator{valid: map[string]*identity.Identity{alice.Secret(): {Subject: "alice", AuthMethod: "apikey"}}})
	before := lookups(t)
	for _, h := range []map[string][]string{
		{"X-API-Key": {alice.Secret()}},
		{"X-API-Key": {mustKey(t).Secret()}}, // well formed, unknown: still a lookup
		{"X-API-Key": {"sk_garbage"}},
		{"Accept": {"*/*"}},
	} {
		c.Handle(exchange.NewFake("GET", "/v1/models", h))
	}
	if got := lookups(t) - before; got != 2 {
		t.Fatalf("lookups increased by %g, want 2", got)
	}
}
