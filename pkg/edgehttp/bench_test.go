package edgehttp_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
)

// BenchmarkCheckCachedToken is the middleware's hot path: a token already in
// the verifier's cache, the policy, the context value.
func BenchmarkCheckCachedToken(b *testing.B) {
	idp := jwttest.New(b)
	v := newVerifierTB(b, idp)
	m, err := edgehttp.New(edgehttp.Config{Authenticator: &edgehttp.JWT{Verifier: v},
		Policy: identity.Policy{ForbiddenRoles: []string{identity.RoleGuest}}})
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	r.Header.Set("Authorization", "Bearer "+idp.Token(b, "alice", nil))
	if _, p := m.Check(r); p != nil {
		b.Fatal(p.Code)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, p := m.Check(r); p != nil {
			b.Fatal(p.Code)
		}
	}
}

// BenchmarkCheckEdgeIdentity is a service's hot path behind the edge: verify
// the X-Edge-Identity assertion (Ed25519, claims, aud/htm/htu/exp) through
// the Chain the services use, then the policy. No cache: every assertion is
// new (fresh jti, bound to one request).
func BenchmarkCheckEdgeIdentity(b *testing.B) {
	e := newEdge(b)
	idp := jwttest.New(b)
	chain := edgehttp.Chain{&edgehttp.EdgeIdentity{Verifier: e.verifier(b, "llm-api")}, &edgehttp.JWT{Verifier: newVerifierTB(b, idp)}}
	m, err := edgehttp.New(edgehttp.Config{Authenticator: chain,
		Policy: identity.Policy{AuthMethods: []string{identity.MethodJWT}, ForbiddenRoles: []string{identity.RoleGuest}}})
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/auth/api-keys", nil)
	r.Header.Set("X-Edge-Identity", e.sign(b, userA, "llm-api", http.MethodGet, "/auth/api-keys"))
	if _, p := m.Check(r); p != nil {
		b.Fatal(p.Code)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, p := m.Check(r); p != nil {
			b.Fatal(p.Code)
		}
	}
}
