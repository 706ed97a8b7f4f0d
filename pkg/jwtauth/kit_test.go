package jwtauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/rs/zerolog"
)

// testKey is a private key with its JWK identity.
type testKey struct {
	kid    string
	alg    string // the JWK's alg member ("" to omit)
	use    string // the JWK's use member ("" to omit)
	signer crypto.Signer
}

var (
	keysOnce sync.Once
	rsaA     *rsa.PrivateKey
	rsaB     *rsa.PrivateKey
	rsaSmall *rsa.PrivateKey
	ecP256   *ecdsa.PrivateKey
	ecP384   *ecdsa.PrivateKey
	ecP521   *ecdsa.PrivateKey
	edKey    ed25519.PrivateKey
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		must := func(e error) {
			if e != nil {
				panic(e)
			}
		}
		rsaA, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		rsaB, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		rsaSmall, err = rsa.GenerateKey(rand.Reader, 1024)
		must(err)
		ecP256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		ecP384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		must(err)
		ecP521, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		must(err)
		_, edKey, err = ed25519.GenerateKey(rand.Reader)
		must(err)
	})
}

// jwksJSON renders the public JWKS of keys.
func jwksJSON(t testing.TB, keys ...testKey) []byte {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		pk, err := jwk.Import(k.signer.Public())
		if err != nil {
			t.Fatal(err)
		}
		if err := pk.Set(jwk.KeyIDKey, k.kid); err != nil {
			t.Fatal(err)
		}
		if k.alg != "" {
			if err := pk.Set(jwk.AlgorithmKey, k.alg); err != nil {
				t.Fatal(err)
			}
		}
		if k.use != "" {
			if err := pk.Set(jwk.KeyUsageKey, k.use); err != nil {
				t.Fatal(err)
			}
		}
		if err := set.AddKey(pk); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var enc = base64.RawURLEncoding

func b64json(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeToString(b)
}

// signRaw signs header.payload (already encoded) with alg and returns the
// compact token.
func signRaw(t testing.TB, alg string, signer crypto.Signer, hp string) string {
	t.Helper()
	sig := signBytes(t, alg, signer, []byte(hp))
	return hp + "." + enc.EncodeToString(sig)
}

func signBytes(t testing.TB, alg string, signer crypto.Signer, msg []byte) []byte {
	t.Helper()
	a, _ := algByName(alg)
	if a == algEdDSA {
		return ed25519.Sign(signer.(ed25519.PrivateKey), msg)
	}
	h := a.hash()
	digest := hashInto(h, msg, nil)
	switch a {
	case algRS256, algRS384, algRS512:
		sig, err := rsa.SignPKCS1v15(rand.Reader, signer.(*rsa.PrivateKey), h, digest)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	case algPS256, algPS384, algPS512:
		sig, err := rsa.SignPSS(rand.Reader, signer.(*rsa.PrivateKey), h, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		if err != nil {
			t.Fatal(err)
		}
		return sig
	case algES256, algES384, algES512:
		k := signer.(*ecdsa.PrivateKey)
		r, s, err := ecdsa.Sign(rand.Reader, k, digest)
		if err != nil {
			t.Fatal(err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out
	}
	t.Fatalf("cannot sign %s", alg)
	return nil
}

// hs256 forges an HMAC token keyed with secret (the classic "public key as
// HMAC secret" attack).
func hs256(hp string, secret []byte) string {
	m := hmac.New(sha256.New, secret)
	io.WriteString(m, hp)
	return hp + "." + enc.EncodeToString(m.Sum(nil))
}

// mint builds a token with standard Keycloak-like claims, overridden by
// claims (a nil value deletes a claim) and header members likewise.
func mint(t testing.TB, alg string, k testKey, hdr, claims map[string]any) string {
	t.Helper()
	h := map[string]any{"alg": alg, "typ": "JWT", "kid": k.kid}
	for n, v := range hdr {
		if v == nil {
			delete(h, n)
		} else {
			h[n] = v
		}
	}
	return signRaw(t, alg, k.signer, b64json(t, h)+"."+b64json(t, claimsWith(claims)))
}

const testIssuer = "https://idp.example/realms/jan"

var testNow = time.Unix(1_800_000_000, 0)

func claimsWith(over map[string]any) map[string]any {
	c := map[string]any{
		"exp":                testNow.Add(5 * time.Minute).Unix(),
		"iat":                testNow.Add(-time.Minute).Unix(),
		"iss":                testIssuer,
		"aud":                []string{"jan-api", "account"},
		"azp":                "jan-cli",
		"sub":                "5f0c-user",
		"typ":                "Bearer",
		"preferred_username": "alice",
		"email":              "alice@example.com",
		"scope":              "openid profile email",
		"realm_access":       map[string]any{"roles": []string{"user", "offline_access"}},
		"resource_access":    map[string]any{"account": map[string]any{"roles": []string{"view-profile"}}},
	}
	for n, v := range over {
		if v == nil {
			delete(c, n)
		} else {
			c[n] = v
		}
	}
	return c
}

// clock is an injectable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: testNow} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// idp is an httptest JWKS (and discovery) server whose key set and health
// tests change at will.
type idp struct {
	srv      *httptest.Server
	mu       sync.Mutex
	jwks     []byte
	status   int
	requests atomic.Int64
	hang     chan struct{}
	issuer   string // for discovery; defaults to testIssuer
}

func newIdP(t testing.TB, jwks []byte) *idp {
	t.Helper()
	p := &idp{jwks: jwks, status: http.StatusOK, issuer: testIssuer}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		body, status, hang, iss := p.jwks, p.status, p.hang, p.issuer
		p.mu.Unlock()
		if hang != nil {
			select {
			case <-hang:
			case <-r.Context().Done():
				return
			}
		}
		if r.URL.Path == "/.well-known/openid-configuration" {
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "jwks_uri": p.srv.URL + "/certs"})
			return
		}
		p.requests.Add(1)
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) set(jwks []byte, status int) {
	p.mu.Lock()
	p.jwks, p.status = jwks, status
	p.mu.Unlock()
}

func (p *idp) url() string { return p.srv.URL + "/certs" }

// newTestVerifier builds a verifier on the fake clock against p, and waits
// for its first key fetch.
func newTestVerifier(t testing.TB, p *idp, clk *clock, mutate func(*Config)) *Verifier {
	t.Helper()
	cfg := Config{
		Issuers:    []Issuer{{Issuer: testIssuer, JWKSURL: p.url()}},
		Audiences:  []string{"jan-api"},
		AllowedAZP: []string{"jan-cli", "jan-web", "guest-login"},
		Now:        clk.Now,
		Logger:     zerolog.Nop(),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	waitReady(t, v)
	return v
}

// waitReady waits for the first key fetch of v to finish, including its
// single-flight bookkeeping: a test's next unknown kid must start a fetch of
// its own, not join the start-up one.
func waitReady(t testing.TB, v *Verifier) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !v.Ready() || fetchInFlight(v) {
		if time.Now().After(deadline) {
			t.Fatal("verifier never became ready")
		}
		time.Sleep(time.Millisecond)
	}
}

func fetchInFlight(v *Verifier) bool {
	for _, ks := range v.keys {
		ks.mu.Lock()
		c := ks.call
		ks.mu.Unlock()
		if c != nil {
			return true
		}
	}
	return false
}
