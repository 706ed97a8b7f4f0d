package cmd

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
)

var enc = base64.RawURLEncoding

// kit is a realm (jwttest) whose JWKS also publishes an EC P-256 and an
// Ed25519 key, written to a file, with the private keys to mint any token.
type kit struct {
	realm    *jwttest.IdP
	rsa      jwttest.Key // published as kid-1, alg RS256 (jwttest)
	jwks     []byte
	jwksPath string
}

var (
	ecOnce sync.Once
	ecKey  *ecdsa.PrivateKey
	edKey  ed25519.PrivateKey
)

func extraKeys(t testing.TB) {
	ecOnce.Do(func() {
		var err error
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
		if _, edKey, err = ed25519.GenerateKey(rand.Reader); err != nil {
			t.Fatal(err)
		}
	})
}

func newKit(t testing.TB) *kit {
	t.Helper()
	extraKeys(t)
	realm := jwttest.New(t)
	k := &kit{realm: realm, rsa: realm.Rotate()}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(realm.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	pt, err := ecKey.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	ec, _ := json.Marshal(map[string]string{"kty": "EC", "crv": "P-256", "kid": "ec-1", "use": "sig",
		"x": enc.EncodeToString(pt[1:33]), "y": enc.EncodeToString(pt[33:])})
	ed, _ := json.Marshal(map[string]string{"kty": "OKP", "crv": "Ed25519", "kid": "ed-1",
		"x": enc.EncodeToString(edKey.Public().(ed25519.PublicKey))})
	set.Keys = append(set.Keys, ec, ed)
	if k.jwks, err = json.Marshal(set); err != nil {
		t.Fatal(err)
	}
	k.jwksPath = writeFile(t, "jwks.json", k.jwks)
	return k
}

func writeFile(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// mint signs claims with alg (RS256, PS256, ES256, EdDSA) under header h
// (alg and typ JWT added unless present).
func (k *kit) mint(t testing.TB, alg string, h map[string]any, claims map[string]any) string {
	t.Helper()
	hdr := map[string]any{"alg": alg, "typ": "JWT"}
	for n, v := range h {
		hdr[n] = v
	}
	input := b64json(t, hdr) + "." + b64json(t, claims)
	return input + "." + enc.EncodeToString(k.sig(t, alg, []byte(input)))
}

// signEmpty signs a JWS over zero bytes ("header..signature") with alg
// under kid.
func (k *kit) signEmpty(t testing.TB, alg, kid string) string {
	t.Helper()
	input := b64json(t, map[string]any{"alg": alg, "typ": "JWT", "kid": kid}) + "."
	return input + "." + enc.EncodeToString(k.sig(t, alg, []byte(input)))
}

func (k *kit) sig(t testing.TB, alg string, input []byte) []byte {
	d := sha256.Sum256(input)
	var (
		sig []byte
		err error
	)
	switch alg {
	case "RS256":
		sig, err = rsa.SignPKCS1v15(rand.Reader, k.rsa.Private, crypto.SHA256, d[:])
	case "PS256":
		sig, err = rsa.SignPSS(rand.Reader, k.rsa.Private, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "ES256":
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, ecKey, d[:])
		if err == nil {
			sig = make([]byte, 64)
			r.FillBytes(sig[:32])
			s.FillBytes(sig[32:])
		}
	case "EdDSA":
		sig = ed25519.Sign(edKey, input)
	default:
		t.Fatalf("mint: alg %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func b64json(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeToString(b)
}

// claims are valid access-token claims of the kit's realm.
func (k *kit) claims(sub string) map[string]any { return k.realm.Claims(sub) }

// hs256WithPublicKey is the classic key-confusion forgery: HS256 keyed with
// the RSA public key a verifier might hand to HMAC.
func (k *kit) hs256WithPublicKey(t testing.TB, kid string, claims map[string]any) string {
	der, err := x509.MarshalPKIXPublicKey(&k.rsa.Private.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	input := b64json(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + b64json(t, claims)
	m := hmac.New(sha256.New, der)
	m.Write([]byte(input))
	return input + "." + enc.EncodeToString(m.Sum(nil))
}

// parts splits a compact token.
func parts(tok string) [3]string {
	p := strings.SplitN(tok, ".", 3)
	return [3]string{p[0], p[1], p[2]}
}

// tamperSig flips one byte in the middle of the decoded signature.
func tamperSig(t testing.TB, tok string) string {
	p := parts(tok)
	sig, err := enc.DecodeString(p[2])
	if err != nil {
		t.Fatal(err)
	}
	sig[len(sig)/2] ^= 0x01
	return p[0] + "." + p[1] + "." + enc.EncodeToString(sig)
}

// result is one in-process run.
type result struct {
	code           int
	stdout, stderr string
}

// run executes edgectl in process.
func run(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(args, strings.NewReader(stdin), &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// verdict decodes the single JSON line a verdict prints.
func verdict(t testing.TB, r result) map[string]any {
	t.Helper()
	if strings.Count(r.stdout, "\n") != 1 || !strings.HasSuffix(r.stdout, "\n") {
		t.Fatalf("stdout is not one line: %q (stderr %q)", r.stdout, r.stderr)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("stdout is not JSON: %q: %v", r.stdout, err)
	}
	if _, ok := m["valid"].(bool); !ok {
		t.Fatalf("no valid field: %q", r.stdout)
	}
	return m
}

// noLeak fails if a secret appears in anything edgectl printed.
func noLeak(t testing.TB, r result, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if len(s) < 16 {
			continue
		}
		if strings.Contains(r.stdout, s) || strings.Contains(r.stderr, s) {
			t.Fatalf("output carries a secret (%d bytes): stdout %q stderr %q", len(s), r.stdout, r.stderr)
		}
	}
}

// hasLine fails unless out has a line whose words are want's (tables are
// aligned with spaces).
func hasLine(t *testing.T, out, want string) {
	t.Helper()
	w := strings.Join(strings.Fields(want), " ")
	for _, l := range strings.Split(out, "\n") {
		if strings.Join(strings.Fields(l), " ") == w {
			return
		}
	}
	t.Errorf("no line %q in:\n%s", want, out)
}
