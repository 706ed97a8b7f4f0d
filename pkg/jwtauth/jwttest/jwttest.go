// Package jwttest is an in-process stand-in for a Keycloak realm in unit
// tests: an httptest server publishing a JWKS (and an OIDC discovery
// document) and a minter of Keycloak-shaped access tokens signed with its
// keys. Integration tests use a real Keycloak instead.
//
// It is for tests only: keys are generated per process and kept in memory.
package jwttest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

var (
	keyMu   sync.Mutex
	keyPool []*rsa.PrivateKey
)

// rsaKey returns the i-th process-wide test key (RSA-2048 generation is slow
// under -race, so keys are shared between tests).
func rsaKey(i int) *rsa.PrivateKey {
	keyMu.Lock()
	defer keyMu.Unlock()
	for len(keyPool) <= i {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keyPool = append(keyPool, k)
	}
	return keyPool[i]
}

// Key is one signing key of the IdP.
type Key struct {
	KID     string
	Private *rsa.PrivateKey
}

// IdP is a fake realm.
type IdP struct {
	srv *httptest.Server
	// Issuer is the realm URL tokens carry in iss (<server>/realms/jan).
	Issuer string

	mu        sync.Mutex
	published []Key // in the JWKS
	signing   Key   // signs new tokens
	down      bool
	fetches   atomic.Int64
}

// New starts a fake realm with one published key; it stops with the test.
func New(t testing.TB) *IdP {
	t.Helper()
	p := &IdP{}
	p.signing = Key{KID: "kid-0", Private: rsaKey(0)}
	p.published = []Key{p.signing}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	p.Issuer = p.srv.URL + "/realms/jan"
	return p
}

func (p *IdP) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	switch r.URL.Path {
	case "/realms/jan/.well-known/openid-configuration":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": p.Issuer, "jwks_uri": p.JWKSURL()})
	case "/realms/jan/protocol/openid-connect/certs":
		p.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(p.JWKS())
	default:
		http.NotFound(w, r)
	}
}

// JWKSURL is the realm's certs endpoint.
func (p *IdP) JWKSURL() string { return p.srv.URL + "/realms/jan/protocol/openid-connect/certs" }

// Fetches counts JWKS requests served.
func (p *IdP) Fetches() int64 { return p.fetches.Load() }

// SetDown makes every endpoint answer 503 (or heals it).
func (p *IdP) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

// Rotate publishes a new key (keeping the old ones) and signs with it from
// now on; it returns the new key.
func (p *IdP) Rotate() Key {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.published)
	k := Key{KID: "kid-" + string(rune('0'+n)), Private: rsaKey(n)}
	p.published = append(p.published, k)
	p.signing = k
	return k
}

// Retire removes every published key but the signing one.
func (p *IdP) Retire() {
	p.mu.Lock()
	p.published = []Key{p.signing}
	p.mu.Unlock()
}

// JWKS renders the published keys.
func (p *IdP) JWKS() []byte {
	p.mu.Lock()
	keys := append([]Key(nil), p.published...)
	p.mu.Unlock()
	set := jwk.NewSet()
	for _, k := range keys {
		pk, err := jwk.Import(&k.Private.PublicKey)
		if err != nil {
			panic(err)
		}
		_ = pk.Set(jwk.KeyIDKey, k.KID)
		_ = pk.Set(jwk.AlgorithmKey, "RS256")
		_ = pk.Set(jwk.KeyUsageKey, "sig")
		_ = set.AddKey(pk)
	}
	b, err := json.Marshal(set)
	if err != nil {
		panic(err)
	}
	return b
}

// Claims returns Keycloak-shaped access-token claims for a user of the
// realm: aud jan-api, azp jan-cli, realm role user, valid for 5 minutes.
func (p *IdP) Claims(sub string) map[string]any {
	now := time.Now()
	return map[string]any{
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
		"iss": p.Issuer, "aud": []string{"jan-api", "account"}, "azp": "jan-cli",
		"sub": sub, "typ": "Bearer", "preferred_username": "user-" + sub,
		"email": sub + "@example.com", "scope": "openid profile email",
		"realm_access": map[string]any{"roles": []string{"user", "offline_access"}},
	}
}

// Token mints an access token for sub with Claims(sub) overridden by over
// (a nil value deletes a claim), signed RS256 by the current signing key.
func (p *IdP) Token(t testing.TB, sub string, over map[string]any) string {
	t.Helper()
	c := p.Claims(sub)
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	p.mu.Lock()
	k := p.signing
	p.mu.Unlock()
	return Sign(t, k, c)
}

// Sign signs claims RS256 with k (header typ JWT, kid k.KID).
func Sign(t testing.TB, k Key, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": k.KID})
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	d := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k.Private, crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	token := input + "." + enc.EncodeToString(sig)
	testenv.RecordSecret(token) // the run's secret sweep (scripts/test.sh)
	return token
}
