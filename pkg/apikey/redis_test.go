package apikey

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/ratelimit"
	"github.com/redis/go-redis/v9"
)

// twoInstances builds two validators sharing one Redis and key prefix, as
// two edge instances would, both subscribed to revocations.
func twoInstances(t *testing.T, f *fakeLLM, rdb redis.UniversalClient, mutate func(*Config)) (*Validator, *Validator, string) {
	t.Helper()
	prefix := uniquePrefix()
	mk := func() *Validator {
		v := newTestValidator(t, f, nil, func(c *Config) {
			c.Redis, c.RedisKeyPrefix = rdb, prefix
			c.RedisTimeout = time.Second // -race on two shared cores
			if mutate != nil {
				mutate(c)
			}
		})
		waitSubscribed(t, v)
		return v
	}
	return mk(), mk(), prefix
}

func TestRedisLayerSharesAnswersBetweenInstances(t *testing.T) {
	rdb := redisClient(t, redisAddr(t))
	f := newFakeLLM(t)
	a, b, prefix := twoInstances(t, f, rdb, nil)
	ctx := context.Background()
	good, bad := mustGenerate(t, EnvLive), mustGenerate(t, EnvLive)
	f.add(good, fakeKey{subject: "alice", roles: []string{"user"}})

	if _, err := a.Validate(ctx, clientA, good); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Validate(ctx, clientA, bad); !errors.Is(err, ReasonUnknown) {
		t.Fatal(err)
	}
	// The writes happen after the answer: wait for them.
	h := hashOf(good)
	if !eventually(2*time.Second, func() bool { return rdb.Exists(ctx, entryKey(prefix, &h)).Val() == 1 }) {
		t.Fatal("valid answer not stored in redis")
	}
	hb := hashOf(bad)
	if !eventually(2*time.Second, func() bool { return rdb.Exists(ctx, entryKey(prefix, &hb)).Val() == 1 }) {
		t.Fatal("rejection not stored in redis")
	}
	id, err := b.Validate(ctx, clientA, good)
	if err != nil || id.Subject != "alice" || id.APIKeyID != good.KID() {
		t.Fatalf("instance b: %v %v", id, err)
	}
	if _, err := b.Validate(ctx, clientA, bad); !errors.Is(err, ReasonUnknown) {
		t.Fatal(err)
	}
	if f.calls.Load() != 2 || b.Stats().SharedHits != 2 {
		t.Fatalf("%d validator calls, %d shared hits; want 2 and 2", f.calls.Load(), b.Stats().SharedHits)
	}
	// TTLs: the positive entry expires with the positive TTL, the negative
	// one with the negative TTL; neither key nor key id appears in Redis.
	if ttl := rdb.PTTL(ctx, entryKey(prefix, &h)).Val(); ttl <= 50*time.Second || ttl > DefaultPositiveTTL {
		t.Fatalf("positive entry TTL %s", ttl)
	}
	if ttl := rdb.PTTL(ctx, entryKey(prefix, &hb)).Val(); ttl <= 0 || ttl > DefaultNegativeTTL {
		t.Fatalf("negative entry TTL %s", ttl)
	}
	keys, _ := rdb.Keys(ctx, prefix+"*").Result()
	for _, k := range keys {
		val, _ := rdb.Dump(ctx, k).Result()
		if strings.Contains(k, good.Secret()) || strings.Contains(val, good.Secret()) || strings.Contains(val, bad.Secret()) {
			t.Fatalf("redis holds a raw key under %s", k)
		}
	}
	// A forged key carrying alice's key id misses Redis too.
	if _, err := b.Validate(ctx, clientA, forge(t, good)); !errors.Is(err, ReasonUnknown) || f.calls.Load() != 3 {
		t.Fatalf("forged key: %v, %d calls", err, f.calls.Load())
	}
}

func hashOf(k Key) hashKey {
	var buf [MaxLen]byte
	return sha256.Sum256(buf[:copy(buf[:], k.Secret())])
}

