package jwtauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"

	"github.com/edgeguard/edgeguard/pkg/coarseclock"
	"github.com/edgeguard/edgeguard/pkg/identity"
)

// Verifier verifies access tokens for one configuration. It is safe for
// concurrent use. Build one with New (owning its key sets) or Shared
// (process-wide, keyed by configuration — what the Kong plugins use, since
// Kong creates a new plugin instance on every config change).
type Verifier struct {
	cfg    Config
	hitNow func() int64 // Unix nanoseconds: coarseclock.NowNanos unless a clock is injected
	algs   algSet
	keys   map[string]*KeySet // by issuer
	cache  *tokenCache
	owned  []*KeySet
}

// New validates cfg and returns a Verifier with its own key sets, which
// start fetching in the background at once. Close stops them.
func New(cfg Config) (*Verifier, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := build(cfg, func(is Issuer) *KeySet {
		if is.Keys != nil {
			return staticKeySet(is.Issuer, is.Keys, cfg.keySetConfig())
		}
		ks := newKeySet(is.Issuer, is.JWKSURL, cfg.keySetConfig())
		ks.start()
		return ks
	})
	for _, ks := range v.keys {
		v.owned = append(v.owned, ks)
	}
	return v, nil
}

func build(cfg Config, keySet func(Issuer) *KeySet) *Verifier {
	v := &Verifier{cfg: cfg, hitNow: func() int64 { return cfg.Now().UnixNano() }, algs: newAlgSet(cfg.Algorithms), keys: map[string]*KeySet{}}
	if cfg.realClock {
		v.hitNow = coarseclock.NowNanos
	}
	for _, is := range cfg.Issuers {
		v.keys[is.Issuer] = keySet(is)
	}
	if cfg.CacheEntries > 0 {
		v.cache = newTokenCache(cfg.CacheEntries)
	}
	return v
}

// Close stops the background refresh of the key sets the Verifier owns
// (shared verifiers are never closed).
func (v *Verifier) Close() {
	for _, ks := range v.owned {
		ks.Close()
	}
}

// KeySet returns the key set of an issuer (nil if not configured).
func (v *Verifier) KeySet(issuer string) *KeySet { return v.keys[issuer] }

// Ready reports whether every issuer has a usable key set.
func (v *Verifier) Ready() bool {
	now := v.cfg.Now()
	for _, ks := range v.keys {
		if !ks.usable(ks.state.Load(), now) {
			return false
		}
	}
	return true
}

// Verify checks token and returns its identity, or a Reason (as the error)
// when the token is rejected. The returned Identity may be shared with other
// callers: do not modify it. A cache hit does not allocate.
//
// Checks, in order: size; compact form; protected header (alg allowlist, no
// jku/x5u/jwk/x5c/crit, typ JWT or at+jwt, kid); claims (iss, exp, nbf, iat,
// typ "Bearer", aud, azp, sub) — cheap and before any key lookup; the key of
// kid from the issuer's JWKS, which must fit alg; the signature.
func (v *Verifier) Verify(ctx context.Context, token string) (*identity.Identity, error) {
	if len(token) > v.cfg.MaxTokenBytes {
		return nil, ReasonTooLarge
	}
	if v.cache != nil {
		if id := v.cache.get(token, v.hitNow()); id != nil {
			return id, nil
		}
	}
	now := v.cfg.Now()
	s := getScratch()
	defer putScratch(s)
	sig, err := parseToken(s, token, v.algs, false) // claims required: never an empty payload
	if err != nil {
		return nil, err
	}
	if !parseClaims(&s.pp, s.payload, &s.claims) {
		return nil, ReasonMalformed
	}
	c := &s.claims
	ks := v.keys[string(c.iss)]
	if ks == nil {
		return nil, ReasonIssuer
	}
	if err := v.checkClaims(c, now); err != nil {
		return nil, err
	}
	st := ks.state.Load() // before the lookup: a refresh in between only costs a map check on hits
	key, err := ks.lookup(ctx, s.hdrFields.kid)
	if err != nil {
		return nil, err
	}
	if !key.allows(s.hdrFields.alg) {
		return nil, ReasonKeyAlgMismatch
	}
	if !key.verify(s.hdrFields.alg, s.signing, sig, s) {
		return nil, ReasonSignature
	}
	id := identityFrom(c, s)
	if v.cache != nil {
		v.cache.put(token, &cacheEntry{id: id, exp: int64(c.exp), ks: ks, key: key, st: st}, now)
	}
	return id, nil
}

