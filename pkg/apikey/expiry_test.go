package apikey

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// Keys that live seconds (edgectl run's throwaway keys, llm-api's
// expires_in_seconds) expire well inside the positive TTL and MaxStale:
// every way the edge answers from memory — Validate's hit path, Cached (the
// plugins' fast path), stale-if-error — must end at the key's expires_at.
func TestKeyExpiringInSecondsIsNeverServedPastItsExpiry(t *testing.T) {
	f := newFakeLLM(t)
	clock := newFakeClock()
	v := newTestValidator(t, f, clock, nil) // PositiveTTL 60 s, MaxStale 1 h
	ctx := context.Background()
	k := mustGenerate(t, EnvLive)
	exp := clock.Now().Add(5 * time.Second)
	f.add(k, fakeKey{subject: "s", exp: &exp})

	if id, err := v.Validate(ctx, clientA, k); err != nil || !id.ExpiresAt.Equal(exp) {
		t.Fatalf("first lookup: %v, %v", id, err)
	}
	clock.Advance(5*time.Second - time.Nanosecond)
	if _, ok := v.Cached(k); !ok {
		t.Fatal("not a Cached hit before its expiry")
	}
	if _, err := v.Validate(ctx, clientA, k); err != nil || f.calls.Load() != 1 {
		t.Fatalf("before expiry: %v, %d calls (want a cache hit)", err, f.calls.Load())
	}
	clock.Advance(time.Nanosecond)
	if _, ok := v.Cached(k); ok {
		t.Fatal("a Cached hit at its expiry")
	}
	// llm-api down: a key seen before is served stale — never this one.
	f.setStatus(http.StatusBadGateway)
	if _, err := v.Validate(ctx, clientA, k); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("expired key served stale: %v", err)
	}
	// llm-api back, still answering 200 with the passed expiry (its clock
	// behind ours): a rejection, key_expired.
	f.setStatus(0)
	if _, err := v.Validate(ctx, clientA, k); !errors.Is(err, ReasonExpired) {
		t.Fatalf("at expiry: %v, want key_expired", err)
	}
}

// The shared Redis layer holds a short-lived key's entry no longer than the
// key lives, and an instance never takes an expired key from it (real
// clock and real Redis: the entry's PX is Redis's own clock).
func TestSharedLayerNeverOutlivesAKeysExpiry(t *testing.T) {
	rdb := redisClient(t, redisAddr(t))
	f := newFakeLLM(t)
	a, b, prefix := twoInstances(t, f, rdb, nil)
	ctx := context.Background()
	k := mustGenerate(t, EnvLive)
	exp := time.Now().Add(1500 * time.Millisecond).Truncate(time.Millisecond)
	f.add(k, fakeKey{subject: "s", exp: &exp})

	if _, err := a.Validate(ctx, clientA, k); err != nil {
		t.Fatal(err)
	}
	h := hashOf(k)
	if !eventually(time.Second, func() bool { return rdb.Exists(ctx, entryKey(prefix, &h)).Val() == 1 }) {
		t.Fatal("valid answer not stored in redis")
	}
	if ttl := rdb.PTTL(ctx, entryKey(prefix, &h)).Val(); ttl <= 0 || ttl > time.Until(exp)+10*time.Millisecond {
		t.Fatalf("redis entry lives %s, the key %s", ttl, time.Until(exp))
	}
	if _, err := b.Validate(ctx, clientA, k); err != nil || b.Stats().SharedHits != 1 {
		t.Fatalf("instance b before expiry: %v, %d shared hits", err, b.Stats().SharedHits)
	}
	time.Sleep(time.Until(exp))
	f.setStatus(http.StatusBadGateway) // only memory could answer now
	for name, v := range map[string]*Validator{"a": a, "b": b} {
		if _, ok := v.Cached(k); ok {
			t.Fatalf("instance %s: a Cached hit after expiry", name)
		}
		if _, err := v.Validate(ctx, clientA, k); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("instance %s served the expired key: %v", name, err)
		}
	}
	// The entry's PX counts from its write, a few ms after the lookup began:
	// it may outlive the key by that much (and is ignored meanwhile, above).
	if !eventually(200*time.Millisecond, func() bool { return rdb.Exists(ctx, entryKey(prefix, &h)).Val() == 0 }) {
		t.Fatal("the redis entry outlived the key")
	}
}
