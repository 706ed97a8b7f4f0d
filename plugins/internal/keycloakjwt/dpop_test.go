package keycloakjwt

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Kong/go-pdk/test"

	"github.com/edgeguard/edgeguard/pkg/dpop"
	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/plugins/internal/auth"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter/kongtest"
	"github.com/edgeguard/edgeguard/plugins/internal/plugintest"
)

// The public URL clients use: TLS ends at the balancer, so Kong sees
// neither this scheme nor this host.
const publicBase = "https://api.example.com"

var dpopConfig = map[string]any{"dpop_public_base_url": publicBase}

func with(m map[string]any, extra map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// forged builds a proof of k from raw header and claims JSON, signed with
// sign (nil: an empty signature).
func forged(header, claims string, sign func([]byte) []byte) string {
	enc := base64.RawURLEncoding
	in := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims))
	if sign == nil {
		return in + "."
	}
	return in + "." + enc.EncodeToString(sign([]byte(in)))
}

func proofClaims(method, url, token string, iat time.Time) string {
	b, _ := json.Marshal(map[string]any{"jti": time.Now().Format(time.RFC3339Nano) + url, "htm": method, "htu": url,
		"iat": iat.Unix(), "ath": dpop.TokenHash(token)})
	return string(b)
}

// TestDPoPBoundTokens: the JWT stage's answers to bound and unbound tokens
// with and without proofs (the in-memory host; tests/e2e and tests/kong run
// the same through the real Kong behind a TLS-terminating nginx).
func TestDPoPBoundTokens(t *testing.T) {
	p := jwttest.New(t)
	k, _, _ := dpop.GenerateKey()
	other, _, _ := dpop.GenerateKey()
	bound := p.Token(t, "u-1", map[string]any{"cnf": map[string]any{"jkt": k.Thumbprint()}, "typ": "DPoP"})
	plain := p.Token(t, "u-2", nil)
	const method, path = "POST", "/v1/chat/completions"
	url := publicBase + path
	proof := func(k *dpop.Key, method, url, token string) string {
		s, err := k.Proof(method, url, dpop.ProofOptions{AccessToken: token})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	pub, _ := json.Marshal(k.PublicJWK())
	hdr := func(changes map[string]any) string {
		h := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": k.PublicJWK()}
		for n, v := range changes {
			h[n] = v
		}
		b, _ := json.Marshal(h)
		return string(b)
	}
	hs256 := func(in []byte) []byte { m := hmac.New(sha256.New, pub); m.Write(in); return m.Sum(nil) }
	var privJWK map[string]any
	_ = json.Unmarshal(k.PublicJWK(), &privJWK)
	privJWK["d"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

	replayed := proof(k, method, url, bound)
	invalidProof := dpop.Challenge(auth.Realm, dpop.ErrorInvalidProof, dpop.DefaultAlgorithms)
	invalidToken := dpop.Challenge(auth.Realm, dpop.ErrorInvalidToken, dpop.DefaultAlgorithms)
	tests := []struct {
		name    string
		config  map[string]any
		headers map[string][]string
		status  int
		code    string
		www     string
	}{
		{"bound token with a valid proof", dpopConfig, map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {replayed}}, 200, "", ""},
		{"the same proof again: replay", dpopConfig, map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {replayed}}, 401, string(dpop.ReasonReplayed), invalidProof},
		{"scheme in lower case", dpopConfig, map[string][]string{"Authorization": {"dpop " + bound}, "DPoP": {proof(k, method, url, bound)}}, 200, "", ""},
		{"bound token without a proof", dpopConfig, map[string][]string{"Authorization": {"DPoP " + bound}}, 401, string(dpop.ReasonProofMissing), invalidProof},
		{"bound token as a bearer token: downgrade", dpopConfig, map[string][]string{"Authorization": {"Bearer " + bound}, "DPoP": {proof(k, method, url, bound)}}, 401, string(dpop.ReasonDowngrade), invalidToken},
		{"bound token as a bearer token without proof", dpopConfig, map[string][]string{"Authorization": {"Bearer " + bound}}, 401, string(dpop.ReasonDowngrade), invalidToken},
		{"proof for another method", dpopConfig, map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {proof(k, "GET", url, bound)}}, 401, string(dpop.ReasonMethod), invalidProof},
		{"proof for another path", dpopConfig, map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {proof(k, method, publicBase+"/v1/models", bound)}}, 401, string(dpop.ReasonURL), invalidProof},
		{"proof for the URL Kong sees (behind the balancer)", dpopConfig, map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {proof(k, method, "http://kong:8000"+path, bound)}}, 401, string(dpop.ReasonURL), invalidProof},
		{"proof of another key", dpopConfig, map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {proof(other, method, url, bound)}}, 401, string(dpop.ReasonKeyMismatch), invalidProof},
		{"proof for another token", dpopConfig, map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {proof(k, method, url, plain)}}, 401, string(dpop.ReasonTokenHash), invalidProof},
		{"stale iat", dpopConfig, map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {func() string {
			s, _ := k.Proof(method, url, dpop.ProofOptions{AccessToken: bound, Now: time.Now().Add(-2 * time.Minute)})
			return s
		}()}}, 401, string(dpop.ReasonIssuedAt), invalidProof},
		{"alg none", dpopConfig, map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {forged(hdr(map[string]any{"alg": "none"}), proofClaims(method, url, bound, time.Now()), nil)}}, 401, string(dpop.ReasonProofMalformed), invalidProof},
		{"HS256 keyed with the public key", dpopConfig, map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {forged(hdr(map[string]any{"alg": "HS256"}), proofClaims(method, url, bound, time.Now()), hs256)}}, 401, string(dpop.ReasonAlgNotAllowed), invalidProof},
		{"private key in jwk", dpopConfig, map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {forged(hdr(map[string]any{"jwk": privJWK}), proofClaims(method, url, bound, time.Now()), hs256)}}, 401, string(dpop.ReasonJWKPrivate), invalidProof},
		{"two proofs", dpopConfig, map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {proof(k, method, url, bound), proof(k, method, url, bound)}}, 401, string(dpop.ReasonProofMultiple), invalidProof},
		{"DPoP scheme with an unbound token", dpopConfig, map[string][]string{"Authorization": {"DPoP " + plain}, "DPoP": {proof(k, method, url, plain)}}, 401, string(dpop.ReasonTokenUnbound), invalidToken},
		{"DPoP scheme with an invalid token", dpopConfig, map[string][]string{"Authorization": {"DPoP " + bound[:len(bound)-3] + "AAA"}, "DPoP": {proof(k, method, url, bound)}}, 401, "signature_invalid", invalidToken},
		{"unbound bearer token: as before", dpopConfig, map[string][]string{"Authorization": {"Bearer " + plain}}, 200, "", ""},
		{"unbound bearer token with a stray proof: the proof is ignored", dpopConfig, map[string][]string{"Authorization": {"Bearer " + plain}, "DPoP": {"garbage"}}, 200, "", ""},
		{"require_dpop: an unbound bearer token", with(dpopConfig, map[string]any{"require_dpop": true}), map[string][]string{"Authorization": {"Bearer " + plain}}, 401, string(dpop.ReasonRequired), invalidToken},
		{"require_dpop: no credential names the DPoP scheme", with(dpopConfig, map[string]any{"require_dpop": true}), map[string][]string{"Accept": {"*/*"}}, 401, auth.CodeCredentialMissing, dpop.Challenge(auth.Realm, "", dpop.DefaultAlgorithms)},
		{"require_dpop: a bound token with its proof", with(dpopConfig, map[string]any{"require_dpop": true}), map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {proof(k, method, url, bound)}}, 200, "", ""},
		{"no dpop_public_base_url: bound tokens are refused", nil, map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {proof(k, method, url, bound)}}, 401, string(dpop.ReasonNotConfigured), invalidToken},
		{"no dpop_public_base_url: unbound tokens as before", nil, map[string][]string{"Authorization": {"Bearer " + plain}}, 200, "", ""},
		{"algorithm allowlist", with(dpopConfig, map[string]any{"dpop_algorithms": []string{"EdDSA"}}), map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {proof(k, method, url, bound)}}, 401, string(dpop.ReasonAlgNotAllowed), dpop.Challenge(auth.Realm, dpop.ErrorInvalidProof, []string{"EdDSA"})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newConfig(t, p, tc.config)
			f := exchange.NewFake(method, path, tc.headers)
			c.Handle(f)
			status := f.ExitStatus
			if status == 0 {
				status = 200
			}
			if status != tc.status {
				t.Fatalf("status %d (%s), want %d %s", status, f.ExitBody, tc.status, tc.code)
			}
			if tc.status == 200 {
				if f.Identity == nil {
					t.Fatal("no identity recorded")
				}
				if strings.HasPrefix(strings.ToLower(tc.headers["Authorization"][0]), "dpop") != (f.Identity.Cnf != nil) {
					t.Fatalf("cnf %+v", f.Identity.Cnf)
				}
				return
			}
			if got := errorCode(t, f.ExitBody); got != tc.code {
				t.Fatalf("code %q, want %q", got, tc.code)
			}
			if got := f.ExitHeaders["WWW-Authenticate"]; got != tc.www {
				t.Fatalf("WWW-Authenticate %q, want %q", got, tc.www)
			}
			if f.Identity != nil {
				t.Fatal("refused, yet an identity was recorded")
			}
		})
	}
}