// parseToken checks the compact form and the protected header and decodes
// the payload into s.payload (an empty payload segment only with
// emptyPayload); it returns the decoded signature. Like every
// internal check it returns Reason constants as error values: converting a
// constant to an interface does not allocate, a variable would.
func parseToken(s *scratch, token string, algs algSet, emptyPayload bool) ([]byte, error) {
	d1, d2, ok := splitCompact(token, emptyPayload)
	if !ok {
		return nil, ReasonMalformed
	}
	s.raw = append(s.raw[:0], token...)
	s.signing = s.raw[:d2]
	if s.header, ok = decodeInto(s.header, s.signing[:d1]); !ok {
		return nil, ReasonMalformed
	}
	h := &s.hdrFields
	if !parseHeader(&s.hp, s.header, h) || h.badValue {
		return nil, ReasonMalformed
	}
	if h.forbids {
		return nil, ReasonHeaderNotAllowed
	}
	if !algs.has(h.alg) {
		return nil, ReasonAlgNotAllowed
	}
	if h.hasTyp && !headerTypOK(h.typ) {
		return nil, ReasonTokenType
	}
	if len(h.kid) == 0 || len(h.kid) > 256 {
		return nil, ReasonUnknownKID
	}
	if s.payload, ok = decodeInto(s.payload, s.signing[d1+1:]); !ok {
		return nil, ReasonMalformed
	}
	if s.sig, ok = decodeInto(s.sig, s.raw[d2+1:]); !ok {
		return nil, ReasonMalformed
	}
	return s.sig, nil
}

// fingerprint identifies a configuration for the process-wide registry and
// for the verified-token cache's scope.
func (c *Config) fingerprint() string {
	var b strings.Builder
	for _, is := range c.Issuers {
		fmt.Fprintf(&b, "iss=%q jwks=%q static=%p;", is.Issuer, is.JWKSURL, is.Keys)
	}
	fmt.Fprintf(&b, "aud=%q azp=%q algs=%q leeway=%d max=%d refresh=%d min=%d stale=%d timeout=%d cache=%d",
		c.Audiences, c.AllowedAZP, c.Algorithms, c.Leeway, c.MaxTokenBytes, c.RefreshInterval,
		c.MinRefreshInterval, c.MaxStale, c.FetchTimeout, c.CacheEntries)
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

var registry = struct {
	sync.Mutex
	verifiers map[string]*Verifier
	keySets   map[string]*KeySet
}{verifiers: map[string]*Verifier{}, keySets: map[string]*KeySet{}}

// Shared returns the process-wide Verifier for cfg, creating it on first
// use. Verifiers are keyed by configuration (so each has its own token
// cache); key sets are shared by every verifier that uses the same issuer,
// JWKS URL and refresh settings, so a config change does not refetch keys.
// HTTPClient, Now and Logger of the first caller win.
func Shared(cfg Config) (*Verifier, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	fp := cfg.fingerprint()
	registry.Lock()
	defer registry.Unlock()
	if v := registry.verifiers[fp]; v != nil {
		return v, nil
	}
	ksc := cfg.keySetConfig()
	v := build(cfg, func(is Issuer) *KeySet {
		if is.Keys != nil {
			return staticKeySet(is.Issuer, is.Keys, ksc)
		}
		k := fmt.Sprintf("%q %q %d %d %d %d", is.Issuer, is.JWKSURL, ksc.refresh, ksc.minRefresh, ksc.maxStale, ksc.fetchTimeout)
		ks := registry.keySets[k]
		if ks == nil {
			ks = newKeySet(is.Issuer, is.JWKSURL, ksc)
			ks.start()
			registry.keySets[k] = ks
		}
		return ks
	})
	registry.verifiers[fp] = v
	return v, nil
}

// SharedKeySets returns every process-wide key set (for metrics).
func SharedKeySets() []*KeySet {
	registry.Lock()
	defer registry.Unlock()
	out := make([]*KeySet, 0, len(registry.keySets))
	for _, ks := range registry.keySets {
		out = append(out, ks)
	}
	return out
}
