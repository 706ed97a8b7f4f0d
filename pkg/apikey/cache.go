package apikey

import (
	"slices"
	"sync"

	"github.com/edgeguard/edgeguard/pkg/identity"
)

// hashKey is the cache key: SHA-256 of the whole key. Never the raw key (a
// heap dump must not reveal keys) and never the key id (public: a forged key
// carrying a victim's id would hit the victim's entry).
type hashKey = [32]byte

// entry is one cached answer of the validator. Entries are immutable once
// stored; an update replaces the pointer.
type entry struct {
	id     *identity.Identity // nil: a rejection
	reason Reason             // the rejection (id == nil)
	kid    string             // the validated key id (positive entries)
	fresh  int64              // unix ns: served until
	stale  int64              // unix ns: positive entries served while the validator fails, until
}

// dead reports whether the entry is of no use any more at now.
func (e *entry) dead(now int64) bool { return now >= e.fresh && now >= e.stale }

// keyCache is a bounded, sharded map from hashKey to entry with an index of
// positive entries by validated key id, for revocations.
type keyCache struct {
	shards   [cacheShards]cacheShard
	perShard int
}

const (
	cacheShards = 16
	// evictScan bounds the work of an insert into a full shard.
	evictScan = 32
)

type cacheShard struct {
	mu   sync.RWMutex
	m    map[hashKey]*entry
	kids map[string][]hashKey // positive entries by validated key id
	_    [32]byte             // keep shards' locks on separate cache lines
}

func newKeyCache(entries int) *keyCache {
	c := &keyCache{perShard: max(1, (entries+cacheShards-1)/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[hashKey]*entry, min(c.perShard, 256))
		c.shards[i].kids = make(map[string][]hashKey)
	}
	return c
}

func (c *keyCache) shard(h *hashKey) *cacheShard { return &c.shards[h[0]%cacheShards] }

// get returns the entry of h, or nil. It does not allocate.
func (c *keyCache) get(h *hashKey) *entry {
	sh := c.shard(h)
	sh.mu.RLock()
	e := sh.m[*h]
	sh.mu.RUnlock()
	return e
}

// put stores e under h unless current() is false under the shard's lock —
// the revocation epoch moved since the answer was fetched, so the answer may
// predate a revocation and must not be cached.
func (c *keyCache) put(h *hashKey, e *entry, now int64, current func() bool) bool {
	sh := c.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if !current() {
		return false
	}
	if old, ok := sh.m[*h]; ok {
		sh.unindex(h, old)
	} else if len(sh.m) >= c.perShard {
		sh.evict(now)
	}
	sh.m[*h] = e
	if e.id != nil {
		sh.kids[e.kid] = append(sh.kids[e.kid], *h)
	}
	return true
}

// evict drops, among a few entries (map iteration starts at a random one),
// the dead ones; if none was dead, one rejection among them; else one
// arbitrary entry. Rejections are cheaper to lose than valid keys, and
// anyone can make many of them.
func (sh *cacheShard) evict(now int64) {
	var neg, other *hashKey
	removed, n := false, 0
	for h, e := range sh.m {
		if e.dead(now) {
			sh.remove(&h, e)
			removed = true
		} else if e.id == nil && neg == nil {
			neg = &h
		} else if other == nil {
			other = &h
		}
		if n++; n >= evictScan {
			break
		}
	}
	if removed {
		return
	}
	if neg == nil {
		neg = other
	}
	if neg != nil {
		sh.remove(neg, sh.m[*neg])
	}
}

func (sh *cacheShard) remove(h *hashKey, e *entry) {
	delete(sh.m, *h)
	sh.unindex(h, e)
}

func (sh *cacheShard) unindex(h *hashKey, e *entry) {
	if e == nil || e.id == nil {
		return
	}
	hs := slices.DeleteFunc(sh.kids[e.kid], func(x hashKey) bool { return x == *h })
	if len(hs) == 0 {
		delete(sh.kids, e.kid)
	} else {
		sh.kids[e.kid] = hs
	}
}

// dropKID removes every positive entry whose validated key id is kid and
// returns how many.
func (c *keyCache) dropKID(kid string) int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for _, h := range sh.kids[kid] {
			delete(sh.m, h)
			n++
		}
		delete(sh.kids, kid)
		sh.mu.Unlock()
	}
	return n
}

// clear drops every entry.
func (c *keyCache) clear() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		clear(sh.m)
		clear(sh.kids)
		sh.mu.Unlock()
	}
}

func (c *keyCache) len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}
