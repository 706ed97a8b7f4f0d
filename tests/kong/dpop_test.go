package kong

import (
	"net/http"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/dpop"
	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
)

// TestDPoPNonceAndRequireDPoPInTheRealKong: the DPoP answers as Kong
// delivers them — the challenges, the server nonce on a 401 and on a 200
// (response headers set by a plugin reach the client), the proof checked
// against the public base URL (the test reaches Kong at another address,
// as a TLS-terminating balancer would), a replay refused, a bearer token
// refused on a require_dpop route, and the binding in the edge assertion
// the upstream gets. tests/e2e runs Keycloak's own DPoP-bound tokens
// through nginx with TLS in front of two Kong nodes.
func TestDPoPNonceAndRequireDPoPInTheRealKong(t *testing.T) {
	p := jwttest.New(t)
	up := newUpstream(t)
	redis := redisAddr(t)
	secrets, jwks := secretsDir(t, "")
	const public = "https://gw.example.com"
	k, _, err := dpop.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	bound := p.Token(t, "u-dpop", map[string]any{"cnf": map[string]any{"jkt": k.Thumbprint()}})
	plain := p.Token(t, "u-plain", nil)
	issuer := []map[string]any{{"issuer": p.Issuer, "jwks_url": p.JWKSURL()}}
	kg := startKong(t, kongOptions{secrets: secrets, config: declarative(service("dpop", up.URL(),
		route("dpop", "/v1/models", plugin("edgeguard", map[string]any{
			"jwt": map[string]any{"issuers": issuer, "audiences": []string{"jan-api"},
				"require_dpop": true, "dpop_public_base_url": public, "dpop_require_nonce": true,
				"dpop_nonce_key_file": "/etc/kong/secrets/dpop_nonce_key",
				"dpop_redis":          map[string]any{"addresses": []string{redis}},
				"upstream_name":       "llm-api", "edge_signing_key_file": "/etc/kong/secrets/edge_identity.pem"},
		})),
	))})
	url := kg.proxy + "/v1/models"
	proof := func(nonce string) string {
		s, err := k.Proof("GET", public+"/v1/models", dpop.ProofOptions{AccessToken: bound, Nonce: nonce})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	algs := dpop.DefaultAlgorithms

	r := mustDo(t, http.MethodGet, url, http.Header{"Authorization": {"Bearer " + plain}})
	if r.status != 401 || r.code() != string(dpop.ReasonRequired) || r.header.Get("WWW-Authenticate") != dpop.Challenge("edgeguard", dpop.ErrorInvalidToken, algs) {
		t.Fatalf("bearer token on a require_dpop route: %d %s %q", r.status, r.code(), r.header.Get("WWW-Authenticate"))
	}
	r = mustDo(t, http.MethodGet, url, nil)
	if r.status != 401 || r.header.Get("WWW-Authenticate") != dpop.Challenge("edgeguard", "", algs) {
		t.Fatalf("no credential: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	r = mustDo(t, http.MethodGet, url, http.Header{"Authorization": {"DPoP " + bound}, "DPoP": {proof("")}})
	nonce := r.header.Get("DPoP-Nonce")
	if r.status != 401 || r.code() != string(dpop.ReasonNonceMissing) || nonce == "" ||
		r.header.Get("WWW-Authenticate") != dpop.Challenge("edgeguard", dpop.ErrorUseNonce, algs) {
		t.Fatalf("proof without a nonce: %d %s nonce %q %q", r.status, r.code(), nonce, r.header.Get("WWW-Authenticate"))
	}
	good := proof(nonce)
	r = mustDo(t, http.MethodGet, url, http.Header{"Authorization": {"DPoP " + bound}, "DPoP": {good}, "X-Test-ID": {"dpop-ok"}})
	if r.status != 200 || r.header.Get("DPoP-Nonce") == "" {
		t.Fatalf("proof with the nonce: %d %s; DPoP-Nonce %q", r.status, r.body, r.header.Get("DPoP-Nonce"))
	}
	seen, ok := up.seen("dpop-ok")
	if !ok {
		t.Fatal("the upstream did not get the request")
	}
	v, err := edgeid.LoadVerifier(jwks, "llm-api")
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.VerifyClaims(seen.Get("X-Edge-Identity"), "GET", "/v1/models")
	if err != nil || claims.Identity.Cnf == nil || claims.Identity.Cnf.JKT != k.Thumbprint() {
		t.Fatalf("the assertion's binding: %+v %v", claims, err)
	}
	r = mustDo(t, http.MethodGet, url, http.Header{"Authorization": {"DPoP " + bound}, "DPoP": {good}})
	if r.status != 401 || r.code() != string(dpop.ReasonReplayed) {
		t.Fatalf("replayed proof: %d %s", r.status, r.code())
	}
	// a proof for the address Kong itself listens on is not one for the
	// public URL
	local, _ := k.Proof("GET", url, dpop.ProofOptions{AccessToken: bound, Nonce: nonce})
	r = mustDo(t, http.MethodGet, url, http.Header{"Authorization": {"DPoP " + bound}, "DPoP": {local}})
	if r.status != 401 || r.code() != string(dpop.ReasonURL) {
		t.Fatalf("proof for Kong's own address: %d %s", r.status, r.code())
	}
	if strings.Contains(string(r.body), bound[len(bound)-20:]) {
		t.Fatal("an answer carries the token")
	}
}
