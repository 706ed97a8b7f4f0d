package ratelimit

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Benchmarks against a real Redis, run together so their ratios come from
// one run (see BENCHMARKS.md):
//
//	eval "export $(scripts/redis.sh start)" && cd pkg && \
//	  go test -run '^$' -bench 'Redis' -benchtime 3s -count 3 ./ratelimit/
//
// Each op decides one request for a random subject among 100k against the
// same limits. Beside ns/op they report Redis server time per op:
// redis-us/op sums INFO commandstats usec of the top-level commands (EVALSHA,
// EVAL, INCR, EXPIRE: commands a script calls are inside its usec), and
// redis-cpu-us/op is the server process's CPU (user+sys, so network I/O
// included) per op.

const benchSubjects = 100_000

func benchRedis(b *testing.B) *redis.Client {
	b.Helper()
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = os.Getenv("EDGEGUARD_TEST_REDIS_ADDR")
	}
	if addr == "" {
		b.Skip("REDIS_ADDR unset (eval \"export $(scripts/redis.sh start)\")")
	}
	// Identical client options for every contender.
	c := redis.NewClient(&redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DisableIdentity:       true,
	})
	b.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		b.Fatalf("redis at %s: %v", addr, err)
	}
	return c
}

var benchSubjectNames = func() []string {
	s := make([]string, benchSubjects)
	for i := range s {
		s[i] = "user:" + strconv.Itoa(i)
	}
	return s
}()

// redisStats reads what the server spent so far.
func redisStats(b *testing.B, c *redis.Client) (cmdUsec, cpuUsec float64) {
	ctx := context.Background()
	info, err := c.Info(ctx, "commandstats", "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if name, rest, ok := strings.Cut(line, ":"); ok {
			switch name {
			case "cmdstat_evalsha", "cmdstat_eval", "cmdstat_incr", "cmdstat_expire":
				for f := range strings.SplitSeq(rest, ",") {
					if v, ok := strings.CutPrefix(f, "usec="); ok {
						n, _ := strconv.ParseFloat(v, 64)
						cmdUsec += n
					}
				}
			case "used_cpu_sys", "used_cpu_user":
				n, _ := strconv.ParseFloat(rest, 64)
				cpuUsec += n * 1e6
			}
		}
	}
	return cmdUsec, cpuUsec
}

// runRedisBench runs decide in parallel (8 per GOMAXPROCS) on random
// subjects and reports the Redis cost per op.
func runRedisBench(b *testing.B, c *redis.Client, decide func(ctx context.Context, subject string) error) {
	ctx := context.Background()
	// Warm up: connections, script cache.
	for i := range 64 {
		if err := decide(ctx, benchSubjectNames[i]); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	cmd0, cpu0 := redisStats(b, c)
	var failures atomic.Int64
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		for pb.Next() {
			if err := decide(ctx, benchSubjectNames[rng.IntN(benchSubjects)]); err != nil {
				failures.Add(1)
			}
		}
	})
	b.StopTimer()
	cmd1, cpu1 := redisStats(b, c)
	if n := failures.Load(); n > 0 {
		b.Fatalf("%d decisions failed", n)
	}
	b.ReportMetric((cmd1-cmd0)/float64(b.N), "redis-us/op")
	b.ReportMetric((cpu1-cpu0)/float64(b.N), "redis-cpu-us/op")
}

var (
	threeLimits = []Limit{
		{Rate: 10, Period: time.Second},
		{Rate: 600, Period: time.Minute},
		{Rate: 10000, Period: time.Hour},
	}
	threeRedisRate = []redis_rate.Limit{redis_rate.PerSecond(10), redis_rate.PerMinute(600), redis_rate.PerHour(10000)}
)

func benchGCRA(b *testing.B, limits []Limit, batch bool) {
	c := benchRedis(b)
	l, err := New(Config{Client: c, KeyPrefix: uniquePrefix(b), Timeout: time.Second, Batch: batch})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	p := MustPolicy(limits...)
	runRedisBench(b, c, func(ctx context.Context, subject string) error {
		r, err := l.Allow(ctx, subject, p)
		if err == nil && r.Source != SourceRedis && r.Source != SourceDenyCache {
			return ErrUnavailable
		}
		return err
	})
}

func benchRedisRate(b *testing.B, limits []redis_rate.Limit) {
	c := benchRedis(b)
	rl := redis_rate.NewLimiter(c)
	prefix := uniquePrefix(b)
	suffix := []string{":s", ":m", ":h"}
	runRedisBench(b, c, func(ctx context.Context, subject string) error {
		for i, lim := range limits {
			r, err := rl.Allow(ctx, prefix+subject+suffix[i], lim)
			if err != nil {
				return err
			}
			if r.Allowed == 0 {
				return nil
			}
		}
		return nil
	})
}

// BenchmarkGCRARedis: ours, three limits (10/s, 600/min, 10000/h) in one
// EVALSHA.
func BenchmarkGCRARedis(b *testing.B) { benchGCRA(b, threeLimits, false) }

// BenchmarkGCRARedisBatched: the same with Config.Batch.
func BenchmarkGCRARedisBatched(b *testing.B) { benchGCRA(b, threeLimits, true) }

// BenchmarkRedisRateRedis: go-redis/redis_rate v10, one EVALSHA per limit.
func BenchmarkRedisRateRedis(b *testing.B) { benchRedisRate(b, threeRedisRate) }

// BenchmarkFixedWindowRedis: Kong's fixed windows, INCR (+EXPIRE on a
// window's first hit) per limit.
func BenchmarkFixedWindowRedis(b *testing.B) {
	c := benchRedis(b)
	fw := &fixedWindow{client: c, prefix: uniquePrefix(b)}
	limits := MustPolicy(threeLimits...).Limits()
	runRedisBench(b, c, func(ctx context.Context, subject string) error {
		_, err := fw.allow(ctx, subject, limits, time.Now())
		return err
	})
}

// BenchmarkGCRARedisSingleLimit: ours, 10/s only.
func BenchmarkGCRARedisSingleLimit(b *testing.B) { benchGCRA(b, threeLimits[:1], false) }

// BenchmarkRedisRateRedisSingleLimit: redis_rate, 10/s only.
func BenchmarkRedisRateRedisSingleLimit(b *testing.B) { benchRedisRate(b, threeRedisRate[:1]) }
