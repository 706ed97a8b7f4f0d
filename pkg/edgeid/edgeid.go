// Package edgeid is the edge-signed identity assertion, X-Edge-Identity: a
// compact JWS (EdDSA, Ed25519) that the edge's auth plugins add to every
// authenticated request, and the only identity input services trust besides
// a Keycloak JWT they verify themselves. Its claims are the Identity plus
// aud (the upstream service), iat/exp (60 s), a random jti, htm/htu (the
// request's method and path, as in DPoP) — so an assertion captured on one
// request cannot be replayed against another service, method or path, or
// after a minute — and cip, the client address the edge decided for the
// request (Kong's trusted_ips / real_ip rules), which services use for
// limits, audit and logs instead of X-Forwarded-For.
//
// It is not a session token: clients never see it (the plugins strip client
// copies), and it carries no refresh semantics.
package edgeid

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
)

// Issuer is the iss claim of every assertion.
const Issuer = "edgeguard-edge"

// Lifetime of an assertion, and the clock skew a verifier tolerates.
const (
	Lifetime = 60 * time.Second
	Skew     = 5 * time.Second
)

// Claims is the payload of an assertion. The Identity is nested (its own
// exp and iss — the credential's — would collide with the assertion's).
type Claims struct {
	Identity identity.Identity `json:"identity"`
	Iss      string            `json:"iss"`
	Aud      string            `json:"aud"`
	Iat      int64             `json:"iat"`
	Exp      int64             `json:"exp"`
	Jti      string            `json:"jti"`
	Htm      string            `json:"htm"`
	Htu      string            `json:"htu"`
	// Cip is the client address the edge decided (an IP address in its
	// canonical text form, IPv4-mapped addresses unmapped); absent when the
	// edge had none.
	Cip string `json:"cip,omitempty"`
}

// ClientIP is the verified client address of the claims (the zero Addr
// when the assertion carries none).
func (c *Claims) ClientIP() netip.Addr {
	a, err := netip.ParseAddr(c.Cip)
	if err != nil {
		return netip.Addr{}
	}
	return a
}

// Errors.
var (
	// ErrInvalidKey: the signing key file or JWKS is unusable.
	ErrInvalidKey = errors.New("invalid edge identity key")
	// ErrRejected wraps every verification failure; the detail names the
	// check (never the assertion).
	ErrRejected = errors.New("edge identity rejected")
)

// Signer signs assertions with the edge's Ed25519 key.
type Signer struct {
	kid    string
	key    ed25519.PrivateKey
	header string // base64url of the protected header, fixed per key
}

// NewSigner returns a Signer for key with key id kid ("" derives the RFC 7638
// thumbprint of the public key).
func NewSigner(key ed25519.PrivateKey, kid string) (*Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: not an Ed25519 private key", ErrInvalidKey)
	}
	if kid == "" {
		var err error
		if kid, err = Thumbprint(key.Public().(ed25519.PublicKey)); err != nil {
			return nil, err
		}
	}
	h, _ := json.Marshal(map[string]string{"alg": "EdDSA", "typ": "JWT", "kid": kid})
	return &Signer{kid: kid, key: key, header: base64.RawURLEncoding.EncodeToString(h)}, nil
}

// LoadSigner reads a PEM PKCS#8 Ed25519 private key file (what
// WriteKeyFiles and compose/gen-secrets.sh write). The key id is the key's thumbprint.
func LoadSigner(path string) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot read %s", ErrInvalidKey, path)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%w: %s is not a PEM PKCS#8 private key", ErrInvalidKey, path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: not PKCS#8", ErrInvalidKey, path)
	}
	ed, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not an Ed25519 key", ErrInvalidKey, path)
	}
	return NewSigner(ed, "")
}

// KID is the signing key's id.
func (s *Signer) KID() string { return s.kid }

// Sign returns the assertion of id for the upstream aud and the request's
// method and path, issued at now, without a client address (SignClient
// adds one).
func (s *Signer) Sign(id *identity.Identity, aud, method, path string, now time.Time) (string, error) {
	return s.SignClient(id, aud, method, path, netip.Addr{}, now)
}

