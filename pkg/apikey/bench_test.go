package apikey

import (
	"context"
	"crypto/sha256"
	"slices"
	"testing"
	"time"
)

// The cached-hit target is ≤ 200 ns and 0 allocs (BENCHMARKS.md). The
// uncached figures are against an httptest fake on loopback: they measure
// this package's client side (request, JSON, cache fill), not llm-api.

func benchValidator(b *testing.B, mutate func(*Config)) (*Validator, *fakeLLM, Key) {
	f := newFakeLLM(b)
	v := newTestValidator(b, f, nil, mutate)
	k := mustGenerate(b, EnvLive)
	f.add(k, fakeKey{subject: "5f0c2a8e-7b1d-4c3e-9a6f-1d2e3f4a5b6c", roles: []string{"user", "offline_access"}})
	if _, err := v.Validate(context.Background(), clientA, k); err != nil {
		b.Fatal(err)
	}
	return v, f, k
}

func BenchmarkValidateCachedHit(b *testing.B) {
	v, f, k := benchValidator(b, nil)
	ctx := context.Background()
	calls := f.calls.Load()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Validate(ctx, clientA, k); err != nil {
			b.Fatal(err)
		}
	}
	if f.calls.Load() != calls {
		b.Fatal("not a cache hit")
	}
}

func BenchmarkValidateCachedHitParallel(b *testing.B) {
	v, _, k0 := benchValidator(b, nil)
	id := v.cache.get(ptr(hashOf(k0))).id
	keys := make([]Key, 64) // spread over the shards, as real traffic is
	for i := range keys {
		keys[i] = mustGenerate(b, EnvLive)
		v.cache.put(ptr(hashOf(keys[i])), &entry{id: id, kid: keys[i].KID(), fresh: 1 << 62, stale: 1 << 62}, 0, func() bool { return true })
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := v.Validate(context.Background(), clientA, keys[i%len(keys)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func ptr[T any](v T) *T { return &v }

// BenchmarkValidateUncached: every lookup goes to the validator (no
// positive cache), through the whole client path; the fake runs in the same
// process, so allocs and time include its side. Reports p50/p99.
func BenchmarkValidateUncached(b *testing.B) {
	v, f, k := benchValidator(b, func(c *Config) { c.PositiveTTL = -1 })
	ctx := context.Background()
	calls := f.calls.Load()
	lat := make([]time.Duration, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if _, err := v.Validate(ctx, clientA, k); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	if n := f.calls.Load() - calls; n != int64(b.N) {
		b.Fatalf("%d validator calls for %d lookups", n, b.N)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkSHA256Key is the floor of a cache hit: hashing the key.
func BenchmarkSHA256Key(b *testing.B) {
	k := mustGenerate(b, EnvLive)
	var sink [32]byte
	b.ReportAllocs()
	for b.Loop() {
		var buf [MaxLen]byte
		sink = sha256.Sum256(buf[:copy(buf[:], k.Secret())])
	}
	_ = sink
}
