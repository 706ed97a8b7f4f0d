package server_test

import (
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
)

// edgeEnv is the public router behind a test edge: keys from
// edgeid.WriteKeyFiles, the service accepting X-Edge-Identity (aud llm-api)
// and, as with AUTH_ACCEPT_JWT, JWTs.
type edgeEnv struct {
	*harness
	signer *edgeid.Signer
	now    time.Time
}

func newEdgeEnv(t *testing.T) *edgeEnv { t.Helper(); return newEdgeEnvWith(t, options{}) }

// newEdgeEnvWith is newEdgeEnv with harness options (auth is replaced).
func newEdgeEnvWith(t *testing.T, o options) *edgeEnv {
	t.Helper()
	dir := t.TempDir()
	keyFile, jwksFile := filepath.Join(dir, "edge.key"), filepath.Join(dir, "edge.jwks.json")
	if err := edgeid.WriteKeyFiles(keyFile, jwksFile); err != nil {
		t.Fatal(err)
	}
	s, err := edgeid.LoadSigner(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	v, err := edgeid.LoadVerifier(jwksFile, "llm-api")
	if err != nil {
		t.Fatal(err)
	}
	e := &edgeEnv{signer: s, now: time.Now()}
	// the JWT half uses the harness's own jwttest realm
	var jwtAuth *edgehttp.JWT
	o.auth = clientAuthFunc(func(r *http.Request) (*identity.Identity, netip.Addr, error) {
		return edgehttp.Chain{&edgehttp.EdgeIdentity{Verifier: v}, jwtAuth}.AuthenticateClient(r)
	})
	e.harness = newHarness(t, o)
	jv, err := jwtauth.New(jwtauth.Config{Issuers: []jwtauth.Issuer{{Issuer: e.idp.Issuer, JWKSURL: e.idp.JWKSURL()}}, Audiences: []string{"jan-api"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(jv.Close)
	jwtAuth = &edgehttp.JWT{Verifier: jv}
	return e
}

// clientAuthFunc is an edgehttp.ClientAuthenticator (the chain the app
// builds): the edge assertion's client address reaches the handlers.
type clientAuthFunc func(*http.Request) (*identity.Identity, netip.Addr, error)

func (f clientAuthFunc) Authenticate(r *http.Request) (*identity.Identity, error) {
	id, _, err := f(r)
	return id, err
}

func (f clientAuthFunc) AuthenticateClient(r *http.Request) (*identity.Identity, netip.Addr, error) {
	return f(r)
}

func (e *edgeEnv) assert(t *testing.T, id *identity.Identity, aud, method, path string) string {
	t.Helper()
	a, err := e.signer.Sign(id, aud, method, path, e.now)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (e *edgeEnv) call(method, path, body string, header map[string]string) resp {
	if body != "" {
		header["Content-Type"] = "application/json"
	}
	var r *strings.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	if r == nil {
		return serve(e.public, method, path, nil, header)
	}
	return serve(e.public, method, path, r, header)
}

var (
	edgeAlice = &identity.Identity{Subject: "alice", Username: "alice", RealmRoles: []string{"user", "admin"}, AuthMethod: identity.MethodJWT}
	edgeBob   = &identity.Identity{Subject: "bob", Username: "bob", RealmRoles: []string{"user"}, AuthMethod: identity.MethodJWT}
)

func TestAPIKeyRoutesTakeIdentityOnlyFromTheEdgeAssertion(t *testing.T) {
	e := newEdgeEnv(t)
	const keysPath = "/auth/api-keys"
	// alice creates a key through the edge
	r := e.call(http.MethodPost, keysPath, `{"name":"ci"}`, map[string]string{
		identity.HeaderEdgeIdentity: e.assert(t, edgeAlice, "llm-api", http.MethodPost, keysPath)})
	if r.status != 201 {
		t.Fatalf("create through the edge: %d %s", r.status, r.body)
	}
	var k created
	r.json(t, &k)

	// an assertion for bob, with forged headers naming alice, acts as bob
	r = e.call(http.MethodGet, keysPath, "", map[string]string{
		identity.HeaderEdgeIdentity: e.assert(t, edgeBob, "llm-api", http.MethodGet, keysPath),
		"X-User-ID":                 "alice", "X-User-Username": "alice", "X-User-Roles": "admin", "X-Auth-Method": "jwt"})
	if r.status != 200 || strings.Contains(string(r.body), k.ID) {
		t.Fatalf("bob's list: %d %s", r.status, r.body)
	}
	// and alice sees her key
	r = e.call(http.MethodGet, keysPath, "", map[string]string{
		identity.HeaderEdgeIdentity: e.assert(t, edgeAlice, "llm-api", http.MethodGet, keysPath), "X-User-ID": "bob"})
	if r.status != 200 || !strings.Contains(string(r.body), k.ID) {
		t.Fatalf("alice's list: %d %s", r.status, r.body)
	}

	keyAuth := &identity.Identity{Subject: "alice", RealmRoles: []string{"user"}, AuthMethod: identity.MethodAPIKey, APIKeyID: k.KID}
	guest := &identity.Identity{Subject: "guest-1", RealmRoles: []string{"guest"}, Guest: true, AuthMethod: identity.MethodJWT}
	rotate := keysPath + "/" + k.ID + "/rotate"
	cases := []struct {
		name   string
		method string
		path   string
		header map[string]string
		status int
		code   string
	}{
		{"forged X-User-ID and X-Auth-Method without an assertion", http.MethodGet, keysPath,
			map[string]string{"X-User-ID": "alice", "X-Auth-Method": "apikey", "X-API-Key-ID": k.KID, "X-User-Roles": "admin"},
			401, edgehttp.CodeCredentialMissing},
		{"a key-authenticated request cannot manage keys", http.MethodGet, keysPath,
			map[string]string{identity.HeaderEdgeIdentity: e.assert(t, keyAuth, "llm-api", http.MethodGet, keysPath)}, 403, string(identity.DenyAuthMethod)},
		{"a guest cannot manage keys", http.MethodGet, keysPath,
			map[string]string{identity.HeaderEdgeIdentity: e.assert(t, guest, "llm-api", http.MethodGet, keysPath)}, 403, string(identity.DenyForbiddenRole)},
		{"an assertion for media-api", http.MethodGet, keysPath,
			map[string]string{identity.HeaderEdgeIdentity: e.assert(t, edgeAlice, "media-api", http.MethodGet, keysPath)}, 401, edgehttp.CodeEdgeIdentityInvalid},
		{"an assertion for GET used on DELETE", http.MethodDelete, keysPath + "/" + k.ID,
			map[string]string{identity.HeaderEdgeIdentity: e.assert(t, edgeAlice, "llm-api", http.MethodGet, keysPath+"/"+k.ID)}, 401, edgehttp.CodeEdgeIdentityInvalid},
		{"an assertion for the list used on rotate", http.MethodPost, rotate,
			map[string]string{identity.HeaderEdgeIdentity: e.assert(t, edgeAlice, "llm-api", http.MethodPost, keysPath)}, 401, edgehttp.CodeEdgeIdentityInvalid},
		{"an invalid assertion with a valid JWT", http.MethodGet, keysPath,
			map[string]string{identity.HeaderEdgeIdentity: "x.y.z", "Authorization": "Bearer " + e.token("alice", "user")}, 401, edgehttp.CodeEdgeIdentityInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.call(c.method, c.path, "", c.header)
			if r.status != c.status || r.code() != c.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, c.status, c.code)
			}
		})
	}

	// an expired assertion: signed 70 s ago
	e.now = time.Now().Add(-70 * time.Second)
	old := e.assert(t, edgeAlice, "llm-api", http.MethodGet, keysPath)
	if r := e.call(http.MethodGet, keysPath, "", map[string]string{identity.HeaderEdgeIdentity: old}); r.status != 401 || r.code() != edgehttp.CodeEdgeIdentityInvalid {
		t.Fatalf("expired assertion: %d %s", r.status, r.body)
	}
	// without an assertion a JWT still works (AUTH_ACCEPT_JWT)
	if r := e.api(http.MethodGet, keysPath, e.token("alice", "user"), ""); r.status != 200 || !strings.Contains(string(r.body), k.ID) {
		t.Fatalf("JWT without the edge: %d %s", r.status, r.body)
	}
}

// TestAuditTakesTheClientAddressFromTheEdgeAssertion: on an authenticated
// route the audit event's client address is the one the edge signed into
// the assertion (claim cip), not X-Forwarded-For — whatever the client put
// there and whether or not TRUSTED_PROXIES names the peer (an attack run
// chose its audited address through X-Forwarded-For).
func TestAuditTakesTheClientAddressFromTheEdgeAssertion(t *testing.T) {
	for name, trusted := range map[string][]string{"no trusted proxy": nil, "the peer trusted": {"192.0.2.1"}} {
		t.Run(name, func(t *testing.T) {
			em, events := newAuditSink(t)
			e := newEdgeEnvWith(t, options{audit: em, trusted: trusted})
			const keysPath = "/auth/api-keys"
			a, err := e.signer.SignClient(edgeAlice, "llm-api", http.MethodPost, keysPath, netip.MustParseAddr("203.0.113.9"), e.now)
			if err != nil {
				t.Fatal(err)
			}
			r := e.call(http.MethodPost, keysPath, `{"name":"cip"}`, map[string]string{
				identity.HeaderEdgeIdentity: a, "X-Forwarded-For": "198.18.0.9", "X-Real-IP": "198.18.0.9"})
			if r.status != 201 {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
			got := events()
			if len(got) != 1 || got[0].Action != "apikey.created" || got[0].Actor.IP != "203.0.113.9" {
				t.Fatalf("events %+v, want one apikey.created from 203.0.113.9", got)
			}
			if !strings.Contains(e.logs.String(), `"client_ip":"203.0.113.9"`) {
				t.Errorf("the request log does not carry the edge's client address: %s", e.logs.String())
			}
		})
	}
}
