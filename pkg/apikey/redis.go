package apikey

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/redis/go-redis/v9"
)

// The shared layer in Redis (Config.Redis):
//
//	<prefix>k:<hex sha256(key)>   JSON sharedEntry, PX = the entry's remaining TTL
//	<prefix>kid:<kid>             SET of the hex hashes of valid entries of kid (for revocation)
//	<prefix>fail:{<client>}:<n>   the shared failure count (pkg/ratelimit's GCRA)
//
// Like the in-process cache it is keyed by the SHA-256 of the whole key, never
// the raw key or the key id. Whoever can write this Redis can mint identities:
// it lives on the private network with the other edge state.

// sharedEntry is the JSON value of an entry in Redis.
type sharedEntry struct {
	Identity *identity.Identity `json:"identity,omitempty"`
	Reason   Reason             `json:"reason,omitempty"`
	Until    int64              `json:"until"` // unix ms: fresh until
}

// revocation is the message on RevocationChannel (docs/contracts.md).
type revocation struct {
	KeyID string `json:"key_id"`
	At    string `json:"at"`
}

func entryKey(prefix string, h *hashKey) string { return prefix + "k:" + hex.EncodeToString(h[:]) }
func kidKey(prefix, kid string) string          { return prefix + "kid:" + kid }

// loadShared reads h's entry from Redis (nil on a miss, an invalid value or
// an error — the validator is asked then).
func (v *Validator) loadShared(h *hashKey, k Key, now time.Time) *entry {
	ctx, cancel := context.WithTimeout(v.ctx, v.cfg.RedisTimeout)
	defer cancel()
	raw, err := v.rdb.Get(ctx, entryKey(v.cfg.RedisKeyPrefix, h)).Bytes()
	if err != nil {
		if !errors.Is(err, redis.Nil) {
			v.warn("redis_read_failed", err, "")
		}
		return nil
	}
	var se sharedEntry
	if json.Unmarshal(raw, &se) != nil {
		return nil
	}
	n := now.UnixNano()
	until := time.UnixMilli(se.Until).UnixNano()
	if se.Identity != nil {
		id := se.Identity
		if id.AuthMethod != identity.MethodAPIKey || id.APIKeyID != k.KID() || !cleanField(id.Subject, false) || v.cfg.PositiveTTL <= 0 {
			return nil
		}
		if !id.ExpiresAt.IsZero() && !id.ExpiresAt.After(now) {
			return nil
		}
		if v.revoked.has(id.APIKeyID, n) {
			// Revoked here, but an entry survived (a failed delete, or
			// another instance stored an answer fetched before it).
			_ = v.rdb.Del(ctx, entryKey(v.cfg.RedisKeyPrefix, h)).Err()
			return nil
		}
		e := v.positive(id, now)
		e.fresh = min(e.fresh, until)
		if e.fresh <= n {
			return nil
		}
		return e
	}
	switch se.Reason {
	case ReasonMalformed, ReasonUnknown, ReasonRevoked, ReasonExpired, ReasonOwnerDisabled:
	default:
		return nil
	}
	if v.cfg.NegativeTTL <= 0 {
		return nil
	}
	e := v.negative(se.Reason, now)
	e.fresh = min(e.fresh, until)
	e.stale = e.fresh
	if e.fresh <= n {
		return nil
	}
	return e
}

// storeShared writes a validator answer to Redis for the other instances,
// unless a revocation arrived since it was fetched; if one arrives while it
// is written, the entry is deleted again (the subscriber bumps the epoch
// before it deletes, so one of the two deletes wins).
func (v *Validator) storeShared(h *hashKey, k Key, e *entry, now time.Time, epoch uint64) {
	ttl := time.Duration(e.fresh - now.UnixNano())
	if ttl < time.Millisecond || v.epoch.Load() != epoch {
		return
	}
	val, err := json.Marshal(sharedEntry{Identity: e.id, Reason: e.reason, Until: time.Unix(0, e.fresh).UnixMilli()})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(v.ctx, v.cfg.RedisTimeout)
	defer cancel()
	key := entryKey(v.cfg.RedisKeyPrefix, h)
	_, err = v.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, key, val, ttl)
		if e.id != nil {
			idx := kidKey(v.cfg.RedisKeyPrefix, k.KID())
			p.SAdd(ctx, idx, hex.EncodeToString(h[:]))
			p.PExpire(ctx, idx, ttl+time.Minute)
		}
		return nil
	})
	if err != nil {
		v.warn("redis_write_failed", err, "")
		return
	}
	if v.epoch.Load() != epoch {
		_ = v.rdb.Del(ctx, key).Err()
	}
}

// deleteShared deletes the Redis-layer entries of kid and its index.
func deleteShared(ctx context.Context, rdb redis.UniversalClient, prefix, kid string) error {
	idx := kidKey(prefix, kid)
	members, err := rdb.SMembers(ctx, idx).Result()
	if err != nil {
		return err
	}
	// One DEL per key: on a Cluster the keys live in different slots.
	_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, m := range members {
			if len(m) == 64 {
				p.Del(ctx, prefix+"k:"+m)
			}
		}
		p.Del(ctx, idx)
		return nil
	})
	return err
}

