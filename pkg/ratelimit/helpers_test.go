package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisAddr returns the integration Redis that `make test` starts. Unset, the
// test is skipped locally but fails under CI=true, where it must run.
func redisAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("EDGEGUARD_TEST_REDIS_ADDR")
	if addr == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("EDGEGUARD_TEST_REDIS_ADDR is unset under CI=true (scripts/test.sh starts Redis and sets it)")
		}
		t.Skip("EDGEGUARD_TEST_REDIS_ADDR unset: integration test skipped (make test sets it)")
	}
	return addr
}

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

// redisServer is a redis-server child process a test can kill and restart.
type redisServer struct {
	t    testing.TB
	port int
	args []string
	cmd  *exec.Cmd
}

// startRedisServer runs its own redis-server on a free loopback port (for
// tests that kill it). It needs the integration environment (see redisAddr)
// and the redis-server binary.
func startRedisServer(t testing.TB, args ...string) *redisServer {
	t.Helper()
	redisAddr(t)
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server not in PATH under CI=true")
		}
		t.Skip("redis-server not in PATH")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	s := &redisServer{t: t, port: port, args: args}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *redisServer) start() {
	s.t.Helper()
	args := append([]string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"}, s.args...)
	s.cmd = exec.Command("redis-server", args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func(c *exec.Cmd) { _ = c.Wait() }(s.cmd)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", s.addr(), 100*time.Millisecond); err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("redis-server on %s did not start", s.addr())
}

func (s *redisServer) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		// Wait until the port is free again so a restart can bind it.
		for range 100 {
			c, err := net.DialTimeout("tcp", s.addr(), 50*time.Millisecond)
			if err != nil {
				break
			}
			_ = c.Close()
			time.Sleep(10 * time.Millisecond)
		}
		s.cmd = nil
	}
}

func (s *redisServer) signal(sig os.Signal) {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(sig)
	}
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
