package audit

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/redisconn"
	"github.com/edgeguard/edgeguard/pkg/testenv"
)

// The audit stream on a real Redis Cluster (EDGEGUARD_TEST_REDIS_CLUSTER_ADDRS):
// the stream is one key, so every command (XADD pipelines, XGROUP,
// XREADGROUP, XACK, XAUTOCLAIM) goes to its slot's master.
func TestClusterStreamIsWrittenByTwoComponentsAndReadByTheConsumerGroup(t *testing.T) {
	addrs := testenv.RedisClusterAddrs(t)
	client := func() redis.UniversalClient {
		c, err := redisconn.New(redisconn.Config{Addrs: addrs, ReadTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	ctx := context.Background()
	stream := streamName(t)
	reader := client()
	if !testenv.KeepForSweep() {
		t.Cleanup(func() { reader.Del(context.Background(), stream) })
	}

	// Two components (an edge plugin server, a service), each with its
	// own client and emitter.
	const perEmitter = 300
	for range 2 {
		m := NewMetrics(nil)
		e, err := New(Config{Writer: RedisWriter{Client: client(), Stream: stream, MaxLen: 10_000}, Metrics: m, Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		for i := range perEmitter {
			e.Emit(validEvent())
			if i%100 == 99 {
				flush(t, e)
			}
		}
		e.Close()
		if w := testutil.ToFloat64(m.Written); w != perEmitter {
			t.Fatalf("written %v of %d", w, perEmitter)
		}
	}
	if n := reader.XLen(ctx, stream).Val(); n != 2*perEmitter {
		t.Fatalf("stream length %d, want %d", n, 2*perEmitter)
	}

	// llm-api's consumer group reads and acknowledges everything; a second
	// replica with the same group claims what the first left pending.
	c := &Consumer{Client: reader, Stream: stream, Group: "llm-api", Name: "replica-a", Count: 100, Block: 50 * time.Millisecond}
	if err := c.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := c.Read(ctx)
	if err != nil || len(first) != 100 {
		t.Fatalf("first read: %d entries, %v", len(first), err)
	}
	live := &Consumer{Client: client(), Stream: stream, Group: "llm-api", Name: "replica-b", Count: 100,
		Block: 50 * time.Millisecond, ClaimIdle: 20 * time.Millisecond}
	time.Sleep(50 * time.Millisecond)
	read := 0
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		msgs, err := live.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 && live.PendingDone() {
			break
		}
		ids := make([]string, 0, len(msgs))
		for _, m := range msgs {
			if m.Err != nil {
				t.Fatalf("entry %s refused: %v", m.ID, m.Err)
			}
			ids = append(ids, m.ID)
		}
		if err := live.Ack(ctx, ids...); err != nil {
			t.Fatal(err)
		}
		read += len(msgs)
	}
	if read != 2*perEmitter {
		t.Fatalf("the live replica read %d entries, want %d (100 claimed from the dead one)", read, 2*perEmitter)
	}
	if p := reader.XPending(ctx, stream, "llm-api").Val(); p.Count != 0 {
		t.Fatalf("%d entries left pending", p.Count)
	}
}
