package jwtauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"
	"slices"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// alg identifies one JWS algorithm the edge can verify.
type alg uint8

const (
	algInvalid alg = iota
	algRS256
	algRS384
	algRS512
	algPS256
	algPS384
	algPS512
	algES256
	algES384
	algES512
	algEdDSA
)

var algNames = [...]string{"", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

func (a alg) String() string { return algNames[a] }

// algByName maps a JWS alg name to an alg. "none", HS* and anything unknown
// are not algorithms the edge can ever accept.
func algByName(name string) (alg, bool) {
	for i := 1; i < len(algNames); i++ {
		if algNames[i] == name {
			return alg(i), true
		}
	}
	return algInvalid, false
}

// algFromBytes is algByName without a string allocation.
func algFromBytes(b []byte) alg {
	for i := 1; i < len(algNames); i++ {
		if string(b) == algNames[i] {
			return alg(i)
		}
	}
	return algInvalid
}

func (a alg) hash() crypto.Hash {
	switch a {
	case algRS256, algPS256, algES256:
		return crypto.SHA256
	case algRS384, algPS384, algES384:
		return crypto.SHA384
	case algRS512, algPS512, algES512:
		return crypto.SHA512
	}
	return 0
}

// algSet is a bitmask of allowed algorithms.
type algSet uint16

func (s algSet) has(a alg) bool { return a != algInvalid && s&(1<<a) != 0 }

func newAlgSet(names []string) algSet {
	var s algSet
	for _, n := range names {
		if a, ok := algByName(n); ok {
			s |= 1 << a
		}
	}
	return s
}

// keyFamily is the kind of public key, which fixes the algorithms it can
// verify (RFC 7518): an RSA key never verifies an EC signature, P-256 only
// ES256, and so on.
type keyFamily uint8

const (
	famRSA keyFamily = iota + 1
	famP256
	famP384
	famP521
	famEd25519
)

// minRSABits is the smallest RSA modulus accepted in a JWKS.
const minRSABits = 2048

// Key is one signature verification key from a JWKS.
type Key struct {
	ID     string
	family keyFamily
	// alg is the JWK's own "alg" when it declares one; the token's alg must
	// then match it exactly.
	alg alg
	rsa *rsa.PublicKey
	ec  *ecdsa.PublicKey
	ed  ed25519.PublicKey
}

// allows reports whether the key may verify a token signed with a.
func (k *Key) allows(a alg) bool {
	if k.alg != algInvalid && k.alg != a {
		return false
	}
	switch a {
	case algRS256, algRS384, algRS512, algPS256, algPS384, algPS512:
		return k.family == famRSA
	case algES256:
		return k.family == famP256
	case algES384:
		return k.family == famP384
	case algES512:
		return k.family == famP521
	case algEdDSA:
		return k.family == famEd25519
	}
	return false
}

// errSkipKey marks a JWK that is valid JSON but not a signature key the
// edge uses (encryption keys, symmetric keys, unsupported curves).
var errSkipKey = errors.New("not a usable signature key")

// keyFromJWK converts a jwx key into a Key, enforcing use/key_ops/alg.
func keyFromJWK(k jwk.Key) (*Key, error) {
	kid, _ := k.KeyID()
	if kid == "" {
		return nil, fmt.Errorf("%w: no kid", errSkipKey)
	}
	if use, ok := k.KeyUsage(); ok && use != "sig" {
		return nil, fmt.Errorf("%w: use %q", errSkipKey, use)
	}
	if ops, ok := k.KeyOps(); ok && len(ops) > 0 && !slices.Contains(ops, jwk.KeyOpVerify) {
		return nil, fmt.Errorf("%w: key_ops without verify", errSkipKey)
	}
	out := &Key{ID: kid}
	if a, ok := k.Algorithm(); ok && a.String() != "" {
		aa, known := algByName(a.String())
		if !known {
			return nil, fmt.Errorf("%w: alg %q", errSkipKey, a.String())
		}
		out.alg = aa
	}
	var raw any
	if err := jwk.Export(k, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", errSkipKey, err)
	}
	return keyFromRaw(out, raw)
}

// keyFromRaw fills out from a raw public key (a private one is reduced to
// its public half).
func keyFromRaw(out *Key, raw any) (*Key, error) {
	switch pub := raw.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("%w: RSA modulus of %d bits", errSkipKey, pub.N.BitLen())
		}
		if pub.E < 3 || pub.E%2 == 0 {
			return nil, fmt.Errorf("%w: RSA exponent", errSkipKey)
		}
		out.family, out.rsa = famRSA, pub
	case *rsa.PrivateKey: // a JWKS should never carry private keys; only the public half is used
		return keyFromRaw(out, &pub.PublicKey)
	case *ecdsa.PrivateKey:
		return keyFromRaw(out, &pub.PublicKey)
	case ed25519.PrivateKey:
		return keyFromRaw(out, pub.Public())
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			out.family = famP256
		case elliptic.P384():
			out.family = famP384
		case elliptic.P521():
			out.family = famP521
		default:
			return nil, fmt.Errorf("%w: curve", errSkipKey)
		}
		out.ec = pub
	case ed25519.PublicKey:
		out.family, out.ed = famEd25519, pub
	default:
		return nil, fmt.Errorf("%w: key type %T", errSkipKey, raw)
	}
	if out.alg != algInvalid && !out.allows(out.alg) {
		return nil, fmt.Errorf("%w: alg %s does not fit the key type", errSkipKey, out.alg)
	}
	return out, nil
}

// parseJWKS parses a JWKS document into the usable signature keys by kid.
// Keys that are not usable for signatures are skipped; a kid that appears
// twice among usable keys is dropped entirely (ambiguous). It returns an
// error only when the document is not a JWKS at all.
func parseJWKS(body []byte) (map[string]*Key, []string, error) {
	set, err := jwk.Parse(body, jwk.WithIgnoreParseError(true), jwk.WithMaxKeys(64))
	if err != nil {
		return nil, nil, fmt.Errorf("parse jwks: %w", err)
	}
	keys := make(map[string]*Key, set.Len())
	dup := map[string]bool{}
	var skipped []string
	for i := 0; i < set.Len(); i++ {
		jk, ok := set.Key(i)
		if !ok {
			continue
		}
		k, err := keyFromJWK(jk)
		if err != nil {
			skipped = append(skipped, err.Error())
			continue
		}
		if _, exists := keys[k.ID]; exists || dup[k.ID] {
			dup[k.ID] = true
			delete(keys, k.ID)
			skipped = append(skipped, "duplicate kid "+k.ID)
			continue
		}
		keys[k.ID] = k
	}
	return keys, skipped, nil
}

// verify checks sig over signingInput with the key, for alg a. The caller
// has checked k.allows(a). s holds the digest buffer.
func (k *Key) verify(a alg, signingInput, sig []byte, s *scratch) bool {
	switch a {
	case algEdDSA:
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(k.ed, signingInput, sig)
	}
	h := a.hash()
	s.digest = hashInto(h, signingInput, s.digest[:0])
	digest := s.digest
	switch a {
	case algRS256, algRS384, algRS512:
		if len(sig) != k.rsa.Size() {
			return false
		}
		return rsa.VerifyPKCS1v15(k.rsa, h, digest, sig) == nil
	case algPS256, algPS384, algPS512:
		if len(sig) != k.rsa.Size() {
			return false
		}
		return rsa.VerifyPSS(k.rsa, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	case algES256, algES384, algES512:
		size := (k.ec.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(k.ec, digest, r, s)
	}
	return false
}