// The verified-token cache holds a token's identity, never a proof's
// verdict: after a request with a valid proof (the token is now cached),
// the same token without a proof, with a replayed one or with another
// key's is refused.
func TestCachedBoundTokenStillNeedsAProof(t *testing.T) {
	p := jwttest.New(t)
	k, _, _ := dpop.GenerateKey()
	other, _, _ := dpop.GenerateKey()
	bound := p.Token(t, "u-1", map[string]any{"cnf": map[string]any{"jkt": k.Thumbprint()}, "typ": "DPoP"})
	c := newConfig(t, p, dpopConfig)
	run := func(h map[string][]string) (int, string) {
		f := exchange.NewFake("GET", "/v1/models", h)
		c.Handle(f)
		if f.ExitStatus == 0 {
			return 200, ""
		}
		return f.ExitStatus, errorCode(t, f.ExitBody)
	}
	first, _ := k.Proof("GET", publicBase+"/v1/models", dpop.ProofOptions{AccessToken: bound})
	if st, code := run(map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {first}}); st != 200 {
		t.Fatalf("first: %d %s", st, code)
	}
	otherProof, _ := other.Proof("GET", publicBase+"/v1/models", dpop.ProofOptions{AccessToken: bound})
	for name, h := range map[string]map[string][]string{
		"no proof":      {"Authorization": {"DPoP " + bound}},
		"replayed":      {"Authorization": {"DPoP " + bound}, "DPoP": {first}},
		"another key":   {"Authorization": {"DPoP " + bound}, "DPoP": {otherProof}},
		"as bearer":     {"Authorization": {"Bearer " + bound}},
		"in a cookie":   {"Cookie": {"kc=" + bound}},
		"bearer+proof?": {"Authorization": {"Bearer " + bound}, "DPoP": {first}},
	} {
		if st, code := run(h); st != 401 {
			t.Errorf("%s after a cached success: %d %s", name, st, code)
		}
	}
	second, _ := k.Proof("GET", publicBase+"/v1/models", dpop.ProofOptions{AccessToken: bound})
	if st, code := run(map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {second}}); st != 200 {
		t.Fatalf("a new proof: %d %s", st, code)
	}
}

