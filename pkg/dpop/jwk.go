package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"math/big"

	"github.com/valyala/fastjson"
)

// alg is one proof algorithm.
type alg uint8

const (
	algInvalid alg = iota
	algES256
	algPS256
	algRS256
	algEdDSA
)

var algNames = [...]string{"", "ES256", "PS256", "RS256", "EdDSA"}

// algFromString maps a name to an alg: "none", HS*, anything else unknown
// is algInvalid.
func algFromString(s string) alg {
	for i := 1; i < len(algNames); i++ {
		if algNames[i] == s {
			return alg(i)
		}
	}
	return algInvalid
}

func (a alg) String() string { return algNames[a] }

// algSet is a bitmask of allowed algorithms.
type algSet uint8

func (s algSet) has(a alg) bool { return a != algInvalid && s&(1<<a) != 0 }

// minRSABits is the smallest RSA modulus of a proof key.
const minRSABits = 2048

// privateMembers are JWK members of private (or symmetric) keys (RFC 7518
// §6.2.2, §6.3.2, §6.4): a proof's jwk must be the public key only.
var privateMembers = [...]string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// publicKey is a proof's jwk.
type publicKey struct {
	ec  *ecdsa.PublicKey
	rsa *rsa.PublicKey
	ed  ed25519.PublicKey
	// canonical is the RFC 7638 input: the required members in
	// lexicographic order, no whitespace.
	canonical []byte
}

// parseJWK reads the header's jwk: a JSON object without duplicate members
// and without private members, of a key type and curve that fits a: EC
// P-256 for ES256 (the point on the curve), RSA of at least 2048 bits with
// a canonical modulus and an odd exponent for RS256/PS256, OKP Ed25519 for
// EdDSA. Its own alg, when present, must be a; its use, when present,
// "sig"; its key_ops, when present, must contain "verify".
func parseJWK(v *fastjson.Value, a alg, k *publicKey) error {
	o, err := v.Object()
	if err != nil || duplicates(o) {
		return ReasonJWKInvalid
	}
	for _, m := range privateMembers {
		if o.Get(m) != nil {
			return ReasonJWKPrivate
		}
	}
	member := func(name string) (string, bool) {
		v := o.Get(name)
		if v == nil {
			return "", false
		}
		b, err := v.StringBytes()
		return string(b), err == nil
	}
	if s, present := member("alg"); o.Get("alg") != nil && (!present || s != a.String()) {
		return ReasonJWKInvalid
	}
	if s, present := member("use"); o.Get("use") != nil && (!present || s != "sig") {
		return ReasonJWKInvalid
	}
	if ops := o.Get("key_ops"); ops != nil {
		arr, err := ops.Array()
		verify := false
		for _, op := range arr {
			if b, err := op.StringBytes(); err == nil && string(b) == "verify" {
				verify = true
			}
		}
		if err != nil || !verify {
			return ReasonJWKInvalid
		}
	}
	kty, _ := member("kty")
	switch {
	case kty == "EC" && a == algES256:
		crv, _ := member("crv")
		x, xok := member("x")
		y, yok := member("y")
		if crv != "P-256" || !xok || !yok {
			return ReasonJWKInvalid
		}
		xb, err1 := b64.DecodeString(x)
		yb, err2 := b64.DecodeString(y)
		if err1 != nil || err2 != nil || len(xb) != 32 || len(yb) != 32 {
			return ReasonJWKInvalid
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, xb...), yb...))
		if err != nil { // not on the curve
			return ReasonJWKInvalid
		}
		k.ec = pub
		k.canonical = []byte(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`)
	case kty == "RSA" && (a == algRS256 || a == algPS256):
		n, nok := member("n")
		e, eok := member("e")
		if !nok || !eok {
			return ReasonJWKInvalid
		}
		nb, err1 := b64.DecodeString(n)
		eb, err2 := b64.DecodeString(e)
		if err1 != nil || err2 != nil || len(nb) == 0 || nb[0] == 0 || len(eb) == 0 || len(eb) > 4 || eb[0] == 0 {
			return ReasonJWKInvalid
		}
		mod := new(big.Int).SetBytes(nb)
		exp := int(new(big.Int).SetBytes(eb).Int64())
		if mod.BitLen() < minRSABits || exp < 3 || exp%2 == 0 {
			return ReasonJWKInvalid
		}
		k.rsa = &rsa.PublicKey{N: mod, E: exp}
		k.canonical = []byte(`{"e":"` + e + `","kty":"RSA","n":"` + n + `"}`)
	case kty == "OKP" && a == algEdDSA:
		crv, _ := member("crv")
		x, xok := member("x")
		if crv != "Ed25519" || !xok {
			return ReasonJWKInvalid
		}
		xb, err := b64.DecodeString(x)
		if err != nil || len(xb) != ed25519.PublicKeySize {
			return ReasonJWKInvalid
		}
		k.ed = ed25519.PublicKey(xb)
		k.canonical = []byte(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`)
	default:
		return ReasonJWKInvalid
	}
	return nil
}

// thumbprint is the key's RFC 7638 SHA-256 thumbprint, base64url: what a
// bound token carries as cnf.jkt.
func (k *publicKey) thumbprint() string {
	sum := sha256.Sum256(k.canonical)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// verify checks sig over input for a (the key fits a: parseJWK).
func (k *publicKey) verify(a alg, input, sig []byte) bool {
	switch a {
	case algEdDSA:
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(k.ed, input, sig)
	case algES256:
		if len(sig) != 64 {
			return false
		}
		d := sha256.Sum256(input)
		return ecdsa.Verify(k.ec, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
	case algRS256:
		d := sha256.Sum256(input)
		return len(sig) == k.rsa.Size() && rsa.VerifyPKCS1v15(k.rsa, crypto.SHA256, d[:], sig) == nil
	case algPS256:
		d := sha256.Sum256(input)
		return len(sig) == k.rsa.Size() &&
			rsa.VerifyPSS(k.rsa, crypto.SHA256, d[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	}
	return false
}