// PublishRevocation is llm-api's side of revocation: it deletes the shared
// layer's entries of kid (under DefaultRedisKeyPrefix) and announces the
// revocation on RevocationChannel, where every edge instance drops the key
// from its cache. Call it after the revocation is committed. Dropping is
// always safe, so the public key id suffices.
func PublishRevocation(ctx context.Context, rdb redis.UniversalClient, kid string) error {
	if !validKID(kid) {
		return fmt.Errorf("publish revocation: %q is not a key id", kid)
	}
	delErr := deleteShared(ctx, rdb, DefaultRedisKeyPrefix, kid)
	msg, err := json.Marshal(revocation{KeyID: kid, At: time.Now().UTC().Format(time.RFC3339)})
	if err != nil {
		return fmt.Errorf("publish revocation: %w", err)
	}
	if err := rdb.Publish(ctx, RevocationChannel, msg).Err(); err != nil {
		return fmt.Errorf("publish revocation: %w", err)
	}
	if delErr != nil { // the subscribers delete them too
		return fmt.Errorf("publish revocation: delete shared entries: %w", delErr)
	}
	return nil
}

// startSubscriber subscribes to RevocationChannel and applies revocations
// until Close. go-redis reconnects and resubscribes by itself; revocations
// published while the subscription was down are lost, so every
// resubscription drops the whole in-process cache (dropping is safe).
func (v *Validator) startSubscriber() {
	v.sub = v.rdb.Subscribe(v.ctx) // no channel yet: no I/O here
	v.bg.Add(1)
	go func() {
		defer v.bg.Done()
		// On failure the channel is still recorded, and the first Receive
		// connects and subscribes.
		_ = v.sub.Subscribe(v.ctx, RevocationChannel)
		v.subscribeLoop()
	}()
}

func (v *Validator) subscribeLoop() {
	const (
		receiveTimeout = 5 * time.Second
		// Deaf, the instance misses revocations: retry twice a second.
		// Each failure reloads a Cluster client's slot map, which the next
		// attempt uses: after a failover the subscription is back within
		// about two attempts (BENCHMARKS.md "Redis Cluster failover").
		maxBackoff = 500 * time.Millisecond
	)
	subscriptions, deaf, backoff := 0, false, 50*time.Millisecond
	for v.ctx.Err() == nil {
		msg, err := v.sub.ReceiveTimeout(v.ctx, receiveTimeout)
		if err != nil {
			if v.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Quiet channel: check the connection is alive.
				if perr := v.sub.Ping(v.ctx); perr == nil {
					continue
				}
			}
			deaf = true
			v.warn("revocation_subscriber_down", err, "")
			// A Cluster client dials the channel's master from its slot
			// map, which go-redis refreshes by itself only every 10 s:
			// refresh it now, the master may have failed over.
			if c, ok := v.rdb.(interface{ ReloadState(context.Context) }); ok {
				c.ReloadState(v.ctx)
			}
			select {
			case <-v.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, maxBackoff)
			continue
		}
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			subscriptions++
			if subscriptions > 1 || deaf {
				v.epoch.Add(1)
				v.cache.clear()
				v.log.Info().Str("reason", "revocation_subscriber_resubscribed").
					Msg("api key cache dropped: revocations may have been missed")
			}
			deaf = false
			if subscriptions == 1 {
				close(v.subReady)
			}
		case *redis.Message:
			v.revoke(m.Payload)
		}
	}
}

// revoke applies a revocation message: the epoch first (so no answer
// fetched before it is cached after it), then the in-process entries, then
// the shared layer's.
func (v *Validator) revoke(payload string) {
	var r revocation
	if len(payload) > 1024 || json.Unmarshal([]byte(payload), &r) != nil || !validKID(r.KeyID) {
		v.log.Warn().Str("reason", "revocation_message_invalid").Msg("ignored an invalid revocation message")
		return
	}
	v.Revoke(r.KeyID)
}

// Revoke drops every cached answer (in process and, with Redis, in the
// shared layer) whose validated key id is kid, and makes sure no answer
// fetched before the call is cached after it. The revocation subscriber calls
// it; call it directly where no Redis carries revocations (a single process).
// It returns how many in-process entries it dropped.
func (v *Validator) Revoke(kid string) int {
	if !validKID(kid) {
		return 0
	}
	v.epoch.Add(1)
	n := v.cache.dropKID(kid)
	v.nRevocations.Add(1)
	if v.rdb != nil {
		now := v.now()
		v.revoked.add(kid, now.UnixNano(), now.Add(max(v.cfg.PositiveTTL, 0)+time.Minute).UnixNano())
		ctx, cancel := context.WithTimeout(v.ctx, time.Second)
		defer cancel()
		err := deleteShared(ctx, v.rdb, v.cfg.RedisKeyPrefix, kid)
		if err != nil && ctx.Err() == nil { // once more: a pooled connection may have died
			err = deleteShared(ctx, v.rdb, v.cfg.RedisKeyPrefix, kid)
		}
		if err != nil {
			v.warn("redis_write_failed", err, kid)
		}
	}
	v.log.Info().Str("reason", "key_revoked").Str("kid", kid).Int("dropped", n).Msg("api key revoked")
	return n
}

// revokedSet remembers the key ids revoked recently — for as long as a
// shared-layer entry fetched before the revocation could still exist — so
// such an entry is never used, whatever happened to the deletes.
type revokedSet struct {
	mu sync.Mutex
	m  map[string]int64 // kid → unix ns: remembered until
}

const maxRevokedKIDs = 100_000

func (r *revokedSet) add(kid string, now, until int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[string]int64)
	}
	if len(r.m) >= maxRevokedKIDs {
		for k, u := range r.m {
			if u <= now {
				delete(r.m, k)
			}
		}
		for k := range r.m { // still full: forget arbitrary ones
			if len(r.m) < maxRevokedKIDs*7/8 {
				break
			}
			delete(r.m, k)
		}
	}
	r.m[kid] = max(r.m[kid], until)
}

func (r *revokedSet) has(kid string, now int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	u, ok := r.m[kid]
	return ok && now < u
}
