package dpop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The test's request: a token bound to the test key, the public URL the
// client uses (TLS ends at the balancer), the method.
const (
	testToken  = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl" // opaque here: only its hash matters
	testURL    = "https://api.example.com/v1/chat/completions"
	testMethod = "POST"
)

var t0 = time.Unix(1_900_000_000, 0)

// keys are generated once per run (RSA is slow).
var keys = sync.OnceValue(func() map[string]crypto.Signer {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	rs1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	return map[string]crypto.Signer{"ec": ec, "ec2": ec2, "ec384": ec384, "ed": ed, "rsa": rs, "rsa1024": rs1024}
})

func signer(name string) crypto.Signer { return keys()[name] }

func mustKey(t testing.TB, name string) *Key {
	t.Helper()
	k, err := NewKey(signer(name))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newVerifier is a verifier on the clock with a fresh local store; edit
// adjusts the config.
func newVerifier(t testing.TB, c *clock, edit func(*Config)) *Verifier {
	t.Helper()
	cfg := Config{Now: c.now, Replay: &ReplayGuard{Local: NewLocalStore(1000, c.now)}}
	if edit != nil {
		edit(&cfg)
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func request(k *Key) Request {
	return Request{Method: testMethod, URL: testURL, AccessToken: testToken, JKT: k.Thumbprint()}
}

// claims are a valid proof's claims for the test request at t0.
func claims(jti string) map[string]any {
	return map[string]any{"jti": jti, "htm": testMethod, "htu": testURL, "iat": t0.Unix(), "ath": TokenHash(testToken)}
}

// forge builds a compact JWS from raw JSON parts (so duplicate members and
// odd types survive) signed by sign over the signing input (nil: an empty
// signature segment).
func forge(header, payload string, sign func(input []byte) []byte) string {
	in := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
	if sign == nil {
		return in + "."
	}
	return in + "." + b64.EncodeToString(sign([]byte(in)))
}

// signWith is a sign function of k's alg.
func signWith(k *Key) func([]byte) []byte {
	return func(in []byte) []byte {
		switch k.alg {
		case algEdDSA:
			sig, _ := k.signer.Sign(rand.Reader, in, crypto.Hash(0))
			return sig
		case algES256:
			d := sha256.Sum256(in)
			der, _ := k.signer.Sign(rand.Reader, d[:], crypto.SHA256)
			raw, _ := derToRaw(der)
			return raw
		default:
			d := sha256.Sum256(in)
			sig, _ := k.signer.Sign(rand.Reader, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
			return sig
		}
	}
}

// hs256 signs with HMAC-SHA-256 keyed with secret (the classic attack: the
// public key as the HMAC secret).
func hs256(secret []byte) func([]byte) []byte {
	return func(in []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(in)
		return m.Sum(nil)
	}
}

// header returns k's proof header as JSON with the given changes (a nil
// value deletes the member).
func header(k *Key, changes map[string]any) string {
	h := map[string]any{"typ": "dpop+jwt", "alg": k.Algorithm(), "jwk": k.PublicJWK()}
	for n, v := range changes {
		if v == nil {
			delete(h, n)
		} else {
			h[n] = v
		}
	}
	b, _ := json.Marshal(h)
	return string(b)
}

// payload returns claims as JSON with changes (nil deletes).
func payload(c map[string]any, changes map[string]any) string {
	for n, v := range changes {
		if v == nil {
			delete(c, n)
		} else {
			c[n] = v
		}
	}
	b, _ := json.Marshal(c)
	return string(b)
}

// jwkWith returns k's public JWK with members added (nil deletes).
func jwkWith(k *Key, changes map[string]any) json.RawMessage {
	var m map[string]any
	_ = json.Unmarshal(k.PublicJWK(), &m)
	for n, v := range changes {
		if v == nil {
			delete(m, n)
		} else {
			m[n] = v
		}
	}
	b, _ := json.Marshal(m)
	return b
}

func verify(v *Verifier, proof string, req Request) error {
	return v.Verify(context.Background(), proof, req)
}

var jtiSeq atomic.Int64

// newJTI is a unique jti.
func newJTI() string { return "jti-" + strconv.FormatInt(jtiSeq.Add(1), 10) }
