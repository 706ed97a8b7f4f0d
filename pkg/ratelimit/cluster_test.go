package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeguard/edgeguard/pkg/redisconn"
	"github.com/edgeguard/edgeguard/pkg/testenv"
)

// Integration tests on a real Redis Cluster (3 masters, 3 replicas):
// EDGEGUARD_TEST_REDIS_CLUSTER_ADDRS (scripts/test.sh) for the shared one,
// testenv.StartRedisCluster for the private one the failover test kills.

// newClusterLimiter builds a Limiter with its own Cluster client on addrs
// and a fresh key prefix (unless mutate sets one).
func newClusterLimiter(t testing.TB, addrs []string, mutate func(*Config)) *Limiter {
	t.Helper()
	return newTestLimiter(t, addrs[0], func(c *Config) {
		c.Redis.Addrs = addrs
		if mutate != nil {
			mutate(c)
		}
	})
}

// keysOf lists the Redis keys of subject's decisions under p.
func keysOf(l *Limiter, subject string, p *Policy) []string {
	var keys []string
	for _, suffix := range p.suffix {
		keys = append(keys, l.cfg.KeyPrefix+"{"+subjectKey(subject)+"}"+suffix)
	}
	return keys
}

func clusterClient(t testing.TB, addrs []string) *redis.ClusterClient {
	t.Helper()
	c, err := redisconn.New(redisconn.Config{Addrs: addrs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*redis.ClusterClient)
}

func TestContractRedisCluster(t *testing.T) {
	addrs := testenv.RedisClusterAddrs(t)
	for _, v := range []struct {
		name   string
		mutate func(*Config)
	}{
		{"deny cache", nil},
		{"no deny cache", func(c *Config) { c.DenyCacheSize = -1 }},
		{"batched", func(c *Config) { c.Batch = true; c.DenyCacheSize = -1 }},
	} {
		t.Run(v.name, func(t *testing.T) {
			runContract(t, func(t *testing.T, clock *fakeClock) decider {
				l := newClusterLimiter(t, addrs, func(c *Config) {
					c.Timeout = time.Second // -race on a busy machine
					if v.mutate != nil {
						v.mutate(c)
					}
				})
				l.now = clock.Now
				l.scriptNow = true
				return l
			})
		})
	}
}

// Every key of one decision is in one slot (the {subject} hash tag), and
// the subjects of many clients spread over every master.
func TestClusterKeysOfASubjectShareASlotAndSubjectsSpreadOverMasters(t *testing.T) {
	addrs := testenv.RedisClusterAddrs(t)
	cc := clusterClient(t, addrs)
	l := newClusterLimiter(t, addrs, func(c *Config) { c.Timeout = time.Second; c.DenyCacheSize = -1 })
	p := mustLimits(t, "10/s, 100/min, 1000/h")
	ctx := context.Background()
	masters := map[string]int{}
	subjects := []string{"}leading-brace", "u:{x}", "ip:203.0.113.7", "h:a}b{c"}
	for i := range 60 {
		subjects = append(subjects, fmt.Sprintf("u:user-%d", i))
	}
	for _, s := range subjects {
		r, err := l.Allow(ctx, s, p)
		if err != nil || !r.Allowed || r.Source != SourceRedis {
			t.Fatalf("subject %q: %s source=%s err=%v", s, describe(r), r.Source, err)
		}
		keys := keysOf(l, s, p)
		slot := -1
		for _, k := range keys {
			n, err := cc.ClusterKeySlot(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if slot >= 0 && int(n) != slot {
				t.Fatalf("subject %q: keys %q in slots %d and %d", s, keys, slot, n)
			}
			slot = int(n)
			if cc.Exists(ctx, k).Val() != 1 {
				t.Fatalf("subject %q: key %q not written", s, k)
			}
		}
		m, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			t.Fatal(err)
		}
		masters[m.Options().Addr]++
	}
	if len(masters) != 3 {
		t.Fatalf("subjects on %d masters %v, want all 3", len(masters), masters)
	}
	t.Logf("%d subjects on the masters: %v", len(subjects), masters)
}

// Two edge instances (two Limiters, two Cluster clients) share each
// subject's limit exactly, for subjects on every master.
func TestClusterLimitIsExactAcrossTwoInstances(t *testing.T) {
	addrs := testenv.RedisClusterAddrs(t)
	prefix := uniquePrefix(t)
	var ls [2]*Limiter
	for i := range ls {
		ls[i] = newClusterLimiter(t, addrs, func(c *Config) {
			c.KeyPrefix = prefix
			c.Timeout = 2 * time.Second
			c.DenyCacheSize = -1
			c.Batch = i == 1 // one pipelined instance: pipelines split by node
		})
	}
	p := mustLimits(t, "20/h, 1000/d")
	const subjects, perSubject = 12, 40
	var allowed [subjects]atomic.Int64
	var other atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := ls[g%2]
			for i := range subjects * perSubject / 8 * 2 {
				s := (i + g) % subjects
				r, err := l.Allow(context.Background(), fmt.Sprintf("k:key-%d", s), p)
				if err != nil || r.Source != SourceRedis {
					other.Add(1)
					continue
				}
				if r.Allowed {
					allowed[s].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := other.Load(); n != 0 {
		t.Fatalf("%d decisions failed or did not come from Redis", n)
	}
	for s := range allowed {
		if n := allowed[s].Load(); n != 20 {
			t.Errorf("subject %d: %d allowed, want exactly 20", s, n)
		}
	}
}

// A master killed under load: while its replica takes over, decisions on
// its slots follow the configured fail policy (local: answers, never an
// error; deny: ErrUnavailable) and, with no help, come from Redis again.
// The gap — kill to the first decision Redis made again — is measured and
// logged (BENCHMARKS.md "Redis Cluster failover").
func TestClusterMasterKilledUnderLoadFallsBackAndRecovers(t *testing.T) {
	if testing.Short() {
		t.Skip("failover takes seconds")
	}
	cl := testenv.StartRedisCluster(t)
	p := mustLimits(t, "1000000/s")
	const subject = "u:failover"
	slot := cl.Slot(DefaultKeyPrefix + "{" + subject + "}:second")
	victim := cl.MasterOf(slot)
	if victim == "" {
		t.Fatal("no master serves the subject's slot")
	}

	type run struct {
		policy    ErrorPolicy
		l         *Limiter
		recovered atomic.Int64 // unix ns: start of the first Redis decision begun after the kill
		fallbacks atomic.Int64 // fail-policy answers after the kill
	}
	runs := []*run{{policy: OnErrorLocal}, {policy: OnErrorDeny}}
	for _, r := range runs {
		// Production settings (Timeout 50ms, ProbeInterval 250ms), each
		// limiter with its own Cluster client, as two edge instances.
		r.l = newClusterLimiter(t, cl.Addrs(), func(c *Config) {
			c.KeyPrefix = DefaultKeyPrefix
			c.OnRedisError = r.policy
			c.DenyCacheSize = -1
		})
	}

	var killed atomic.Int64 // unix ns; 0 before the kill
	var bad atomic.Value    // the first answer outside the policy
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range runs {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					start := time.Now().UnixNano()
					res, err := r.l.Allow(context.Background(), subject, p)
					after := killed.Load() != 0 && start > killed.Load()
					switch {
					case err == nil && res.Source == SourceRedis && res.Allowed:
						if after {
							r.recovered.CompareAndSwap(0, start)
						}
					case r.policy == OnErrorLocal && err == nil && res.Source == SourceLocal && res.Allowed,
						r.policy == OnErrorDeny && errors.Is(err, ErrUnavailable) && !res.Allowed:
						if after {
							r.fallbacks.Add(1)
						}
					default:
						bad.CompareAndSwap(nil, fmt.Sprintf("on_redis_error=%s: allowed=%t source=%s err=%v",
							r.policy, res.Allowed, res.Source, err))
					}
					time.Sleep(2 * time.Millisecond)
				}
			}()
		}
	}
	defer func() { close(stop); wg.Wait() }()

	// Before the kill every limiter decides on Redis.
	deadline := time.Now().Add(10 * time.Second)
	for _, r := range runs {
		for r.l.Stats().RedisDecisions < 20 || r.l.FallbackActive() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not deciding on Redis before the kill: %+v", r.policy, r.l.Stats())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	cl.Kill(victim)
	kill := time.Now()
	killed.Store(kill.UnixNano())

	var failover time.Duration // when the live nodes name another master for the slot
	deadline = kill.Add(30 * time.Second)
	for {
		if b := bad.Load(); b != nil {
			t.Fatalf("answer outside the fail policy: %s", b)
		}
		if failover == 0 {
			if m := cl.MasterOf(slot); m != "" && m != victim {
				failover = time.Since(kill)
			}
		}
		if failover != 0 && runs[0].recovered.Load() != 0 && runs[1].recovered.Load() != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery within 30 s of the kill (failover seen after %s; local recovered %t, deny recovered %t)",
				failover, runs[0].recovered.Load() != 0, runs[1].recovered.Load() != 0)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // decisions go on after recovery
	if b := bad.Load(); b != nil {
		t.Fatalf("answer outside the fail policy: %s", b)
	}
	for _, r := range runs {
		gap := time.Duration(r.recovered.Load() - kill.UnixNano())
		if r.fallbacks.Load() == 0 {
			t.Errorf("%s: no fail-policy answer after the kill", r.policy)
		}
		t.Logf("failover gap on_redis_error=%s: %s from kill to the first Redis decision (%d fail-policy answers; the cluster named the new master after %s)",
			r.policy, gap.Round(time.Millisecond), r.fallbacks.Load(), failover.Round(time.Millisecond))
		// The client follows the new master within a probe or two of the
		// failover (redisconn reloads the slot map when a node fails);
		// go-redis alone waits until its map is 10 s old.
		if lag := gap - failover; lag > 3*time.Second {
			t.Errorf("%s: first Redis decision %s after the cluster named the new master, want < 3s", r.policy, lag)
		}
	}
}
