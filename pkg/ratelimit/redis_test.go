package ratelimit

import (
	"context"
	"errors"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestRedisDecidesOnTheServerClockAndKeysExpireWithTheirTAT(t *testing.T) {
	addr := redisAddr(t)
	l := newTestLimiter(t, addr, func(c *Config) { c.DenyCacheSize = -1; c.Timeout = time.Second })
	rc := rawClient(t, addr)
	p := mustLimits(t, "5/s, 100/min")
	ctx := context.Background()
	for i := range 5 {
		r, err := l.Allow(ctx, "alice", p)
		if err != nil || !r.Allowed || r.Source != SourceRedis {
			t.Fatalf("request %d: %s err=%v", i, describe(r), err)
		}
	}
	r, err := l.Allow(ctx, "alice", p)
	if err != nil || r.Allowed || r.Decider != 0 {
		t.Fatalf("6th request: %s err=%v", describe(r), err)
	}
	if ra := r.RetryAfter(); ra <= 0 || ra > 200*time.Millisecond {
		t.Fatalf("retry after %s, want (0, 200ms]", ra)
	}
	sec := l.cfg.KeyPrefix + "{alice}:second"
	minute := l.cfg.KeyPrefix + "{alice}:minute"
	vals, err := rc.MGet(ctx, sec, minute).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		s, _ := v.(string)
		tat, err := strconv.ParseInt(s, 10, 64)
		now := time.Now().UnixMicro()
		if err != nil || tat < now || tat > now+3_000_000 {
			t.Fatalf("key %d holds %q, want an integer TAT in µs within 3s of now (%d)", i, s, now)
		}
	}
	if pttl := rc.PTTL(ctx, sec).Val(); pttl <= 0 || pttl > time.Second {
		t.Fatalf("second key PTTL %s, want (0, 1s]", pttl)
	}
	if pttl := rc.PTTL(ctx, minute).Val(); pttl <= 2*time.Second || pttl > 3*time.Second {
		t.Fatalf("minute key PTTL %s, want (2s, 3s]: 5 cells of 600ms", pttl)
	}
	// A denied request writes nothing.
	before, _ := rc.MGet(ctx, sec, minute).Result()
	if r, _ := l.Allow(ctx, "alice", p); r.Allowed {
		t.Fatal("allowed while over the limit")
	}
	after, _ := rc.MGet(ctx, sec, minute).Result()
	if before[0] != after[0] || before[1] != after[1] {
		t.Fatalf("a denial changed state: %v -> %v", before, after)
	}
}

