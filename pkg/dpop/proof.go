package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"
)

// Key makes proofs with one private key: what a client (edgectl) holds.
// It prints as "dpop key <thumbprint>", never the key.
type Key struct {
	signer crypto.Signer
	alg    alg
	jwk    json.RawMessage // public members only
	jkt    string
}

// ErrKey is wrapped by NewKey's errors.
var ErrKey = errors.New("dpop key")

// NewKey wraps a private key: ECDSA P-256 (ES256), Ed25519 (EdDSA) or RSA
// of at least 2048 bits (PS256).
func NewKey(signer crypto.Signer) (*Key, error) {
	k := &Key{signer: signer}
	var members map[string]string
	switch pub := signer.Public().(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: only the P-256 curve", ErrKey)
		}
		raw, err := pub.Bytes() // 0x04 || x || y
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrKey, err)
		}
		k.alg = algES256
		members = map[string]string{"kty": "EC", "crv": "P-256", "x": b64.EncodeToString(raw[1:33]), "y": b64.EncodeToString(raw[33:])}
	case ed25519.PublicKey:
		k.alg = algEdDSA
		members = map[string]string{"kty": "OKP", "crv": "Ed25519", "x": b64.EncodeToString(pub)}
	case *rsa.PublicKey:
		if pub.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("%w: RSA keys of at least %d bits", ErrKey, minRSABits)
		}
		k.alg = algPS256
		members = map[string]string{"kty": "RSA", "n": b64.EncodeToString(pub.N.Bytes()),
			"e": b64.EncodeToString(big.NewInt(int64(pub.E)).Bytes())}
	default:
		return nil, fmt.Errorf("%w: unsupported key type %T", ErrKey, pub)
	}
	k.jwk, _ = json.Marshal(members) // map keys sorted: the RFC 7638 form for these members
	sum := sha256.Sum256(k.jwk)
	k.jkt = b64.EncodeToString(sum[:])
	return k, nil
}

// GenerateKey makes a new P-256 key (what edgectl uses).
func GenerateKey() (*Key, *ecdsa.PrivateKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	k, err := NewKey(priv)
	return k, priv, err
}

// Thumbprint is the key's RFC 7638 thumbprint: the cnf.jkt of tokens bound
// to it.
func (k *Key) Thumbprint() string { return k.jkt }

// Algorithm is the proofs' alg.
func (k *Key) Algorithm() string { return k.alg.String() }

// PublicJWK is the public key as a JWK (JSON).
func (k *Key) PublicJWK() json.RawMessage { return k.jwk }

// String never shows the key.
func (k *Key) String() string { return "dpop key " + k.jkt }

// GoString never shows the key.
func (k *Key) GoString() string { return k.String() }

// ProofOptions are a proof's optional claims.
type ProofOptions struct {
	// AccessToken, when set, adds ath (requests to a resource server; not
	// to the token endpoint).
	AccessToken string
	// Nonce is the server's last DPoP-Nonce, if any.
	Nonce string
	// Now is the proof's iat (zero: time.Now).
	Now time.Time
}

// Proof returns a proof for one request: htm method, htu rawURL without
// its query and fragment, a random jti, iat now.
func (k *Key) Proof(method, rawURL string, o ProofOptions) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("dpop proof: %q is not an absolute URL", rawURL)
	}
	u.RawQuery, u.Fragment, u.RawFragment, u.ForceQuery = "", "", "", false
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("dpop proof: %w", err)
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	claims := map[string]any{"jti": b64.EncodeToString(jti[:]), "htm": method, "htu": u.String(), "iat": now.Unix()}
	if o.AccessToken != "" {
		claims["ath"] = TokenHash(o.AccessToken)
	}
	if o.Nonce != "" {
		claims["nonce"] = o.Nonce
	}
	header := map[string]any{"typ": "dpop+jwt", "alg": k.alg.String(), "jwk": k.jwk}
	return k.sign(header, claims)
}

// sign builds a compact JWS of header and claims signed with k.
func (k *Key) sign(header, claims any) (string, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("dpop proof: %w", err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("dpop proof: %w", err)
	}
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	var sig []byte
	switch k.alg {
	case algEdDSA:
		sig, err = k.signer.Sign(rand.Reader, []byte(input), crypto.Hash(0))
	case algES256:
		d := sha256.Sum256([]byte(input))
		var der []byte
		if der, err = k.signer.Sign(rand.Reader, d[:], crypto.SHA256); err == nil {
			sig, err = derToRaw(der)
		}
	case algPS256:
		d := sha256.Sum256([]byte(input))
		sig, err = k.signer.Sign(rand.Reader, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
	}
	if err != nil {
		return "", fmt.Errorf("dpop proof: sign: %w", err)
	}
	return input + "." + b64.EncodeToString(sig), nil
}

// derToRaw turns an ASN.1 ECDSA P-256 signature into JWS's r || s.
func derToRaw(der []byte) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &sig); err != nil {
		return nil, err
	}
	out := make([]byte, 64)
	sig.R.FillBytes(out[:32])
	sig.S.FillBytes(out[32:])
	return out, nil
}
