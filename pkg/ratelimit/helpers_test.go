package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startRedisServer runs a private redis-server the test may kill.
func startRedisServer(t testing.TB, args ...string) *testenv.RedisServer {
	t.Helper()
	return testenv.StartRedis(t, args...)
}

func redisAddr(t testing.TB) string { t.Helper(); return testenv.RedisAddr(t) }

// uniquePrefix keeps tests (and repeated runs) on one Redis apart.
func uniquePrefix(t testing.TB) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "test:" + hex.EncodeToString(b) + ":"
}

// fakeClock is an injected clock for deterministic schedules.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	// A real-looking epoch: the Redis script works on absolute µs.
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTestLimiter builds a Limiter on addr with a fresh key prefix.
func newTestLimiter(t testing.TB, addr string, mutate func(*Config)) *Limiter {
	t.Helper()
	cfg := Config{Redis: RedisConfig{Addrs: []string{addr}}, KeyPrefix: uniquePrefix(t)}
	if mutate != nil {
		mutate(&cfg)
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// rawClient is a plain go-redis client for inspecting Redis in tests.
func rawClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v", addr, err)
	}
	return c
}

func mustLimits(t testing.TB, spec string) *Policy {
	t.Helper()
	ls, err := ParseLimits(spec)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPolicy(ls...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func describe(r Result) string {
	s := fmt.Sprintf("allowed=%t decider=%d", r.Allowed, r.Decider)
	for _, l := range r.Limits {
		s += fmt.Sprintf(" [%s rem=%d reset=%s retry=%s]", l.Limit.Name, l.Remaining, l.ResetAfter, l.RetryAfter)
	}
	return s
}