func TestSingleLimitScriptDecidesOnTheServerClock(t *testing.T) {
	addr := redisAddr(t)
	l := newTestLimiter(t, addr, func(c *Config) { c.DenyCacheSize = -1; c.Timeout = time.Second })
	rc := rawClient(t, addr)
	p := mustLimits(t, "5/s")
	ctx := context.Background()
	key := l.cfg.KeyPrefix + "{bob}:second"
	for i := range 5 {
		r, err := l.Allow(ctx, "bob", p)
		if err != nil || !r.Allowed || r.Source != SourceRedis || r.Decided().Remaining != 4-i {
			t.Fatalf("request %d: %s err=%v", i, describe(r), err)
		}
	}
	r, err := l.Allow(ctx, "bob", p)
	if err != nil || r.Allowed {
		t.Fatalf("6th request: %s err=%v", describe(r), err)
	}
	if ra := r.RetryAfter(); ra <= 0 || ra > 200*time.Millisecond {
		t.Fatalf("retry after %s, want (0, 200ms]", ra)
	}
	s, err := rc.Get(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	tat, err := strconv.ParseInt(s, 10, 64)
	if now := time.Now().UnixMicro(); err != nil || tat < now || tat > now+time.Second.Microseconds() {
		t.Fatalf("key holds %q, want an integer TAT within 1s of now (%d)", s, now)
	}
	if pttl := rc.PTTL(ctx, key).Val(); pttl <= 0 || pttl > time.Second {
		t.Fatalf("PTTL %s, want (0, 1s]", pttl)
	}
	// A fresh key written by SET NX expires one emission interval later.
	if r, _ := l.AllowN(ctx, "fresh", p, 2); !r.Allowed || r.Decided().ResetAfter != 400*time.Millisecond {
		t.Fatalf("fresh subject, cost 2: %s", describe(r))
	}
	if pttl := rc.PTTL(ctx, l.cfg.KeyPrefix+"{fresh}:second").Val(); pttl <= 300*time.Millisecond || pttl > 400*time.Millisecond {
		t.Fatalf("fresh key PTTL %s, want (300ms, 400ms]", pttl)
	}
}

func TestDenyCacheAnswersWithoutARoundTrip(t *testing.T) {
	addr := redisAddr(t)
	l := newTestLimiter(t, addr, func(c *Config) { c.Timeout = time.Second })
	rc := rawClient(t, addr)
	p := mustLimits(t, "1/min")
	ctx := context.Background()
	if r, _ := l.Allow(ctx, "alice", p); !r.Allowed {
		t.Fatal("first request denied")
	}
	if r, _ := l.Allow(ctx, "alice", p); r.Allowed || r.Source != SourceRedis {
		t.Fatalf("second: %s source=%s", describe(r), r.Source)
	}
	// Even with the state gone from Redis, the cached denial holds.
	rc.Del(ctx, l.cfg.KeyPrefix+"{alice}:minute")
	for range 10 {
		r, err := l.Allow(ctx, "alice", p)
		if err != nil || r.Allowed || r.Source != SourceDenyCache || r.RetryAfter() <= 58*time.Second {
			t.Fatalf("%s source=%s err=%v", describe(r), r.Source, err)
		}
	}
	if st := l.Stats(); st.RedisDecisions != 2 || st.DenyCacheHits != 10 {
		t.Fatalf("stats %+v", st)
	}
	// Another subject is not affected.
	if r, _ := l.Allow(ctx, "bob", p); !r.Allowed {
		t.Fatal("bob denied")
	}
}

func TestScriptIsReloadedAfterRedisForgetsIt(t *testing.T) {
	addr := redisAddr(t)
	rc := rawClient(t, addr)
	for _, batch := range []bool{false, true} {
		t.Run("batch="+strconv.FormatBool(batch), func(t *testing.T) {
			l := newTestLimiter(t, addr, func(c *Config) { c.Batch = batch; c.Timeout = time.Second })
			p := mustLimits(t, "10/min")
			if err := rc.ScriptFlush(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := l.Allow(context.Background(), "alice", p)
					if err != nil || r.Source != SourceRedis {
						t.Errorf("after SCRIPT FLUSH: %s source=%s err=%v", describe(r), r.Source, err)
					}
				}()
			}
			wg.Wait()
		})
	}
}

