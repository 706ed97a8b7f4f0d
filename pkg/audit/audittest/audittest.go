// Package audittest gives tests a private audit stream on the run's real
// Redis (or Redis Cluster) and reads it back as parsed events. It is for
// tests only.
package audittest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/redisconn"
	"github.com/edgeguard/edgeguard/pkg/testenv"
)

// Stream is a fresh stream on the run's Redis (EDGEGUARD_TEST_REDIS_ADDR:
// the test skips locally without it and fails under CI=true): its address,
// a random name "test:audit:<hex>", and a client closed when the test ends.
// The stream is deleted then too, unless the run keeps it for the secret
// sweep (testenv.KeepForSweep).
func Stream(t testing.TB) (addr, name string, rdb redis.UniversalClient) {
	t.Helper()
	addr = testenv.RedisAddr(t)
	name, rdb = stream(t, []string{addr})
	return addr, name, rdb
}

// ClusterStream is Stream on the run's Redis Cluster
// (EDGEGUARD_TEST_REDIS_CLUSTER_ADDRS): addrs is the node addresses
// comma-separated, as a service's REDIS_ADDR lists them, and rdb a Cluster
// client.
func ClusterStream(t testing.TB) (addrs, name string, rdb redis.UniversalClient) {
	t.Helper()
	nodes := testenv.RedisClusterAddrs(t)
	name, rdb = stream(t, nodes)
	return strings.Join(nodes, ","), name, rdb
}

func stream(t testing.TB, addrs []string) (string, redis.UniversalClient) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "test:audit:" + hex.EncodeToString(b[:])
	rdb, err := redisconn.New(redisconn.Config{Addrs: addrs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !testenv.KeepForSweep() {
			rdb.Del(context.Background(), name)
		}
		_ = rdb.Close()
	})
	return name, rdb
}

// Entries reads every entry of the stream: the raw values (for checks that
// no credential is in them) and the parsed events; a malformed entry fails
// the test.
func Entries(t testing.TB, rdb redis.UniversalClient, stream string) (raw []map[string]any, events []audit.Event) {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		ev, err := audit.Parse(m.Values)
		if err != nil {
			t.Fatalf("stream entry %s: %v", m.ID, err)
		}
		raw = append(raw, m.Values)
		events = append(events, ev)
	}
	return raw, events
}

// WaitFor reads the stream until it holds at least n events or d passes,
// and returns what it holds then.
func WaitFor(t testing.TB, rdb redis.UniversalClient, stream string, n int, d time.Duration) []audit.Event {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		_, events := Entries(t, rdb, stream)
		if len(events) >= n || time.Now().After(deadline) {
			return events
		}
		time.Sleep(20 * time.Millisecond)
	}
}
