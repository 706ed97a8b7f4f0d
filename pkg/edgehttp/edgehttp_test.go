package edgehttp_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/dpop"
	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/pkg/requestid"
)

func newVerifier(t *testing.T, idp *jwttest.IdP) *jwtauth.Verifier { return newVerifierTB(t, idp) }

func newVerifierTB(t testing.TB, idp *jwttest.IdP) *jwtauth.Verifier {
	t.Helper()
	v, err := jwtauth.New(jwtauth.Config{
		Issuers:   []jwtauth.Issuer{{Issuer: idp.Issuer, JWKSURL: idp.JWKSURL()}},
		Audiences: []string{"jan-api"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// echo answers 200 with the subject the middleware put in the context.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	id, ok := edgehttp.IdentityFrom(r.Context())
	if !ok {
		_, _ = w.Write([]byte("anonymous"))
		return
	}
	_, _ = w.Write([]byte(id.Subject))
})

func handler(t *testing.T, cfg edgehttp.Config) http.Handler {
	t.Helper()
	m, err := edgehttp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m.Handler(echo)
}

type answer struct {
	status    int
	code      string
	body      string
	challenge string
}

func do(h http.Handler, headers map[string][]string) answer {
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	for k, vs := range headers {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	a := answer{status: w.Code, body: w.Body.String(), challenge: w.Header().Get("WWW-Authenticate")}
	if w.Code != http.StatusOK {
		var b edgehttp.ErrorBody
		if err := json.Unmarshal(w.Body.Bytes(), &b); err == nil {
			a.code = b.Error.Code
		}
	}
	return a
}

func bearer(tok string) map[string][]string {
	return map[string][]string{"Authorization": {"Bearer " + tok}}
}

func TestMiddlewareAuthenticatesAndAuthorizes(t *testing.T) {
	idp := jwttest.New(t)
	v := newVerifier(t, idp)
	jwtAuth := &edgehttp.JWT{Verifier: v}
	plain := handler(t, edgehttp.Config{Authenticator: jwtAuth})
	noGuests := handler(t, edgehttp.Config{Authenticator: jwtAuth,
		Policy: identity.Policy{AuthMethods: []string{identity.MethodJWT}, ForbiddenRoles: []string{identity.RoleGuest}}})
	keysOnly := handler(t, edgehttp.Config{Authenticator: jwtAuth, Policy: identity.Policy{AuthMethods: []string{identity.MethodAPIKey}}})
	admins := handler(t, edgehttp.Config{Authenticator: jwtAuth, Policy: identity.Policy{RequiredRoles: []string{"admin"}}})
	scoped := handler(t, edgehttp.Config{Authenticator: jwtAuth, Policy: identity.Policy{RequiredScopes: []string{"models:write"}}})

	good := idp.Token(t, "alice", nil)
	guest := idp.Token(t, "guest-1", map[string]any{"realm_access": map[string]any{"roles": []string{"guest"}}})
	expired := idp.Token(t, "alice", map[string]any{"exp": time.Now().Add(-time.Hour).Unix(), "iat": time.Now().Add(-2 * time.Hour).Unix()})
	wrongAud := idp.Token(t, "alice", map[string]any{"aud": "other"})
	bound := idp.Token(t, "alice", map[string]any{"cnf": map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}})

	cases := []struct {
		name      string
		h         http.Handler
		headers   map[string][]string
		status    int
		code      string
		body      string
		challenge string
	}{
		{"valid token passes with its identity", plain, bearer(good), 200, "", "alice", ""},
		{"scheme is case-insensitive", plain, map[string][]string{"Authorization": {"bEaReR " + good}}, 200, "", "alice", ""},
		{"no credential is 401 with a challenge", plain, nil, 401, edgehttp.CodeCredentialMissing, "", `Bearer realm="edgeguard"`},
		{"another scheme counts as no credential", plain, map[string][]string{"Authorization": {"Basic YTpi"}}, 401, edgehttp.CodeCredentialMissing, "", `Bearer realm="edgeguard"`},
		{"forged X-User-ID without a token is 401", plain, map[string][]string{"X-User-ID": {"admin"}, "X-User-Roles": {"admin"}, "X-Auth-Method": {"jwt"}}, 401, edgehttp.CodeCredentialMissing, "", `Bearer realm="edgeguard"`},
		{"forged X-User-ID with an invalid token is 401", plain, map[string][]string{"X-User-ID": {"admin"}, "Authorization": {"Bearer " + good[:len(good)-4] + "AAAA"}}, 401, string(jwtauth.ReasonSignature), "", `Bearer realm="edgeguard", error="invalid_token"`},
		{"forged X-User-ID never overrides the token", plain, map[string][]string{"X-User-ID": {"mallory"}, "Authorization": {"Bearer " + good}}, 200, "", "alice", ""},
		{"expired token is 401 token_expired", plain, bearer(expired), 401, string(jwtauth.ReasonExpired), "", `Bearer realm="edgeguard", error="invalid_token"`},
		{"wrong audience is 401", plain, bearer(wrongAud), 401, string(jwtauth.ReasonAudience), "", `Bearer realm="edgeguard", error="invalid_token"`},
		{"garbage token is 401 malformed", plain, bearer("not-a-jwt"), 401, string(jwtauth.ReasonMalformed), "", `Bearer realm="edgeguard", error="invalid_token"`},
		{"empty bearer is 401, not anonymous", plain, map[string][]string{"Authorization": {"Bearer "}}, 401, string(jwtauth.ReasonMalformed), "", `Bearer realm="edgeguard", error="invalid_token"`},
		{"a DPoP-bound token is not a bearer token here (its proof is the edge's)", plain, bearer(bound), 401, string(dpop.ReasonDowngrade), "", `Bearer realm="edgeguard", error="invalid_token"`},
		{"the DPoP scheme counts as no credential", plain, map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {"x.y.z"}}, 401, edgehttp.CodeCredentialMissing, "", `Bearer realm="edgeguard"`},
		{"an API key is not accepted by a service", plain, bearer("sk_live_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa000000"), 401, edgehttp.CodeUnsupportedCred, "", `Bearer realm="edgeguard", error="invalid_token"`},
		{"two Authorization lines are a duplicate", plain, map[string][]string{"Authorization": {"Bearer " + good, "Bearer " + good}}, 401, edgehttp.CodeDuplicateCredentials, "", `Bearer realm="edgeguard", error="invalid_request"`},
		{"guest is forbidden", noGuests, bearer(guest), 403, string(identity.DenyForbiddenRole), "", ""},
		{"user passes the no-guest policy", noGuests, bearer(good), 200, "", "alice", ""},
		{"jwt on an apikey-only route is 403", keysOnly, bearer(good), 403, string(identity.DenyAuthMethod), "", ""},
		{"missing role is 403", admins, bearer(good), 403, string(identity.DenyInsufficientRole), "", ""},
		{"missing scope is 403 with insufficient_scope", scoped, bearer(good), 403, string(identity.DenyInsufficientScope), "", `Bearer realm="edgeguard", error="insufficient_scope"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := do(c.h, c.headers)
			if a.status != c.status || a.code != c.code || a.challenge != c.challenge {
				t.Fatalf("got %d %q challenge %q (body %s), want %d %q challenge %q", a.status, a.code, a.challenge, a.body, c.status, c.code, c.challenge)
			}
			if c.body != "" && a.body != c.body {
				t.Fatalf("body %q, want %q", a.body, c.body)
			}
			if a.status != 200 && strings.Contains(a.body, good) {
				t.Fatal("error body echoes the token")
			}
		})
	}
}

func TestOptionalLetsAnonymousThroughButNotInvalidCredentials(t *testing.T) {
	idp := jwttest.New(t)
	h := handler(t, edgehttp.Config{Authenticator: &edgehttp.JWT{Verifier: newVerifier(t, idp)}, Optional: true})
	if a := do(h, map[string][]string{"X-User-ID": {"admin"}}); a.status != 200 || a.body != "anonymous" {
		t.Fatalf("anonymous: %+v", a)
	}
	if a := do(h, bearer("x.y.z")); a.status != 401 {
		t.Fatalf("invalid credential on optional route: %+v", a)
	}
}

func TestIdPUnavailableIs503(t *testing.T) {
	idp := jwttest.New(t)
	idp.SetDown(true)
	v := newVerifier(t, idp)
	h := handler(t, edgehttp.Config{Authenticator: &edgehttp.JWT{Verifier: v, Timeout: 2 * time.Second}})
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	r.Header.Set("Authorization", "Bearer "+idp.Token(t, "alice", nil))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 503 || !strings.Contains(w.Body.String(), `"idp_unavailable"`) || w.Header().Get("Retry-After") == "" {
		t.Fatalf("got %d %s %v", w.Code, w.Body, w.Header())
	}
}

type authFunc func(*http.Request) (*identity.Identity, error)

func (f authFunc) Authenticate(r *http.Request) (*identity.Identity, error) { return f(r) }

func TestAuthenticatorFailureIs503AndRejectionKeepsItsCode(t *testing.T) {
	failing := handler(t, edgehttp.Config{Authenticator: authFunc(func(*http.Request) (*identity.Identity, error) {
		return nil, errors.New("database is down")
	})})
	a := do(failing, nil)
	if a.status != 503 || a.code != edgehttp.CodeUnavailable || strings.Contains(a.body, "database") {
		t.Fatalf("failure: %+v", a)
	}
	rejecting := handler(t, edgehttp.Config{Authenticator: authFunc(func(*http.Request) (*identity.Identity, error) {
		return nil, &edgehttp.Rejection{Status: 401, Code: "assertion_expired", Challenge: "invalid_token"}
	})})
	if a := do(rejecting, nil); a.status != 401 || a.code != "assertion_expired" {
		t.Fatalf("rejection: %+v", a)
	}
}

func TestConfigValidation(t *testing.T) {
	bad := []edgehttp.Config{
		{},
		{Authenticator: &edgehttp.JWT{}, Policy: identity.Policy{AuthMethods: []string{"password"}}},
		{Authenticator: &edgehttp.JWT{}, Realm: `a"b`},
	}
	for i, c := range bad {
		if _, err := edgehttp.New(c); !errors.Is(err, edgehttp.ErrInvalidConfig) {
			t.Errorf("config %d: err %v, want ErrInvalidConfig", i, err)
		}
	}
}

func TestBearerToken(t *testing.T) {
	cases := []struct {
		in     []string
		tok    string
		status edgehttp.CredStatus
	}{
		{nil, "", edgehttp.CredAbsent},
		{[]string{"Bearer abc"}, "abc", edgehttp.CredFound},
		{[]string{"  bearer \tabc  "}, "abc", edgehttp.CredFound},
		{[]string{"Bearer"}, "", edgehttp.CredFound},
		{[]string{"Bearerabc"}, "", edgehttp.CredAbsent},
		{[]string{"Basic abc"}, "", edgehttp.CredAbsent},
		{[]string{"Bearer a", "Bearer b"}, "", edgehttp.CredDuplicate},
	}
	for _, c := range cases {
		h := http.Header{}
		for _, v := range c.in {
			h.Add("Authorization", v)
		}
		tok, st := edgehttp.BearerToken(h)
		if tok != c.tok || st != c.status {
			t.Errorf("%q: got %q %d, want %q %d", c.in, tok, st, c.tok, c.status)
		}
	}
}

func TestRequestID(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-Request-ID", "abc-123_x.y")
	if got := edgehttp.RequestID(r); got != "abc-123_x.y" {
		t.Fatalf("valid id replaced: %q", got)
	}
	for _, bad := range []string{"", "a b", strings.Repeat("a", 129), "a\nb", "é", "sk_rt1234", "eyJrt.ab12.x"} {
		r.Header.Set("X-Request-ID", bad)
		if got := edgehttp.RequestID(r); got == bad || !requestid.Valid(got) {
			t.Fatalf("%q: got %q", bad, got)
		}
	}
}
