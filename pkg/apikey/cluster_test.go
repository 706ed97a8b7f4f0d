package apikey

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeguard/edgeguard/pkg/ratelimit"
	"github.com/edgeguard/edgeguard/pkg/redisconn"
	"github.com/edgeguard/edgeguard/pkg/testenv"
)

// Integration tests on a real Redis Cluster (3 masters, 3 replicas):
// EDGEGUARD_TEST_REDIS_CLUSTER_ADDRS (scripts/test.sh) for the shared one,
// testenv.StartRedisCluster for the private one the failover test kills.

// clusterClient is a Cluster client on addrs as the edge and llm-api build
// it (redisconn), closed at the end of the test.
func clusterClient(t testing.TB, addrs []string) *redis.ClusterClient {
	t.Helper()
	c, err := redisconn.New(redisconn.Config{Addrs: addrs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*redis.ClusterClient)
}

// clusterInstances builds two validators, each with its own Cluster client
// (two edge instances), sharing a key prefix, both subscribed.
func clusterInstances(t *testing.T, f *fakeLLM, addrs []string, mutate func(*Config)) (a, b *Validator, prefix string) {
	t.Helper()
	prefix = uniquePrefix()
	mk := func() *Validator {
		v := newTestValidator(t, f, nil, func(c *Config) {
			c.Redis, c.RedisKeyPrefix = clusterClient(t, addrs), prefix
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

// The shared layer works on a Cluster (an entry and its key id's index may
// live on different masters), and revocations published on ANY node —
// each of the five that do not hold the subscriptions, replicas included —
// reach both instances within 1 s: PUBLISH is broadcast over the cluster bus.
func TestClusterSharedCacheAndRevocationsPublishedOnAnyNode(t *testing.T) {
	addrs := testenv.RedisClusterAddrs(t)
	f := newFakeLLM(t)
	a, b, prefix := clusterInstances(t, f, addrs, nil)
	cc := clusterClient(t, addrs)
	ctx := context.Background()

	// The subscribers' node: the master of the channel's slot (go-redis
	// subscribes there).
	sub, err := cc.MasterForKey(ctx, RevocationChannel)
	if err != nil {
		t.Fatal(err)
	}
	var publishers []string
	for _, addr := range addrs {
		if addr != sub.Options().Addr {
			publishers = append(publishers, addr)
		}
	}
	if len(publishers) != len(addrs)-1 {
		t.Fatalf("subscribers' node %s is not one of %v", sub.Options().Addr, addrs)
	}

	keys := make([]Key, len(publishers)+1)
	for i := range keys {
		keys[i] = mustGenerate(t, EnvLive)
		f.add(keys[i], fakeKey{subject: fmt.Sprintf("user-%d", i)})
		if _, err := a.Validate(ctx, clientA, keys[i]); err != nil {
			t.Fatal(err)
		}
		h := hashOf(keys[i])
		if !eventually(2*time.Second, func() bool { return cc.Exists(ctx, entryKey(prefix, &h)).Val() == 1 }) {
			t.Fatalf("key %d: answer not stored in the cluster", i)
		}
		if _, err := b.Validate(ctx, clientA, keys[i]); err != nil {
			t.Fatal(err)
		}
	}
	if f.calls.Load() != int64(len(keys)) || b.Stats().SharedHits != uint64(len(keys)) {
		t.Fatalf("%d validator calls, %d shared hits on b; want %d and %d", f.calls.Load(), b.Stats().SharedHits, len(keys), len(keys))
	}

	revoked := func(what string, n uint64, k Key) {
		t.Helper()
		start := time.Now()
		for name, v := range map[string]*Validator{"a": a, "b": b} {
			if !eventually(time.Second, func() bool { return v.Stats().Revocations == n }) {
				t.Fatalf("%s: instance %s did not get the revocation within 1s", what, name)
			}
			if _, err := v.Validate(ctx, clientA, k); !errors.Is(err, ReasonRevoked) {
				t.Fatalf("%s: instance %s still accepts the key: %v", what, name, err)
			}
		}
		t.Logf("%s: revoked on both instances after %s", what, time.Since(start).Round(time.Microsecond))
	}
	// llm-api's side with a Cluster client (REDIS_ADDR listing the nodes):
	// deletes the shared entries, then publishes.
	f.add(keys[0], fakeKey{reason: ReasonRevoked})
	if err := PublishRevocation(ctx, cc, keys[0].KID()); err != nil {
		t.Fatal(err)
	}
	revoked("PublishRevocation", 1, keys[0])
	// A plain PUBLISH on each other node.
	for i, addr := range publishers {
		k := keys[i+1]
		f.add(k, fakeKey{reason: ReasonRevoked})
		msg, _ := json.Marshal(revocation{KeyID: k.KID(), At: time.Now().UTC().Format(time.RFC3339)})
		node := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
		err := node.Publish(ctx, RevocationChannel, msg).Err()
		_ = node.Close()
		if err != nil {
			t.Fatalf("PUBLISH on %s: %v", addr, err)
		}
		revoked("PUBLISH on "+addr, uint64(i+2), k)
	}
	// Every instance deleted the shared entries of the revoked keys.
	for i, k := range keys {
		h := hashOf(k)
		if raw, err := cc.Get(ctx, entryKey(prefix, &h)).Result(); err == nil && !strings.Contains(raw, `"reason":"key_revoked"`) {
			t.Fatalf("key %d: the cluster still holds a valid entry", i)
		}
		if n := cc.Exists(ctx, kidKey(prefix, k.KID())).Val(); n != 0 {
			t.Fatalf("key %d: its key id index survived the revocation", i)
		}
	}
}

func TestClusterFailuresAreCountedAcrossInstances(t *testing.T) {
	addrs := testenv.RedisClusterAddrs(t)
	f := newFakeLLM(t)
	a, b, _ := clusterInstances(t, f, addrs, func(c *Config) { c.FailureLimit = ratelimit.Limit{Rate: 10, Period: time.Hour} })
	ctx := context.Background()
	for i := range 10 {
		v := []*Validator{a, b}[i%2]
		if _, err := v.Validate(ctx, clientA, mustGenerate(t, "")); !errors.Is(err, ReasonUnknown) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	for _, v := range []*Validator{a, b} {
		_, _ = v.Validate(ctx, clientA, mustGenerate(t, ""))
		if _, err := v.Validate(ctx, clientA, mustGenerate(t, "")); !errors.Is(err, ErrTooManyFailures) {
			t.Fatalf("client not blocked after the shared limit: %v", err)
		}
	}
	if got := f.calls.Load(); got != 12 {
		t.Fatalf("%d validator calls, want 12 (10 + one per instance)", got)
	}
}

// The master holding the revocation subscriptions crashes: the subscriber
// follows the failover by itself, drops its cache (revocations published
// meanwhile are lost) and receives revocations again. The time from the
// kill to the resubscription is measured.
func TestClusterRevocationSubscriberFollowsAFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("failover takes seconds")
	}
	cl := testenv.StartRedisCluster(t)
	f := newFakeLLM(t)
	v := newTestValidator(t, f, nil, func(c *Config) { c.Redis, c.RedisKeyPrefix = clusterClient(t, cl.Addrs()), uniquePrefix() })
	waitSubscribed(t, v)
	ctx := context.Background()
	k := mustGenerate(t, EnvLive)
	f.add(k, fakeKey{subject: "s"})
	if _, err := v.Validate(ctx, clientA, k); err != nil {
		t.Fatal(err)
	}
	victim := cl.MasterOf(cl.Slot(RevocationChannel))
	cl.Kill(victim)
	kill := time.Now()
	if !eventually(30*time.Second, func() bool { return v.Stats().Entries == 0 }) {
		t.Fatal("subscriber not back (cache not dropped) 30s after the kill")
	}
	resub := time.Since(kill)
	if _, err := v.Validate(ctx, clientA, k); err != nil {
		t.Fatal(err)
	}
	f.add(k, fakeKey{reason: ReasonRevoked})
	if err := PublishRevocation(ctx, clusterClient(t, cl.Addrs()), k.KID()); err != nil {
		t.Fatal(err)
	}
	if !eventually(time.Second, func() bool { _, err := v.Validate(ctx, clientA, k); return errors.Is(err, ReasonRevoked) }) {
		t.Fatal("revocation after the failover not applied within 1s")
	}
	t.Logf("revocation subscriber back %s after its master was killed", resub.Round(time.Millisecond))
}
