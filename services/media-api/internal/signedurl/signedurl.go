// Package signedurl makes and checks the capability URLs of media downloads:
// /v1/media/{id}/content?exp=<unix seconds>&sig=<base64url HMAC-SHA-256>,
// the HMAC taken with the service's URL signing key over a domain prefix,
// the id and the expiry. Whoever holds such a URL may download that one
// object until exp; nothing else is granted.
//
// It is not an authentication scheme for anything else, and it does not
// revoke: a URL stays valid until it expires unless the object is deleted.
package signedurl

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// MinKeyLen is the shortest signing key accepted.
const MinKeyLen = 32

// sigLen is the length of an encoded signature (32 bytes, base64url without
// padding).
const sigLen = 43

// domain separates these MACs from any other use of the key.
const domain = "edgeguard/media-api/download-url/v1\x00"

// Errors.
var (
	// ErrInvalid: a malformed, tampered or foreign signature, or an expiry
	// that is not a number or lies beyond the longest lifetime.
	ErrInvalid = errors.New("signed url invalid")
	// ErrExpired: the expiry has passed.
	ErrExpired = errors.New("signed url expired")
)

// Signer signs and verifies download URLs.
type Signer struct {
	key    []byte
	ttl    time.Duration
	maxTTL time.Duration
	now    func() time.Time
}

// New returns a Signer: URLs live ttl; a URL whose expiry lies more than
// maxTTL (≥ ttl) in the future is refused as invalid, so shortening the TTL
// also shortens URLs already handed out. now defaults to time.Now.
func New(key []byte, ttl, maxTTL time.Duration, now func() time.Time) (*Signer, error) {
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("signedurl: key of %d bytes, at least %d required", len(key), MinKeyLen)
	}
	if ttl < time.Second || maxTTL < ttl {
		return nil, errors.New("signedurl: ttl must be ≥ 1 s and ≤ maxTTL")
	}
	if now == nil {
		now = time.Now
	}
	return &Signer{key: append([]byte(nil), key...), ttl: ttl, maxTTL: maxTTL, now: now}, nil
}

// String never prints the key.
func (s *Signer) String() string { return "signedurl.Signer{key:true}" }

func (s *Signer) mac(id string, exp int64) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(domain))
	m.Write([]byte(id))
	m.Write([]byte{0})
	m.Write(strconv.AppendInt(nil, exp, 10))
	return m.Sum(nil)
}

// Sign returns the query values exp and sig for id, valid for the TTL.
func (s *Signer) Sign(id string) (exp int64, sig string, expires time.Time) {
	expires = s.now().Add(s.ttl).Truncate(time.Second)
	exp = expires.Unix()
	return exp, base64.RawURLEncoding.EncodeToString(s.mac(id, exp)), expires
}

// Verify checks the exp and sig query values for id: ErrInvalid or
// ErrExpired, nil when valid. The MAC is compared in constant time; the
// expiry is checked after the signature, so an invalid URL never learns
// anything about time.
func (s *Signer) Verify(id, exp, sig string) error {
	if len(sig) != sigLen || len(exp) == 0 || len(exp) > 12 {
		return ErrInvalid
	}
	e, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || e <= 0 || strconv.FormatInt(e, 10) != exp {
		return ErrInvalid // only the canonical form is signed
	}
	got, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(id, e)) {
		return ErrInvalid
	}
	now := s.now()
	if now.Unix() >= e {
		return ErrExpired
	}
	if time.Unix(e, 0).Sub(now) > s.maxTTL+time.Minute {
		return ErrInvalid
	}
	return nil
}