func TestDPoPNonceFlow(t *testing.T) {
	p := jwttest.New(t)
	k, _, _ := dpop.GenerateKey()
	bound := p.Token(t, "u-1", map[string]any{"cnf": map[string]any{"jkt": k.Thumbprint()}, "typ": "DPoP"})
	keyFile := filepath.Join(t.TempDir(), "nonce")
	if err := os.WriteFile(keyFile, []byte("a-nonce-key-of-at-least-32-bytes-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newConfig(t, p, with(dpopConfig, map[string]any{"dpop_require_nonce": true, "dpop_nonce_key_file": keyFile}))
	url := publicBase + "/v1/models"
	p1, _ := k.Proof("GET", url, dpop.ProofOptions{AccessToken: bound})
	f := exchange.NewFake("GET", "/v1/models", map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {p1}})
	c.Handle(f)
	nonce := f.ExitHeaders[dpop.HeaderNonce]
	if f.ExitStatus != 401 || errorCode(t, f.ExitBody) != string(dpop.ReasonNonceMissing) || nonce == "" ||
		f.ExitHeaders["WWW-Authenticate"] != dpop.Challenge(auth.Realm, dpop.ErrorUseNonce, dpop.DefaultAlgorithms) {
		t.Fatalf("without a nonce: %d %s %v", f.ExitStatus, f.ExitBody, f.ExitHeaders)
	}
	p2, _ := k.Proof("GET", url, dpop.ProofOptions{AccessToken: bound, Nonce: nonce})
	f = exchange.NewFake("GET", "/v1/models", map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {p2}})
	c.Handle(f)
	if f.ExitStatus != 0 || f.Response[dpop.HeaderNonce] == "" {
		t.Fatalf("with the nonce: %d %s; DPoP-Nonce %q", f.ExitStatus, f.ExitBody, f.Response[dpop.HeaderNonce])
	}
	p3, _ := k.Proof("GET", url, dpop.ProofOptions{AccessToken: bound, Nonce: "not-ours"})
	f = exchange.NewFake("GET", "/v1/models", map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {p3}})
	c.Handle(f)
	if f.ExitStatus != 401 || errorCode(t, f.ExitBody) != string(dpop.ReasonNonceInvalid) || f.ExitHeaders[dpop.HeaderNonce] == "" {
		t.Fatalf("a foreign nonce: %d %s", f.ExitStatus, f.ExitBody)
	}
}

