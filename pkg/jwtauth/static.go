package jwtauth

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// StaticKeys is a JWKS loaded once (from a file), for offline checks.
type StaticKeys struct {
	keys map[string]*Key
}

// ParseJWKS parses a JWKS document into its usable signature keys. Keys that
// cannot verify signatures (use enc, symmetric, RSA < 2048 bits, unknown
// curves) are skipped; a document with none left is an error.
func ParseJWKS(doc []byte) (*StaticKeys, error) {
	keys, skipped, err := parseJWKS(doc)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("jwks has no usable signature keys (%s)", strings.Join(skipped, "; "))
	}
	return &StaticKeys{keys: keys}, nil
}

// Len is the number of usable keys.
func (k *StaticKeys) Len() int { return len(k.keys) }

// SignatureInfo describes a compact JWS whose signature was checked.
type SignatureInfo struct {
	KID string
	Alg string
}

// VerifySignature checks only the JWS signature of token — compact form,
// header rules (alg in algorithms, or DefaultAlgorithms if empty; no
// jku/x5u/jwk/x5c/crit; typ JWT or at+jwt), the key of kid and its fit with
// alg — and no claims. The payload must still be valid base64url; it may
// be empty (RFC 7515 signs zero bytes as well as claims: "header..sig"),
// which Verifier.Verify, checking an access token's claims, never accepts.
// The info is filled as far as the header could be read.
func (k *StaticKeys) VerifySignature(token string, algorithms []string) (SignatureInfo, Reason) {
	if len(algorithms) == 0 {
		algorithms = DefaultAlgorithms
	}
	for _, a := range algorithms {
		if _, ok := algByName(a); !ok {
			return SignatureInfo{}, ReasonAlgNotAllowed
		}
	}
	if len(token) > 1<<20 {
		return SignatureInfo{}, ReasonTooLarge
	}
	s := getScratch()
	defer putScratch(s)
	sig, err := parseToken(s, token, newAlgSet(algorithms), true)
	info := SignatureInfo{KID: string(s.hdrFields.kid), Alg: s.hdrFields.alg.String()}
	if err != nil {
		return info, ReasonOf(err)
	}
	key := k.keys[info.KID]
	if key == nil {
		return info, ReasonUnknownKID
	}
	if !key.allows(s.hdrFields.alg) {
		return info, ReasonKeyAlgMismatch
	}
	if !key.verify(s.hdrFields.alg, s.signing, sig, s) {
		return info, ReasonSignature
	}
	return info, ""
}

// staticKeySet is a KeySet that never fetches: its keys are always usable.
func staticKeySet(issuer string, k *StaticKeys, cfg keySetConfig) *KeySet {
	cfg.maxStale = 1<<63 - 1
	ks := newKeySet(issuer, "", cfg)
	ks.state.Store(&keyState{keys: k.keys, fetched: time.Unix(0, 0), staleAt: math.MaxInt64})
	ks.lastAttempt = time.Unix(1<<40, 0) // no refresh is ever "allowed"
	return ks
}
