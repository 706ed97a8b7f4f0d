package edgeid

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/identity"
)

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var alice = &identity.Identity{Subject: "alice", Username: "alice", RealmRoles: []string{"user"}, AuthMethod: "jwt",
	Issuer: "https://gw/realms/jan", ExpiresAt: time.Unix(1_900_000_000, 0).UTC()}

func setup(t testing.TB) (*Signer, *Verifier, *time.Time) {
	t.Helper()
	k := newKey(t)
	s, err := NewSigner(k, "")
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := PublicJWKS(k.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	v, err := NewVerifier(jwks, "llm-api", func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	return s, v, &now
}

func TestRoundTripKeepsTheIdentity(t *testing.T) {
	s, v, now := setup(t)
	a, err := s.Sign(alice, "llm-api", "POST", "/v1/chat/completions", *now)
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(a, "POST", "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "alice" || id.AuthMethod != "jwt" || id.Issuer != alice.Issuer || !id.ExpiresAt.Equal(alice.ExpiresAt) || id.RealmRoles[0] != "user" {
		t.Fatalf("identity %+v", id)
	}
}

// The binding of a DPoP-bound token travels to the services: the identity's
// cnf.jkt, inside the signed claims (the edge admitted the request with a
// proof of that key).
func TestKeyBindingTravelsInTheAssertion(t *testing.T) {
	s, v, now := setup(t)
	bound := *alice
	bound.Cnf = &identity.Confirmation{JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
	a, err := s.Sign(&bound, "llm-api", "GET", "/v1/models", *now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.VerifyClaims(a, "GET", "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	if c.Identity.Cnf == nil || c.Identity.Cnf.JKT != bound.Cnf.JKT {
		t.Fatalf("cnf %+v", c.Identity.Cnf)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(strings.Split(a, ".")[1])
	if !strings.Contains(string(raw), `"cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}`) {
		t.Fatalf("claims %s", raw)
	}
	a, _ = s.Sign(alice, "llm-api", "GET", "/v1/models", *now)
	raw, _ = base64.RawURLEncoding.DecodeString(strings.Split(a, ".")[1])
	if strings.Contains(string(raw), "cnf") {
		t.Fatal("a bearer identity carries cnf")
	}
}

func TestEveryMismatchIsRejected(t *testing.T) {
	s, v, now := setup(t)
	other := newKey(t)
	os, _ := NewSigner(other, "")
	good, _ := s.Sign(alice, "llm-api", "GET", "/v1/models", *now)
	cases := map[string]struct {
		assertion, method, path string
		at                      time.Duration
	}{
		"another service": {must(s.Sign(alice, "media-api", "GET", "/v1/models", *now)), "GET", "/v1/models", 0},
		"another method":  {good, "POST", "/v1/models", 0},
		"another path":    {good, "GET", "/v1/admin/keys", 0},
		"expired":         {good, "GET", "/v1/models", Lifetime + Skew},
		"issued later":    {must(s.Sign(alice, "llm-api", "GET", "/v1/models", now.Add(time.Minute))), "GET", "/v1/models", 0},
		"unknown key":     {must(os.Sign(alice, "llm-api", "GET", "/v1/models", *now)), "GET", "/v1/models", 0},
		"tampered":        {good[:len(good)-4] + "AAAA", "GET", "/v1/models", 0},
		"forged payload":  {strings.Split(good, ".")[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"identity":{"sub":"root"}}`)) + "." + strings.Split(good, ".")[2], "GET", "/v1/models", 0},
		"empty":           {"", "GET", "/v1/models", 0},
		"garbage":         {"x-user-id: root", "GET", "/v1/models", 0},
		"alg none":        {base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + strings.Split(good, ".")[1] + ".", "GET", "/v1/models", 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			saved := *now
			*now = now.Add(tc.at)
			defer func() { *now = saved }()
			id, err := v.Verify(tc.assertion, tc.method, tc.path)
			if id != nil || !errors.Is(err, ErrRejected) {
				t.Fatalf("accepted (%v, %v)", id, err)
			}
		})
	}
}

// TestClientAddressTravelsSignedAndCanonical: the client address the edge
// decided is the cip claim, in canonical form (IPv4-mapped unmapped, zone
// dropped), absent when the edge had none; a signed but non-canonical or
// garbage cip is refused, and a client cannot add one (the signature
// covers it).
func TestClientAddressTravelsSignedAndCanonical(t *testing.T) {
	s, v, now := setup(t)
	for in, want := range map[string]string{
		"203.0.113.7": "203.0.113.7", "::ffff:203.0.113.7": "203.0.113.7", "2001:db8::1%eth0": "2001:db8::1", "": "",
	} {
		var client netip.Addr
		if in != "" {
			client = netip.MustParseAddr(in)
		}
		a, err := s.SignClient(alice, "llm-api", "GET", "/v1/models", client, *now)
		if err != nil {
			t.Fatal(err)
		}
		c, err := v.VerifyClaims(a, "GET", "/v1/models")
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if c.Cip != want || c.Identity.Subject != "alice" {
			t.Errorf("%q: cip %q, want %q", in, c.Cip, want)
		}
		if got := c.ClientIP(); (want == "") != !got.IsValid() || (want != "" && got.String() != want) {
			t.Errorf("%q: ClientIP() %v", in, got)
		}
		if payload := mustDecode(t, strings.Split(a, ".")[1]); (want == "") == strings.Contains(payload, `"cip"`) {
			t.Errorf("%q: cip present %v in %s", in, want != "", payload)
		}
	}
	k := newKey(t)
	signer, _ := NewSigner(k, "")
	jwks, _ := PublicJWKS(k.Public().(ed25519.PublicKey))
	ver, _ := NewVerifier(jwks, "llm-api", func() time.Time { return *now })
	for _, bad := range []string{"::ffff:203.0.113.7", "203.0.113.007", "unknown", "203.0.113.7, 198.18.0.9", "fe80::1%eth0"} {
		a := signRaw(t, signer, map[string]any{"identity": map[string]any{"sub": "alice", "method": "jwt"}, "iss": Issuer,
			"aud": "llm-api", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": "j", "htm": "GET", "htu": "/", "cip": bad})
		if _, err := ver.VerifyClaims(a, "GET", "/"); !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "client address") {
			t.Errorf("cip %q: %v, want rejected (client address)", bad, err)
		}
	}
	good, _ := s.SignClient(alice, "llm-api", "GET", "/v1/models", netip.MustParseAddr("203.0.113.7"), *now)
	parts := strings.Split(good, ".")
	forged := strings.Replace(mustDecode(t, parts[1]), "203.0.113.7", "198.18.0.9", 1)
	if _, err := v.VerifyClaims(parts[0]+"."+base64.RawURLEncoding.EncodeToString([]byte(forged))+"."+parts[2], "GET", "/v1/models"); !errors.Is(err, ErrRejected) {
		t.Errorf("a changed cip verified: %v", err)
	}
}

func mustDecode(t *testing.T, seg string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// signRaw signs an arbitrary payload with the signer's key and header.
func signRaw(t *testing.T, s *Signer, claims map[string]any) string {
	t.Helper()
	p, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	in := s.header + "." + base64.RawURLEncoding.EncodeToString(p)
	return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(s.key, []byte(in)))
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

func TestTwoKeysDuringRotation(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	jwks, _ := PublicJWKS(k1.Public().(ed25519.PublicKey), k2.Public().(ed25519.PublicKey))
	now := time.Now()
	v, err := NewVerifier(jwks, "llm-api", func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []ed25519.PrivateKey{k1, k2} {
		s, _ := NewSigner(k, "")
		if _, err := v.Verify(must(s.Sign(alice, "llm-api", "GET", "/", now)), "GET", "/"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadSignerFromPEM(t *testing.T) {
	k := newKey(t)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	p := filepath.Join(t.TempDir(), "edge.pem")
	_ = os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	s, err := LoadSigner(p)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Thumbprint(k.Public().(ed25519.PublicKey))
	if s.KID() != want {
		t.Fatalf("kid %s, want %s", s.KID(), want)
	}
	for _, bad := range []string{"", "not pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}}))} {
		_ = os.WriteFile(p, []byte(bad), 0o600)
		if _, err := LoadSigner(p); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("LoadSigner(%q) = %v", bad, err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	s, v, now := setup(f)
	good, _ := s.Sign(alice, "llm-api", "GET", "/", *now)
	for _, seed := range []string{good, good + "x", "a.b.c", "", strings.Repeat("A", 20000)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, a string) {
		id, err := v.Verify(a, "GET", "/")
		if err == nil && a != good {
			t.Fatalf("accepted an assertion that was never signed: %q (%v)", a, id)
		}
	})
}

func BenchmarkSign(b *testing.B) {
	s, _, now := setup(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(alice, "llm-api", "POST", "/v1/chat/completions", *now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	s, v, now := setup(b)
	a, _ := s.Sign(alice, "llm-api", "POST", "/v1/chat/completions", *now)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(a, "POST", "/v1/chat/completions"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestWriteKeyFiles(t *testing.T) {
	dir := t.TempDir()
	key, jwks := filepath.Join(dir, "edge.pem"), filepath.Join(dir, "edge.jwks.json")
	if err := WriteKeyFiles(key, jwks); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(key); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", fi.Mode())
	}
	s, err := LoadSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := LoadVerifier(jwks, "llm-api")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(must(s.Sign(alice, "llm-api", "GET", "/", time.Now())), "GET", "/"); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFiles(key, jwks); err == nil {
		t.Fatal("existing key files must not be overwritten")
	}
}

// BenchmarkFloorEd25519Sign and Verify are the floors of Sign and Verify: the
// bare Ed25519 operations on a message of the assertion's size.
func BenchmarkFloorEd25519Sign(b *testing.B) {
	k := newKey(b)
	msg := make([]byte, 600)
	for b.Loop() {
		_ = ed25519.Sign(k, msg)
	}
}

func BenchmarkFloorEd25519Verify(b *testing.B) {
	k := newKey(b)
	msg := make([]byte, 600)
	sig := ed25519.Sign(k, msg)
	pub := k.Public().(ed25519.PublicKey)
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify")
		}
	}
}
