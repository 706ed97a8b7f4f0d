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
