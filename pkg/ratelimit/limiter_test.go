package ratelimit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

const testPassword = "pw-Zq8ufT3s9xK"

func TestConfigValidateRejectsBadConfigs(t *testing.T) {
	ok := func() Config { return Config{Redis: RedisConfig{Addrs: []string{"127.0.0.1:6379"}}} }
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no address", func(c *Config) { c.Redis.Addrs = nil }, "redis addresses are required"},
		{"address without port", func(c *Config) { c.Redis.Addrs = []string{"localhost"} }, "redis address #1 is not host:port"},
		{"url as address", func(c *Config) { c.Redis.Addrs = []string{"redis://u:" + testPassword + "@h:6379"} }, "redis address #1 is not host:port"},
		{"cluster with db", func(c *Config) { c.Redis.Addrs = []string{"a:1", "b:2"}; c.Redis.DB = 2 }, "redis cluster has only database 0"},
		{"forced cluster with db", func(c *Config) { c.Redis.Cluster = true; c.Redis.DB = 1 }, "redis cluster has only database 0"},
		{"cluster and sentinel", func(c *Config) { c.Redis.Cluster = true; c.Redis.MasterName = "m" }, "redis cluster and sentinel master name are exclusive"},
		{"negative db", func(c *Config) { c.Redis.DB = -1 }, "redis database must not be negative"},
		{"ca file without tls", func(c *Config) { c.Redis.TLSCAFile = "/ca.pem" }, "redis tls ca file and server name need tls on"},
		{"server name without tls", func(c *Config) { c.Redis.TLSServerName = "redis" }, "redis tls ca file and server name need tls on"},
		{"negative pool", func(c *Config) { c.Redis.PoolSize = -1 }, "redis pool size and timeouts must not be negative"},
		{"brace in prefix", func(c *Config) { c.KeyPrefix = "rl:{x}:" }, "key prefix must not contain '{' or '}'"},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, "timeout must be positive"},
		{"negative probe", func(c *Config) { c.ProbeInterval = -1 }, "probe interval must be positive"},
		{"negative warn", func(c *Config) { c.WarnInterval = -1 }, "warn interval must be positive"},
		{"negative local keys", func(c *Config) { c.LocalMaxKeys = -1 }, "local max keys must be positive"},
		{"negative batch", func(c *Config) { c.BatchSize = -1 }, "batch size must be positive"},
		{"unknown policy", func(c *Config) { c.OnRedisError = "retry" }, `on_redis_error must be local, allow or deny, not "retry"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok()
			cfg.Redis.Password = testPassword
			tt.mutate(&cfg)
			err := cfg.Validate()
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
			if !strings.HasSuffix(err.Error(), ": "+tt.want) {
				t.Fatalf("err = %q, want it to end in %q", err, tt.want)
			}
			if strings.Contains(err.Error(), testPassword) {
				t.Fatal("password in error")
			}
			if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New accepted it: %v", err)
			}
		})
	}
}

func TestConfigDefaultsAreDocumentedValues(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.KeyPrefix != "edgeguard:rl:" || c.Timeout != 50*time.Millisecond || c.OnRedisError != OnErrorLocal ||
		c.ProbeInterval != 250*time.Millisecond || c.WarnInterval != 10*time.Second || c.DenyCacheSize != 10000 ||
		c.LocalMaxKeys != 100000 || c.BatchSize != 32 || c.Batch || c.Redis.DialTimeout != time.Second ||
		c.Redis.ReadTimeout != time.Second {
		t.Fatalf("defaults changed: %s", c)
	}
}

func TestConfigNeverPrintsThePassword(t *testing.T) {
	cfg := Config{Redis: RedisConfig{Addrs: []string{"h:1"}, Password: testPassword, SentinelPassword: testPassword + "s"}}
	for _, s := range []string{
		fmt.Sprint(cfg), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg),
		fmt.Sprintf("%v %+v %#v", cfg.Redis, cfg.Redis, cfg.Redis), fmt.Sprintf("%+v", &cfg),
	} {
		if strings.Contains(s, testPassword) {
			t.Fatalf("password printed: %s", s)
		}
	}
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	log.Info().Object("redis", cfg.Redis).Msg("config")
	if strings.Contains(buf.String(), testPassword) || !strings.Contains(buf.String(), `"password":true`) {
		t.Fatalf("zerolog output: %s", buf.String())
	}
}

func TestNewReadsTheTLSCAFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := RedisConfig{Addrs: []string{"127.0.0.1:1"}, TLS: true, Password: testPassword}
	for name, file := range map[string]string{"missing": filepath.Join(dir, "nope.pem"), "not pem": bad} {
		t.Run(name, func(t *testing.T) {
			r := base
			r.TLSCAFile = file
			_, err := New(Config{Redis: r})
			if !errors.Is(err, ErrInvalidConfig) || strings.Contains(err.Error(), testPassword) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	l, err := New(Config{Redis: base})
	if err != nil {
		t.Fatalf("tls without ca file: %v", err)
	}
	_ = l.Close()
}

// deadLimiter is a Limiter whose Redis refuses connections.
func deadLimiter(t *testing.T, policy ErrorPolicy, log *zerolog.Logger) *Limiter {
	t.Helper()
	return newTestLimiter(t, "127.0.0.1:1", func(c *Config) {
		c.OnRedisError = policy
		c.Logger = log
		c.Redis.Password = testPassword
		c.Timeout = 200 * time.Millisecond
	})
}

func TestFailPoliciesWhenRedisIsDown(t *testing.T) {
	p := mustLimits(t, "2/min")
	ctx := context.Background()
	t.Run("local decides with the in-process GCRA", func(t *testing.T) {
		l := deadLimiter(t, OnErrorLocal, nil)
		for i, want := range []bool{true, true, false} {
			r, err := l.Allow(ctx, "alice", p)
			if err != nil || r.Allowed != want || r.Source != SourceLocal {
				t.Fatalf("request %d: %s source=%s err=%v", i, describe(r), r.Source, err)
			}
		}
		if !l.FallbackActive() {
			t.Fatal("FallbackActive() = false")
		}
	})
	t.Run("allow lets everything through", func(t *testing.T) {
		l := deadLimiter(t, OnErrorAllow, nil)
		for range 5 {
			r, err := l.Allow(ctx, "alice", p)
			if err != nil || !r.Allowed || r.Source != SourceFailOpen || r.Decided().Remaining != 1 {
				t.Fatalf("%s source=%s err=%v", describe(r), r.Source, err)
			}
		}
	})
	t.Run("deny fails with ErrUnavailable", func(t *testing.T) {
		l := deadLimiter(t, OnErrorDeny, nil)
		for range 3 {
			r, err := l.Allow(ctx, "alice", p)
			if !errors.Is(err, ErrUnavailable) || r.Allowed {
				t.Fatalf("%s err=%v", describe(r), err)
			}
		}
		st := l.Stats()
		if st.RedisErrors < 1 || st.FallbackDecisions != 3 || !st.FallbackActive {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestRedisFailureIsLoggedOncePerIntervalWithoutSecrets(t *testing.T) {
	var buf testenv.Buffer
	log := zerolog.New(&buf)
	l := deadLimiter(t, OnErrorDeny, &log)
	l.cfg.ProbeInterval = time.Nanosecond // every decision goes to Redis and fails
	p := mustLimits(t, "2/min")
	for range 50 {
		_, err := l.Allow(context.Background(), "alice", p)
		if strings.Contains(err.Error(), testPassword) {
			t.Fatalf("password in error: %v", err)
		}
	}
	out := buf.String()
	if n := strings.Count(out, "redis_unavailable"); n != 1 {
		t.Fatalf("%d warnings for 50 failures, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, `"on_redis_error":"deny"`) || strings.Contains(out, testPassword) {
		t.Fatalf("log: %s", out)
	}
	if l.Stats().RedisErrors < 40 {
		t.Fatalf("stats %+v: expected most decisions to probe Redis", l.Stats())
	}
}

func TestProbeIntervalSkipsRedisAfterAFailure(t *testing.T) {
	clock := newFakeClock()
	l := deadLimiter(t, OnErrorLocal, nil)
	l.now = clock.Now
	l.cfg.ProbeInterval = time.Second
	p := mustLimits(t, "100/min")
	for range 10 {
		_, _ = l.Allow(context.Background(), "alice", p)
	}
	if n := l.Stats().RedisErrors; n != 1 {
		t.Fatalf("%d Redis attempts within one probe interval, want 1", n)
	}
	clock.Advance(time.Second)
	for range 10 {
		_, _ = l.Allow(context.Background(), "alice", p)
	}
	if n := l.Stats().RedisErrors; n != 2 {
		t.Fatalf("%d Redis attempts after one interval, want 2", n)
	}
}

func TestDenyCacheAnswersUntilRetryAfterAndIsBounded(t *testing.T) {
	p := mustLimits(t, "10/min")
	c := newDenyCache(16)
	t0 := time.Unix(1000, 0)
	debts := []int64{60_000_000}
	r := p.result(false, 1, debts)
	c.put(p, "alice", 1, debts, r, t0)
	got, ok := c.get(p, "alice", 1, t0.Add(2*time.Second))
	if !ok || got.Source != SourceDenyCache || got.RetryAfter() != 4*time.Second || got.Decided().ResetAfter != 58*time.Second {
		t.Fatalf("hit: ok=%t %s", ok, describe(got))
	}
	if _, ok := c.get(p, "alice", 2, t0); ok {
		t.Fatal("hit for another cost")
	}
	if _, ok := c.get(mustLimits(t, "5/min"), "alice", 1, t0); ok {
		t.Fatal("hit for another policy")
	}
	if _, ok := c.get(p, "alice", 1, t0.Add(6*time.Second)); ok {
		t.Fatal("hit after retry-after passed")
	}
	if c.len() != 0 {
		t.Fatal("expired entry kept")
	}
	for i := range 1000 {
		c.put(p, fmt.Sprint("s", i), 1, debts, r, t0)
		if c.len() > 16 {
			t.Fatalf("len %d > capacity", c.len())
		}
	}
}

func TestClosedLimiterRefusesDecisions(t *testing.T) {
	l := deadLimiter(t, OnErrorAllow, nil)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := l.Allow(context.Background(), "a", mustLimits(t, "1/s")); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v", err)
	}
}