func TestDPoPHideCredentialsRemovesTheProof(t *testing.T) {
	p := jwttest.New(t)
	k, _, _ := dpop.GenerateKey()
	bound := p.Token(t, "u-1", map[string]any{"cnf": map[string]any{"jkt": k.Thumbprint()}, "typ": "DPoP"})
	c := newConfig(t, p, with(dpopConfig, map[string]any{"hide_credentials": true}))
	pr, _ := k.Proof("GET", publicBase+"/v1/models", dpop.ProofOptions{AccessToken: bound})
	f := exchange.NewFake("GET", "/v1/models", map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {pr}})
	c.Handle(f)
	if f.ExitStatus != 0 || !slices.Contains(f.Cleared, "dpop") || !slices.Contains(f.Cleared, "authorization") {
		t.Fatalf("%d cleared %v", f.ExitStatus, f.Cleared)
	}
}

func TestDPoPOptionsAreValidated(t *testing.T) {
	p := jwttest.New(t)
	keyFile := filepath.Join(t.TempDir(), "nonce")
	_ = os.WriteFile(keyFile, []byte("short"), 0o600)
	for name, extra := range map[string]map[string]any{
		"require_dpop without a base URL":  {"require_dpop": true},
		"dpop options without a base URL":  {"dpop_window_seconds": 30},
		"relative base URL":                {"dpop_public_base_url": "/api"},
		"base URL with a query":            {"dpop_public_base_url": "https://api.example.com/?x=1"},
		"base URL with credentials":        {"dpop_public_base_url": "https://u:p@api.example.com"},
		"base URL with a dot segment":      {"dpop_public_base_url": "https://api.example.com/a/../b"},
		"base URL of another scheme":       {"dpop_public_base_url": "ftp://api.example.com"},
		"window too long":                  {"dpop_public_base_url": publicBase, "dpop_window_seconds": 301},
		"negative window":                  {"dpop_public_base_url": publicBase, "dpop_window_seconds": -1},
		"alg none":                         {"dpop_public_base_url": publicBase, "dpop_algorithms": []string{"none"}},
		"HS256":                            {"dpop_public_base_url": publicBase, "dpop_algorithms": []string{"HS256"}},
		"nonce without a key file":         {"dpop_public_base_url": publicBase, "dpop_require_nonce": true},
		"nonce with a short key":           {"dpop_public_base_url": publicBase, "dpop_require_nonce": true, "dpop_nonce_key_file": keyFile},
		"nonce key without the nonce":      {"dpop_public_base_url": publicBase, "dpop_nonce_key_file": keyFile},
		"on_redis_error without redis":     {"dpop_public_base_url": publicBase, "dpop_on_redis_error": "deny"},
		"unknown on_redis_error":           {"dpop_public_base_url": publicBase, "dpop_on_redis_error": "open", "dpop_redis": map[string]any{"addresses": []string{"127.0.0.1:1"}}},
		"redis timeout too long":           {"dpop_public_base_url": publicBase, "dpop_redis_timeout_ms": 6000, "dpop_redis": map[string]any{"addresses": []string{"127.0.0.1:1"}}},
		"nonce lifetime without the nonce": {"dpop_public_base_url": publicBase, "dpop_nonce_lifetime_seconds": 60},
	} {
		c := decode(t, kongJSON(t, baseConfig(p, extra)))
		if _, err := c.Provision(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, extra := range map[string]map[string]any{
		"base URL with a path prefix": {"dpop_public_base_url": "https://api.example.com/edge/"},
		"base URL with a port":        {"dpop_public_base_url": "http://localhost:8000"},
		"redis and deny":              {"dpop_public_base_url": publicBase, "dpop_on_redis_error": "deny", "dpop_redis": map[string]any{"addresses": []string{"127.0.0.1:1"}}},
	} {
		c := decode(t, kongJSON(t, baseConfig(p, extra)))
		if _, err := c.Provision(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Redis away: the policy decides (local: this node's memory; deny: 503).
func TestDPoPReplayStoreAway(t *testing.T) {
	p := jwttest.New(t)
	k, _, _ := dpop.GenerateKey()
	bound := p.Token(t, "u-1", map[string]any{"cnf": map[string]any{"jkt": k.Thumbprint()}, "typ": "DPoP"})
	away := map[string]any{"addresses": []string{"127.0.0.1:1"}}
	for policy, want := range map[string]int{"local": 0, "deny": 503} {
		c := newConfig(t, p, with(dpopConfig, map[string]any{"dpop_redis": away, "dpop_on_redis_error": policy, "dpop_redis_timeout_ms": 50}))
		pr, _ := k.Proof("GET", publicBase+"/v1/models", dpop.ProofOptions{AccessToken: bound})
		h := map[string][]string{"Authorization": {"DPoP " + bound}, "DPoP": {pr}}
		f := exchange.NewFake("GET", "/v1/models", h)
		c.Handle(f)
		if f.ExitStatus != want {
			t.Fatalf("%s: status %d %s, want %d", policy, f.ExitStatus, f.ExitBody, want)
		}
		if want == 503 && errorCode(t, f.ExitBody) != string(dpop.ReasonReplayUnavailable) {
			t.Fatalf("deny: %s", f.ExitBody)
		}
		// the same proof again: this node remembers it either way
		f = exchange.NewFake("GET", "/v1/models", h)
		c.Handle(f)
		if f.ExitStatus != 401 || errorCode(t, f.ExitBody) != string(dpop.ReasonReplayed) {
			t.Fatalf("%s: replay to the same node: %d %s", policy, f.ExitStatus, f.ExitBody)
		}
	}
}

// A DPoP request through the Kong adapter: the proof comes from the one
// header read, method and path are read once (the edge assertion reads the
// same); a bearer request's calls are unchanged (TestPDKCallsPerPath). The
// assertion carries the binding.
func TestDPoPPDKCallsAndAssertion(t *testing.T) {
	p := jwttest.New(t)
	k, _, _ := dpop.GenerateKey()
	bound := p.Token(t, "u-1", map[string]any{"cnf": map[string]any{"jkt": k.Thumbprint()}, "typ": "DPoP"})
	key, jwks := plugintest.EdgeKey(t)
	c := newConfig(t, p, with(dpopConfig, map[string]any{"upstream_name": "llm-api", "edge_signing_key_file": key}))
	pr, _ := k.Proof("POST", publicBase+"/v1/chat/completions", dpop.ProofOptions{AccessToken: bound})
	env := kongtest.New(t, test.Request{Method: "POST", Url: "http://gw.example/v1/chat/completions", Body: []byte("{}"),
		Headers: http.Header{"Authorization": {"DPoP " + bound}, "Dpop": {pr}}})
	env.Access(kongadapter.Handler(c))
	want := []string{kongadapter.CallGetHeaders, kongadapter.CallGetMethod, kongadapter.CallGetPath, kongadapter.CallGetForwardedIP, kongadapter.CallSharedSet, kongadapter.CallSetHeaders}
	if got := env.Calls(); !slices.Equal(got, want) {
		t.Fatalf("PDK calls %v, want %v", got, want)
	}
	v, _ := edgeid.NewVerifier(jwks, "llm-api", time.Now)
	claims, err := v.VerifyClaims(env.ServiceReq.Headers.Get("X-Edge-Identity"), "POST", "/v1/chat/completions")
	if err != nil || claims.Identity.Cnf == nil || claims.Identity.Cnf.JKT != k.Thumbprint() {
		t.Fatalf("assertion: %+v %v", claims, err)
	}
}
