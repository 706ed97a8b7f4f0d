package edgehttp_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/rs/zerolog"
)

// edge is a test edge: a signing key written by edgeid.WriteKeyFiles and the
// service's verifier of its JWKS file, on a settable clock.
type edge struct {
	signer *edgeid.Signer
	jwks   string // path of the public JWKS file
	now    time.Time
}

func newEdge(t testing.TB) *edge {
	t.Helper()
	dir := t.TempDir()
	key, jwks := filepath.Join(dir, "edge.key"), filepath.Join(dir, "edge.jwks.json")
	if err := edgeid.WriteKeyFiles(key, jwks); err != nil {
		t.Fatal(err)
	}
	s, err := edgeid.LoadSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	return &edge{signer: s, jwks: jwks, now: time.Now()}
}

func (e *edge) verifier(t testing.TB, aud string) *edgeid.Verifier {
	t.Helper()
	b, err := os.ReadFile(e.jwks)
	if err != nil {
		t.Fatal(err)
	}
	v, err := edgeid.NewVerifier(b, aud, func() time.Time { return e.now })
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (e *edge) sign(t testing.TB, id *identity.Identity, aud, method, path string) string {
	t.Helper()
	a, err := e.signer.Sign(id, aud, method, path, e.now)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var (
	userA   = &identity.Identity{Subject: "user-a", Username: "a", RealmRoles: []string{"user"}, AuthMethod: identity.MethodJWT}
	keyUser = &identity.Identity{Subject: "user-a", Username: "a", RealmRoles: []string{"user"}, AuthMethod: identity.MethodAPIKey, APIKeyID: "AbCd1234"}
	guestID = &identity.Identity{Subject: "guest-1", RealmRoles: []string{"guest"}, Guest: true, AuthMethod: identity.MethodJWT}
)

func serveAt(h http.Handler, method, path string, headers map[string][]string) answer {
	r := httptest.NewRequest(method, path, nil)
	for k, vs := range headers {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	a := answer{status: w.Code, body: w.Body.String(), challenge: w.Header().Get("WWW-Authenticate")}
	if w.Code != http.StatusOK {
		a.code = codeOf(w.Body.Bytes())
	}
	return a
}

func codeOf(b []byte) string {
	i := bytes.Index(b, []byte(`"code":"`))
	if i < 0 {
		return ""
	}
	rest := b[i+8:]
	return string(rest[:bytes.IndexByte(rest, '"')])
}

func assertion(a string) map[string][]string {
	return map[string][]string{identity.HeaderEdgeIdentity: {a}}
}

func TestEdgeIdentityIsTheOnlySourceOfIdentity(t *testing.T) {
	e := newEdge(t)
	auth := &edgehttp.EdgeIdentity{Verifier: e.verifier(t, "llm-api")}
	plain := handler(t, edgehttp.Config{Authenticator: auth})
	keysRoute := handler(t, edgehttp.Config{Authenticator: auth,
		Policy: identity.Policy{AuthMethods: []string{identity.MethodJWT}, ForbiddenRoles: []string{identity.RoleGuest}}})

	const path = "/auth/api-keys"
	good := e.sign(t, userA, "llm-api", http.MethodGet, path)
	other := newEdge(t) // a key the service does not know
	other.now = e.now
	expired := e.sign(t, userA, "llm-api", http.MethodGet, path)

	cases := []struct {
		name    string
		h       http.Handler
		method  string
		headers map[string][]string
		status  int
		code    string
		body    string
	}{
		{"valid assertion passes with its identity", plain, http.MethodGet, assertion(good), 200, "", "user-a"},
		{"forged X-User-ID and X-Auth-Method without an assertion are 401", plain, http.MethodGet,
			map[string][]string{"X-User-ID": {"user-b"}, "X-Auth-Method": {"apikey"}, "X-User-Roles": {"admin"}, "X-API-Key-ID": {"AbCd1234"}},
			401, edgehttp.CodeCredentialMissing, ""},
		{"forged headers with a garbage assertion are 401", plain, http.MethodGet,
			map[string][]string{"X-User-ID": {"user-b"}, identity.HeaderEdgeIdentity: {"user-b"}}, 401, edgehttp.CodeEdgeIdentityInvalid, ""},
		{"assertion for A plus X-User-ID B acts as A", plain, http.MethodGet,
			map[string][]string{identity.HeaderEdgeIdentity: {good}, "X-User-ID": {"user-b"}, "X-User-Username": {"b"}, "X-Auth-Method": {"apikey"}}, 200, "", "user-a"},
		{"another service's assertion is 401", plain, http.MethodGet, assertion(e.sign(t, userA, "media-api", http.MethodGet, path)), 401, edgehttp.CodeEdgeIdentityInvalid, ""},
		{"another method is 401", plain, http.MethodDelete, assertion(good), 401, edgehttp.CodeEdgeIdentityInvalid, ""},
		{"another path is 401", plain, http.MethodGet, assertion(e.sign(t, userA, "llm-api", http.MethodGet, "/v1/models")), 401, edgehttp.CodeEdgeIdentityInvalid, ""},
		{"unknown signing key is 401", plain, http.MethodGet, assertion(other.sign(t, userA, "llm-api", http.MethodGet, path)), 401, edgehttp.CodeEdgeIdentityInvalid, ""},
		{"tampered signature is 401", plain, http.MethodGet, assertion(good[:len(good)-4] + "AAAA"), 401, edgehttp.CodeEdgeIdentityInvalid, ""},
		{"empty assertion is 401, not anonymous", plain, http.MethodGet, assertion(""), 401, edgehttp.CodeEdgeIdentityInvalid, ""},
		{"two assertions are a duplicate", plain, http.MethodGet, map[string][]string{identity.HeaderEdgeIdentity: {good, good}}, 401, edgehttp.CodeDuplicateCredentials, ""},
		{"an API-key assertion cannot manage keys", keysRoute, http.MethodGet, assertion(e.sign(t, keyUser, "llm-api", http.MethodGet, path)), 403, string(identity.DenyAuthMethod), ""},
		{"a guest assertion cannot manage keys", keysRoute, http.MethodGet, assertion(e.sign(t, guestID, "llm-api", http.MethodGet, path)), 403, string(identity.DenyForbiddenRole), ""},
		{"a JWT-user assertion manages keys", keysRoute, http.MethodGet, assertion(good), 200, "", "user-a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := serveAt(c.h, c.method, path, c.headers)
			if a.status != c.status || a.code != c.code {
				t.Fatalf("got %d %q (%s), want %d %q", a.status, a.code, a.body, c.status, c.code)
			}
			if c.body != "" && a.body != c.body {
				t.Fatalf("acted as %q, want %q", a.body, c.body)
			}
			if a.status == 401 && !strings.HasPrefix(a.challenge, "Bearer ") {
				t.Fatalf("401 without a challenge: %q", a.challenge)
			}
		})
	}

	// Expired: the same assertion a minute and a bit later.
	e.now = e.now.Add(edgeid.Lifetime + edgeid.Skew)
	if a := serveAt(plain, http.MethodGet, path, assertion(expired)); a.status != 401 || a.code != edgehttp.CodeEdgeIdentityInvalid {
		t.Fatalf("expired assertion: %+v", a)
	}
}

func TestEdgeIdentityAcceptsBothKeysDuringRotation(t *testing.T) {
	e1, e2 := newEdge(t), newEdge(t)
	k1, k2 := pubOf(t, e1), pubOf(t, e2)
	jwks, err := edgeid.PublicJWKS(k1, k2)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	v, err := edgeid.NewVerifier(jwks, "llm-api", func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	h := handler(t, edgehttp.Config{Authenticator: &edgehttp.EdgeIdentity{Verifier: v}})
	for _, e := range []*edge{e1, e2} {
		e.now = now
		if a := serveAt(h, http.MethodGet, "/v1/models", assertion(e.sign(t, userA, "llm-api", http.MethodGet, "/v1/models"))); a.status != 200 {
			t.Fatalf("key %s: %+v", e.signer.KID(), a)
		}
	}
}

// pubOf recovers the public key of an edge from its JWKS file.
func pubOf(t *testing.T, e *edge) ed25519.PublicKey {
	t.Helper()
	b, err := os.ReadFile(e.jwks)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []struct {
			X string `json:"x"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || len(doc.Keys) != 1 {
		t.Fatalf("jwks %s: %v", b, err)
	}
	x, err := base64.RawURLEncoding.DecodeString(doc.Keys[0].X)
	if err != nil {
		t.Fatal(err)
	}
	return ed25519.PublicKey(x)
}

func TestChainLetsTheFirstPresentCredentialDecide(t *testing.T) {
	e := newEdge(t)
	idp := jwttest.New(t)
	chain := edgehttp.Chain{&edgehttp.EdgeIdentity{Verifier: e.verifier(t, "llm-api")}, &edgehttp.JWT{Verifier: newVerifier(t, idp)}}
	h := handler(t, edgehttp.Config{Authenticator: chain})
	edgeOnly := handler(t, edgehttp.Config{Authenticator: edgehttp.Chain{&edgehttp.EdgeIdentity{Verifier: e.verifier(t, "llm-api")}}})

	jwtBob := idp.Token(t, "bob", nil)
	const path = "/v1/models"
	good := e.sign(t, userA, "llm-api", http.MethodGet, path)
	wrongPath := e.sign(t, userA, "llm-api", http.MethodGet, "/elsewhere")

	cases := []struct {
		name    string
		h       http.Handler
		headers map[string][]string
		status  int
		code    string
		body    string
	}{
		{"assertion alone", h, assertion(good), 200, "", "user-a"},
		{"JWT alone (AUTH_ACCEPT_JWT)", h, bearer(jwtBob), 200, "", "bob"},
		{"assertion wins over the Authorization header", h, map[string][]string{identity.HeaderEdgeIdentity: {good}, "Authorization": {"Bearer " + jwtBob}}, 200, "", "user-a"},
		{"assertion decides even when Authorization holds an API key", h, map[string][]string{identity.HeaderEdgeIdentity: {good}, "Authorization": {"Bearer sk_live_whatever"}}, 200, "", "user-a"},
		{"an invalid assertion never falls through to a valid JWT", h, map[string][]string{identity.HeaderEdgeIdentity: {wrongPath}, "Authorization": {"Bearer " + jwtBob}}, 401, edgehttp.CodeEdgeIdentityInvalid, ""},
		{"nothing is 401 credential_missing", h, map[string][]string{"X-User-ID": {"user-a"}}, 401, edgehttp.CodeCredentialMissing, ""},
		{"JWT refused when not accepted", edgeOnly, bearer(jwtBob), 401, edgehttp.CodeCredentialMissing, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := serveAt(c.h, http.MethodGet, path, c.headers)
			if a.status != c.status || a.code != c.code || (c.body != "" && a.body != c.body) {
				t.Fatalf("got %d %q %q, want %d %q %q", a.status, a.code, a.body, c.status, c.code, c.body)
			}
		})
	}
	if _, err := (edgehttp.Chain{}).Authenticate(httptest.NewRequest(http.MethodGet, "/", nil)); !errors.Is(err, edgehttp.ErrNoCredential) {
		t.Fatalf("empty chain: %v", err)
	}
}

// TestHandlerCarriesTheAssertionsClientAddress: the Middleware puts the
// verified assertion's cip claim in the request context (ClientIPFrom);
// a Keycloak JWT the service verified itself names no address, and a
// client cannot supply one any other way.
func TestHandlerCarriesTheAssertionsClientAddress(t *testing.T) {
	e := newEdge(t)
	idp := jwttest.New(t)
	m, err := edgehttp.New(edgehttp.Config{Authenticator: edgehttp.Chain{
		&edgehttp.EdgeIdentity{Verifier: e.verifier(t, "llm-api")}, &edgehttp.JWT{Verifier: newVerifier(t, idp)}}})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = ""
		if a, ok := edgehttp.ClientIPFrom(r.Context()); ok {
			got = a.String()
		}
	}))
	withIP, err := e.signer.SignClient(userA, "llm-api", http.MethodGet, "/v1/models", netip.MustParseAddr("203.0.113.9"), e.now)
	if err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct {
		headers map[string][]string
		want    string
	}{
		"the assertion's cip":      {map[string][]string{identity.HeaderEdgeIdentity: {withIP}, "X-Forwarded-For": {"198.18.0.9"}}, "203.0.113.9"},
		"an assertion without one": {assertion(e.sign(t, userA, "llm-api", http.MethodGet, "/v1/models")), ""},
		"a JWT verified here":      {bearer(idp.Token(t, "bob", nil)), ""},
		"a JWT and forged headers": {map[string][]string{"Authorization": {"Bearer " + idp.Token(t, "bob", nil)}, "X-Forwarded-For": {"198.18.0.9"}, "X-Real-IP": {"198.18.0.9"}}, ""},
	} {
		if a := serveAt(h, http.MethodGet, "/v1/models", tt.headers); a.status != 200 || got != tt.want {
			t.Errorf("%s: %d, client address %q, want %q", name, a.status, got, tt.want)
		}
	}
	if _, addr, p := m.CheckClient(httptest.NewRequest(http.MethodGet, "/v1/models", nil)); p == nil || addr.IsValid() {
		t.Errorf("no credential: problem %v, address %v", p, addr)
	}
}

type failingVerifier struct{}

func (failingVerifier) VerifyClaims(string, string, string) (*edgeid.Claims, error) {
	return nil, errors.New("keys unavailable")
}

func TestEdgeIdentityTechnicalFailureIs503(t *testing.T) {
	h := handler(t, edgehttp.Config{Authenticator: &edgehttp.EdgeIdentity{Verifier: failingVerifier{}}})
	if a := serveAt(h, http.MethodGet, "/x", assertion("a.b.c")); a.status != 503 || a.code != edgehttp.CodeUnavailable {
		t.Fatalf("got %+v", a)
	}
}

func TestRejectedAssertionIsLoggedWithItsCheckButNeverItself(t *testing.T) {
	e := newEdge(t)
	var logs bytes.Buffer
	m, err := edgehttp.New(edgehttp.Config{Authenticator: &edgehttp.EdgeIdentity{Verifier: e.verifier(t, "llm-api")},
		Logger: zerolog.New(&logs).Level(zerolog.DebugLevel)})
	if err != nil {
		t.Fatal(err)
	}
	a := e.sign(t, userA, "media-api", http.MethodGet, "/x")
	if r := serveAt(m.Handler(echo), http.MethodGet, "/x", assertion(a)); r.status != 401 {
		t.Fatalf("got %+v", r)
	}
	out := logs.String()
	if !strings.Contains(out, `"detail":"edge identity rejected: audience"`) {
		t.Fatalf("the failed check is not logged: %s", out)
	}
	if strings.Contains(out, a) || strings.Contains(out, a[strings.LastIndexByte(a, '.')+1:]) {
		t.Fatal("the assertion is in the log")
	}
}
