package jwtauth

import (
	"strings"
	"sync"
	"time"

	"github.com/edgeguard/edgeguard/pkg/identity"
)

// tokenCache holds verified tokens of ONE verifier (so an entry is, in
// effect, keyed by the verifier's configuration and the token: a token
// accepted for one audience is never a hit for another). An entry lives until
// the token's exp, never longer, and only while the key that verified it is
// still in a usable key set.
//
// Lookups hash only the last tailLen characters of the token (the end of its
// signature: 258 bits of a value no one can choose without the IdP's key)
// and then compare the WHOLE token, so a hit is exactly the token that was
// verified. Hashing a 1–2 KB Keycloak token as a map key would cost more
// than the rest of the hit path together.
type tokenCache struct {
	shards   [cacheShards]cacheShard
	perShard int
}

const (
	cacheShards = 16
	tailLen     = 43
)

type cacheShard struct {
	mu sync.RWMutex
	m  map[string]*cacheEntry
	_  [40]byte // keep shards on separate cache lines
}

type cacheEntry struct {
	token string // the whole token; the map key is its tail
	id    *identity.Identity
	exp   int64 // unix seconds: the token's exp, no leeway
	ks    *KeySet
	key   *Key
	st    *keyState // the key set the token was verified under
}

// valid reports whether the entry may still be served at nowNanos (Unix
// nanoseconds): before exp, and its key still in a usable key set (a
// pointer compare while the key set has not changed since the token was
// verified). Integer compares only: this is the cache-hit path.
func (e *cacheEntry) valid(nowNanos int64) bool {
	if nowNanos >= e.exp*1e9 {
		return false
	}
	st := e.ks.state.Load()
	if !usableAt(st, nowNanos) {
		return false
	}
	return st == e.st || st.keys[e.key.ID] == e.key
}

func newTokenCache(entries int) *tokenCache {
	c := &tokenCache{perShard: max(1, entries/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*cacheEntry, min(c.perShard, 256))
	}
	return c
}

func tail(token string) string {
	if len(token) <= tailLen {
		return token
	}
	return token[len(token)-tailLen:]
}

func (c *tokenCache) shard(t string) *cacheShard {
	return &c.shards[t[len(t)-1]%cacheShards]
}

// get returns the cached identity or nil at nowNanos (Unix nanoseconds).
// It does not allocate.
func (c *tokenCache) get(token string, nowNanos int64) *identity.Identity {
	if token == "" {
		return nil
	}
	t := tail(token)
	sh := c.shard(t)
	sh.mu.RLock()
	e := sh.m[t]
	sh.mu.RUnlock()
	if e == nil || e.token != token || !e.valid(nowNanos) {
		return nil
	}
	return e.id
}

// evictScan bounds the work an insert into a full shard does.
const evictScan = 32

func (c *tokenCache) put(token string, e *cacheEntry, now time.Time) {
	e.token = strings.Clone(token) // never retain a caller's buffer
	t := tail(e.token)
	sh := c.shard(t)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(sh.m) >= c.perShard {
		// Map iteration starts at a random element: drop expired entries
		// among a few, else one arbitrary entry (random eviction).
		n, removed := 0, false
		for k, v := range sh.m {
			if !v.valid(now.UnixNano()) {
				delete(sh.m, k)
				removed = true
			}
			if n++; n >= evictScan {
				break
			}
		}
		if !removed {
			for k := range sh.m {
				delete(sh.m, k)
				break
			}
		}
	}
	sh.m[t] = e
}

func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}