func TestRedisEntriesThatBreakTheContractAreIgnored(t *testing.T) {
	rdb := redisClient(t, redisAddr(t))
	f := newFakeLLM(t)
	prefix := uniquePrefix()
	v := newTestValidator(t, f, nil, func(c *Config) { c.Redis, c.RedisKeyPrefix, c.RedisTimeout = rdb, prefix, time.Second })
	ctx := context.Background()
	far := time.Now().Add(time.Hour).UnixMilli()
	for i, val := range []string{
		`not json`,
		fmt.Sprintf(`{"identity":{"sub":"x","method":"jwt","key_id":"%%s"},"until":%d}`, far),         // wrong method
		fmt.Sprintf(`{"identity":{"sub":"x","method":"apikey","key_id":"OTHERKID"},"until":%d}`, far), // wrong kid
		fmt.Sprintf(`{"identity":{"sub":"","method":"apikey","key_id":"%%s"},"until":%d}`, far),       // no subject
		fmt.Sprintf(`{"reason":"key_checksum","until":%d}`, far),                                      // not a validator reason
		`{"reason":"key_revoked","until":1}`,                                                          // long past
	} {
		k := mustGenerate(t, EnvLive)
		f.add(k, fakeKey{subject: "real"})
		h := hashOf(k)
		if strings.Contains(val, "%s") {
			val = fmt.Sprintf(val, k.KID())
		}
		rdb.Set(ctx, entryKey(prefix, &h), val, time.Minute)
		id, err := v.Validate(ctx, clientA, k)
		if err != nil || id.Subject != "real" {
			t.Fatalf("entry %d: %v %v", i, id, err)
		}
	}
	if v.Stats().SharedHits != 0 {
		t.Fatal("an invalid entry was used")
	}
}

func TestRevocationReachesEveryInstanceWithinOneSecond(t *testing.T) {
	rdb := redisClient(t, redisAddr(t))
	f := newFakeLLM(t)
	a, b, prefix := twoInstances(t, f, rdb, nil)
	ctx := context.Background()
	k, other := mustGenerate(t, EnvLive), mustGenerate(t, EnvLive)
	f.add(k, fakeKey{subject: "alice"})
	f.add(other, fakeKey{subject: "bob"})
	for _, v := range []*Validator{a, b} {
		for _, key := range []Key{k, other} {
			if _, err := v.Validate(ctx, clientA, key); err != nil {
				t.Fatal(err)
			}
		}
	}
	h := hashOf(k)
	if !eventually(2*time.Second, func() bool { return rdb.Exists(ctx, entryKey(prefix, &h)).Val() == 1 }) {
		t.Fatal("not in redis")
	}
	calls := f.calls.Load()

	// llm-api: revoke in the database, then publish.
	f.add(k, fakeKey{reason: ReasonRevoked})
	start := time.Now()
	if err := PublishRevocation(ctx, rdb, k.KID()); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]*Validator{"a": a, "b": b} {
		ok := eventually(time.Second, func() bool {
			_, err := v.Validate(ctx, clientA, k)
			return errors.Is(err, ReasonRevoked)
		})
		if !ok {
			t.Fatalf("instance %s still accepts the key 1s after the revocation", name)
		}
	}
	t.Logf("revoked on both instances after %s", time.Since(start))
	if rdb.Exists(ctx, entryKey(prefix, &h)).Val() == 1 {
		// The rejection may have been stored since: it must not be valid.
		raw, _ := rdb.Get(ctx, entryKey(prefix, &h)).Result()
		if !strings.Contains(raw, `"reason":"key_revoked"`) {
			t.Fatalf("redis still holds the valid entry: %s", raw)
		}
	}
	// Other keys were not touched.
	for _, v := range []*Validator{a, b} {
		if _, err := v.Validate(ctx, clientA, other); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.calls.Load() - calls; got > 2 {
		t.Fatalf("%d calls after the revocation, want at most one per instance", got)
	}
	if a.Stats().Revocations != 1 || b.Stats().Revocations != 1 {
		t.Fatal("revocation not counted")
	}
	if err := PublishRevocation(ctx, rdb, "not a kid"); err == nil {
		t.Fatal("bad key id published")
	}
}

