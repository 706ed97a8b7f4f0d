package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"
)

// Nonces issues and checks server nonces (RFC 9449 §8–9) without state: a
// nonce is its issue time and an HMAC of it under a key every edge node
// shares, so a nonce one node issued is valid on all of them until it is
// Lifetime old. Nonces are not single-use (jti is); they bound how long a
// proof made in advance can be used.
type Nonces struct {
	key      []byte
	lifetime time.Duration
	now      func() time.Time
}

// Nonce bounds.
const (
	DefaultNonceLifetime = 5 * time.Minute
	MinNonceKeyBytes     = 32
	nonceBytes           = 8 + 16 // issue time (Unix seconds) + truncated HMAC-SHA-256
)

// NewNonces returns a nonce source keyed by key (at least MinNonceKeyBytes
// bytes: a secret shared by every edge node), with nonces valid for
// lifetime (0: DefaultNonceLifetime; 10 s..1 h). now nil is time.Now.
func NewNonces(key []byte, lifetime time.Duration, now func() time.Time) (*Nonces, error) {
	if len(key) < MinNonceKeyBytes {
		return nil, fmt.Errorf("%w: the nonce key must have at least %d bytes", ErrInvalidConfig, MinNonceKeyBytes)
	}
	if lifetime == 0 {
		lifetime = DefaultNonceLifetime
	}
	if lifetime < 10*time.Second || lifetime > time.Hour {
		return nil, fmt.Errorf("%w: nonce lifetime %s outside 10s..1h", ErrInvalidConfig, lifetime)
	}
	if now == nil {
		now = time.Now
	}
	mac := hmac.New(sha256.New, []byte("edgeguard dpop nonce v1"))
	mac.Write(key) // the key as given is never used directly
	return &Nonces{key: mac.Sum(nil), lifetime: lifetime, now: now}, nil
}

func (n *Nonces) mac(issued uint64) []byte {
	var t [8]byte
	binary.BigEndian.PutUint64(t[:], issued)
	m := hmac.New(sha256.New, n.key)
	m.Write(t[:])
	return append(t[:], m.Sum(nil)[:16]...)
}

// Issue returns a nonce issued now (base64url, 32 characters).
func (n *Nonces) Issue() string {
	return b64.EncodeToString(n.mac(uint64(n.now().Unix())))
}

// Valid reports whether nonce was issued by a node with this key, at most
// Lifetime ago (and not more than FutureSkew ahead).
func (n *Nonces) Valid(nonce string) bool {
	raw, err := b64.DecodeString(nonce)
	if err != nil || len(raw) != nonceBytes {
		return false
	}
	issued := binary.BigEndian.Uint64(raw[:8])
	if !hmac.Equal(n.mac(issued), raw) {
		return false
	}
	now := n.now()
	t := time.Unix(int64(issued&(1<<62-1)), 0)
	return issued < 1<<62 && !t.After(now.Add(FutureSkew)) && now.Sub(t) < n.lifetime
}