func TestConcurrentDecisionsAreExact(t *testing.T) {
	addr := redisAddr(t)
	for _, batch := range []bool{false, true} {
		t.Run("batch="+strconv.FormatBool(batch), func(t *testing.T) {
			l := newTestLimiter(t, addr, func(c *Config) { c.Batch = batch; c.Timeout = 2 * time.Second; c.DenyCacheSize = -1 })
			p := mustLimits(t, "100/h")
			var allowed, fallbacks atomic.Int64
			var wg sync.WaitGroup
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 20 {
						r, err := l.Allow(context.Background(), "hot", p)
						if err != nil || r.Source != SourceRedis {
							fallbacks.Add(1)
						}
						if r.Allowed {
							allowed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			if fallbacks.Load() != 0 {
				t.Fatalf("%d decisions did not come from Redis", fallbacks.Load())
			}
			if n := allowed.Load(); n != 100 {
				t.Fatalf("allowed %d of 320, want exactly 100", n)
			}
		})
	}
}

// Redis killed or frozen mid-run: every decision answers within the timeout
// with the fail policy; when Redis is back, decisions come from Redis again.
func TestRedisKilledMidRunFallsBackWithinTimeoutAndRecovers(t *testing.T) {
	srv := startRedisServer(t)
	const timeout = 50 * time.Millisecond
	// Generous for -race on two shared cores; a hang would be seconds.
	const slack = 400 * time.Millisecond
	p := mustLimits(t, "1000/s")
	type check func(t *testing.T, r Result, err error)
	policies := []struct {
		policy ErrorPolicy
		check  check
	}{
		{OnErrorLocal, func(t *testing.T, r Result, err error) {
			if err != nil || !r.Allowed || r.Source != SourceLocal {
				t.Fatalf("local: %s source=%s err=%v", describe(r), r.Source, err)
			}
		}},
		{OnErrorAllow, func(t *testing.T, r Result, err error) {
			if err != nil || !r.Allowed || r.Source != SourceFailOpen {
				t.Fatalf("allow: %s source=%s err=%v", describe(r), r.Source, err)
			}
		}},
		{OnErrorDeny, func(t *testing.T, r Result, err error) {
			if !errors.Is(err, ErrUnavailable) || r.Allowed {
				t.Fatalf("deny: %s err=%v", describe(r), err)
			}
		}},
	}
	outages := []struct {
		name         string
		down, resume func()
	}{
		{"killed", srv.Kill, srv.Start},
		{"frozen", func() { srv.Signal(syscall.SIGSTOP) }, func() { srv.Signal(syscall.SIGCONT) }},
	}
	for _, o := range outages {
		for _, pc := range policies {
			t.Run(o.name+"/"+string(pc.policy), func(t *testing.T) {
				l := newTestLimiter(t, srv.Addr(), func(c *Config) {
					c.Timeout = timeout
					c.OnRedisError = pc.policy
					c.ProbeInterval = 20 * time.Millisecond
				})
				decide := func() (Result, time.Duration, error) {
					start := time.Now()
					r, err := l.Allow(context.Background(), "alice", p)
					return r, time.Since(start), err
				}
				waitRedis := func(what string) {
					deadline := time.Now().Add(10 * time.Second)
					for {
						r, _, err := decide()
						if err == nil && r.Source == SourceRedis {
							return
						}
						if time.Now().After(deadline) {
							t.Fatalf("%s: no Redis decision within 10s (last: source=%s err=%v)", what, r.Source, err)
						}
						time.Sleep(20 * time.Millisecond)
					}
				}
				waitRedis("before the outage")
				o.down()
				resumed := false
				defer func() {
					if !resumed {
						o.resume()
					}
				}()
				var slowest time.Duration
				defer func() { t.Logf("slowest decision during the outage: %s", slowest) }()
				for i := range 20 {
					r, took, err := decide()
					slowest = max(slowest, took)
					if took > timeout+slack {
						t.Fatalf("decision %d took %s during the outage (timeout %s)", i, took, timeout)
					}
					pc.check(t, r, err)
					time.Sleep(5 * time.Millisecond)
				}
				if !l.FallbackActive() {
					t.Fatal("FallbackActive() = false during the outage")
				}
				o.resume()
				resumed = true
				waitRedis("after the outage")
				if l.FallbackActive() {
					t.Fatal("FallbackActive() = true after recovery")
				}
			})
		}
	}
}

func TestRedisPasswordNeverAppearsInErrorsOrLogs(t *testing.T) {
	srv := startRedisServer(t, "--requirepass", testPassword)
	p := mustLimits(t, "10/min")
	t.Run("right password works", func(t *testing.T) {
		l := newTestLimiter(t, srv.Addr(), func(c *Config) { c.Redis.Password = testPassword; c.Timeout = time.Second })
		if r, err := l.Allow(context.Background(), "alice", p); err != nil || r.Source != SourceRedis {
			t.Fatalf("%s source=%s err=%v", describe(r), r.Source, err)
		}
	})
	wrong := testPassword + "-wrong"
	for name, mutate := range map[string]func(*Config){
		"wrong password": func(c *Config) { c.Redis.Password = wrong },
		"no password":    func(c *Config) {},
		"wrong user":     func(c *Config) { c.Redis.Username = "nobody"; c.Redis.Password = wrong },
	} {
		t.Run(name, func(t *testing.T) {
			var buf testenv.Buffer
			log := zerolog.New(&buf)
			l := newTestLimiter(t, srv.Addr(), func(c *Config) {
				mutate(c)
				c.Logger = &log
				c.OnRedisError = OnErrorDeny
				c.Timeout = time.Second
				c.ProbeInterval = time.Nanosecond
				c.WarnInterval = time.Nanosecond // log every failure
			})
			var msgs []string
			for range 3 {
				_, err := l.Allow(context.Background(), "alice", p)
				if !errors.Is(err, ErrUnavailable) {
					t.Fatalf("err = %v, want ErrUnavailable", err)
				}
				msgs = append(msgs, err.Error())
			}
			if err := l.Close(); err != nil {
				msgs = append(msgs, err.Error())
			}
			msgs = append(msgs, buf.String(), l.cfg.String(), l.cfg.GoString())
			all := strings.Join(msgs, "\n")
			if !strings.Contains(buf.String(), "redis_unavailable") {
				t.Fatalf("no warning logged: %q", buf.String())
			}
			if strings.Contains(all, testPassword) {
				t.Fatalf("password leaked:\n%s", all)
			}
		})
	}
}

func TestRedactRemovesConfiguredSecrets(t *testing.T) {
	l := deadLimiter(t, OnErrorDeny, nil)
	got := l.redact(errors.New("auth failed for " + testPassword + " at host"))
	if strings.Contains(got, testPassword) || !strings.Contains(got, "[redacted]") {
		t.Fatalf("got %q", got)
	}
}