func TestAnEntryThatSurvivesARevocationInRedisIsNotUsed(t *testing.T) {
	rdb := redisClient(t, redisAddr(t))
	f := newFakeLLM(t)
	a, b, prefix := twoInstances(t, f, rdb, nil)
	ctx := context.Background()
	k := mustGenerate(t, EnvLive)
	f.add(k, fakeKey{subject: "s"})
	if _, err := a.Validate(ctx, clientA, k); err != nil {
		t.Fatal(err)
	}
	h := hashOf(k)
	if !eventually(2*time.Second, func() bool { return rdb.Exists(ctx, entryKey(prefix, &h)).Val() == 1 }) {
		t.Fatal("not in redis")
	}
	valid, err := rdb.Get(ctx, entryKey(prefix, &h)).Result()
	if err != nil {
		t.Fatal(err)
	}
	f.add(k, fakeKey{reason: ReasonRevoked})
	if err := PublishRevocation(ctx, rdb, k.KID()); err != nil {
		t.Fatal(err)
	}
	if !eventually(time.Second, func() bool { return a.Stats().Revocations == 1 && b.Stats().Revocations == 1 }) {
		t.Fatal("revocation not received")
	}
	// A late write of an answer fetched before the revocation (another
	// instance, a failed delete): both instances refuse to use it.
	rdb.Set(ctx, entryKey(prefix, &h), valid, time.Minute)
	for _, v := range []*Validator{a, b} {
		if _, err := v.Validate(ctx, clientA, k); !errors.Is(err, ReasonRevoked) {
			t.Fatalf("surviving entry used: %v", err)
		}
	}
}

func TestFailuresAreCountedAcrossInstances(t *testing.T) {
	rdb := redisClient(t, redisAddr(t))
	f := newFakeLLM(t)
	a, b, _ := twoInstances(t, f, rdb, func(c *Config) { c.FailureLimit = ratelimit.Limit{Rate: 10, Period: time.Hour} })
	ctx := context.Background()
	// 10 failures spread over two instances use up the shared count; the
	// next failure on either instance blocks the client there.
	for i := range 10 {
		v := []*Validator{a, b}[i%2]
		if _, err := v.Validate(ctx, clientA, mustGenerate(t, "")); !errors.Is(err, ReasonUnknown) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	for _, v := range []*Validator{a, b} {
		_, _ = v.Validate(ctx, clientA, mustGenerate(t, "")) // charged in process, denied in Redis → blocked
		if _, err := v.Validate(ctx, clientA, mustGenerate(t, "")); !errors.Is(err, ErrTooManyFailures) {
			t.Fatalf("client not blocked after the shared limit: %v", err)
		}
	}
	if got := f.calls.Load(); got != 12 {
		t.Fatalf("%d validator calls, want 12 (10 + one per instance)", got)
	}
}

func TestResubscribingDropsTheCache(t *testing.T) {
	srv := startRedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), DisableIdentity: true, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	f := newFakeLLM(t)
	v := newTestValidator(t, f, nil, func(c *Config) { c.Redis, c.RedisKeyPrefix = rdb, uniquePrefix() })
	waitSubscribed(t, v)
	ctx := context.Background()
	k := mustGenerate(t, EnvLive)
	f.add(k, fakeKey{subject: "s"})
	if _, err := v.Validate(ctx, clientA, k); err != nil {
		t.Fatal(err)
	}
	// Redis goes away: a revocation published meanwhile would be lost. The
	// cached key keeps working (Redis is not the validator).
	srv.Kill()
	if _, err := v.Validate(ctx, clientA, k); err != nil {
		t.Fatalf("redis down: %v", err)
	}
	srv.Start()
	if !eventually(15*time.Second, func() bool { return v.Stats().Entries == 0 }) {
		t.Fatal("cache not dropped after resubscribing")
	}
	// Works again, and revocations arrive again.
	if _, err := v.Validate(ctx, clientA, k); err != nil {
		t.Fatal(err)
	}
	f.add(k, fakeKey{reason: ReasonRevoked})
	if err := PublishRevocation(ctx, rdb, k.KID()); err != nil {
		t.Fatal(err)
	}
	if !eventually(time.Second, func() bool { _, err := v.Validate(ctx, clientA, k); return errors.Is(err, ReasonRevoked) }) {
		t.Fatal("revocation after resubscribe not applied")
	}
}

func TestRedisOutageFallsBackToTheValidator(t *testing.T) {
	redisAddr(t)
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DisableIdentity: true, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	f := newFakeLLM(t)
	v := newTestValidator(t, f, nil, func(c *Config) { c.Redis = rdb })
	k := mustGenerate(t, EnvLive)
	f.add(k, fakeKey{subject: "s"})
	if _, err := v.Validate(context.Background(), clientA, k); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(context.Background(), clientA, mustGenerate(t, "")); !errors.Is(err, ReasonUnknown) {
		t.Fatal(err)
	}
}