// SignClient is Sign with the client address the edge decided as the cip
// claim (omitted for the zero Addr; IPv4-mapped addresses are unmapped and
// zones dropped).
func (s *Signer) SignClient(id *identity.Identity, aud, method, path string, client netip.Addr, now time.Time) (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("edge identity jti: %w", err)
	}
	c := Claims{Identity: *id, Iss: Issuer, Aud: aud, Iat: now.Unix(), Exp: now.Add(Lifetime).Unix(),
		Jti: hex.EncodeToString(jti[:]), Htm: method, Htu: path}
	if client.IsValid() {
		c.Cip = client.Unmap().WithZone("").String()
	}
	payload, err := json.Marshal(&c)
	if err != nil {
		return "", fmt.Errorf("edge identity claims: %w", err)
	}
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(s.header)+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(ed25519.SignatureSize))
	buf = append(buf, s.header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	sig := ed25519.Sign(s.key, buf)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), nil
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of an Ed25519 public key,
// base64url: the key id of the edge's keys.
func Thumbprint(pub ed25519.PublicKey) (string, error) {
	k, err := jwk.Import(pub)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// PublicJWKS renders the public keys as a JWKS document (for
// EDGE_IDENTITY_JWKS_FILE; two keys during a rotation).
func PublicJWKS(pubs ...ed25519.PublicKey) ([]byte, error) {
	set := jwk.NewSet()
	for _, p := range pubs {
		k, err := jwk.Import(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
		}
		kid, err := Thumbprint(p)
		if err != nil {
			return nil, err
		}
		_ = k.Set(jwk.KeyIDKey, kid)
		_ = k.Set(jwk.AlgorithmKey, "EdDSA")
		_ = k.Set(jwk.KeyUsageKey, "sig")
		if err := set.AddKey(k); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
		}
	}
	return json.MarshalIndent(set, "", "  ")
}

// Verifier checks assertions for one service.
type Verifier struct {
	keys *jwtauth.StaticKeys
	aud  string
	now  func() time.Time
}

// NewVerifier verifies assertions addressed to aud with the keys of a JWKS
// document (the edge's public keys; every key must be Ed25519).
func NewVerifier(jwks []byte, aud string, now func() time.Time) (*Verifier, error) {
	if aud == "" {
		return nil, fmt.Errorf("%w: the service name (aud) is required", ErrInvalidKey)
	}
	keys, err := jwtauth.ParseJWKS(jwks)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	if now == nil {
		now = time.Now
	}
	return &Verifier{keys: keys, aud: aud, now: now}, nil
}

// LoadVerifier reads the JWKS file (EDGE_IDENTITY_JWKS_FILE).
func LoadVerifier(path, aud string) (*Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot read %s", ErrInvalidKey, path)
	}
	return NewVerifier(b, aud, nil)
}

var onlyEdDSA = []string{"EdDSA"}

// maxAssertion bounds what is parsed (an Identity with many roles is a few
// KiB).
const maxAssertion = 16 << 10

// Verify checks an assertion for a request with this method and path and
// returns its identity. Every failure wraps ErrRejected with the check's
// name.
func (v *Verifier) Verify(assertion, method, path string) (*identity.Identity, error) {
	c, err := v.VerifyClaims(assertion, method, path)
	if err != nil {
		return nil, err
	}
	return &c.Identity, nil
}

// VerifyClaims is Verify returning every verified claim (the identity and
// the client address among them).
func (v *Verifier) VerifyClaims(assertion, method, path string) (*Claims, error) {
	reject := func(why string) (*Claims, error) {
		return nil, fmt.Errorf("%w: %s", ErrRejected, why)
	}
	if assertion == "" {
		return reject("missing")
	}
	if len(assertion) > maxAssertion {
		return reject("too large")
	}
	if _, r := v.keys.VerifySignature(assertion, onlyEdDSA); r != "" {
		return reject(string(r))
	}
	payload := assertion[strings.IndexByte(assertion, '.')+1 : strings.LastIndexByte(assertion, '.')]
	raw, err := base64.RawURLEncoding.Strict().DecodeString(payload)
	if err != nil {
		return reject("payload")
	}
	var c Claims
	if err := json.Unmarshal(raw, &c); err != nil {
		return reject("claims")
	}
	now := v.now()
	switch {
	case c.Iss != Issuer:
		return reject("issuer")
	case c.Aud != v.aud:
		return reject("audience")
	case c.Htm != method:
		return reject("method")
	case c.Htu != path:
		return reject("path")
	case now.Add(-Skew).Unix() >= c.Exp:
		return reject("expired")
	case c.Iat > now.Add(Skew).Unix() || c.Exp-c.Iat > int64((Lifetime+Skew)/time.Second):
		return reject("lifetime")
	case c.Identity.Subject == "" || c.Jti == "":
		return reject("claims")
	case c.Cip != "" && !canonicalAddr(c.Cip):
		return reject("client address")
	}
	return &c, nil
}

// canonicalAddr reports whether s is an IP address in the form SignClient
// writes: canonical text, not IPv4-mapped, no zone.
func canonicalAddr(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && !a.Is4In6() && a.Zone() == "" && a.String() == s
}

// WriteKeyFiles generates a new Ed25519 signing key and writes it as PEM
// PKCS#8 to keyPath (mode 0600; the edge's edge_signing_key_file) and its
// public JWKS to jwksPath (mode 0644; the services' EDGE_IDENTITY_JWKS_FILE).
// Existing files are not overwritten.
func WriteKeyFiles(keyPath, jwksPath string) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate edge identity key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	jwks, err := PublicJWKS(pub)
	if err != nil {
		return err
	}
	if err := writeNew(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return writeNew(jwksPath, jwks, 0o644)
}

func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
