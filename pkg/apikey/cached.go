package apikey

import (
	"crypto/sha256"

	"github.com/edgeguard/edgeguard/pkg/identity"
)

// Cached returns the identity of k when the in-process cache holds a fresh
// valid entry for it — the same first step as Validate, without a client
// address. Callers that pay for learning the client address (the Kong plugin:
// one PDK round trip) ask Cached first and call Validate only on a miss. It
// does not allocate.
func (v *Validator) Cached(k Key) (*identity.Identity, bool) {
	if k.p == nil {
		return nil, false
	}
	var buf [MaxLen]byte
	h := sha256.Sum256(buf[:copy(buf[:], k.Secret())])
	if e := v.cache.get(&h); e != nil && e.id != nil && v.hitNow() < e.fresh {
		return e.id, true
	}
	return nil, false
}
