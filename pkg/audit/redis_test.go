package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/redisconn"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

func realRedis(t *testing.T, addr string) redis.UniversalClient {
	t.Helper()
	c, err := redisconn.New(redisconn.Config{Addrs: []string{addr}, DialTimeout: 200 * time.Millisecond, ReadTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func streamName(t *testing.T) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "test:audit:" + hex.EncodeToString(b[:])
	return name
}

func TestRedisStreamIsCappedAndReadBackByTheConsumerGroup(t *testing.T) {
	rdb := realRedis(t, testenv.RedisAddr(t))
	ctx := context.Background()
	stream := streamName(t)
	if !testenv.KeepForSweep() {
		t.Cleanup(func() { rdb.Del(context.Background(), stream) })
	}

	m := NewMetrics(nil)
	e, err := New(Config{Writer: RedisWriter{Client: rdb, Stream: stream, MaxLen: 100}, Metrics: m, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		ev := validEvent()
		ev.RequestID = "req-" + strings.Repeat("x", i%5)
		e.Emit(ev)
		if i%100 == 99 {
			flush(t, e)
		}
	}
	e.Close()
	if n := rdb.XLen(ctx, stream).Val(); n < 100 || n > 400 {
		t.Fatalf("stream length %d: MAXLEN ~ 100 not applied", n)
	}
	if w := testutil.ToFloat64(m.Written); w != 1000 {
		t.Fatalf("written %v", w)
	}

	// a tampered entry is refused by the consumer, not stored
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []string{"v", "1", "msg", "Authorization: Bearer eyJ..."}})

	c := &Consumer{Client: rdb, Stream: stream, Group: "store", Name: "c1", Count: 50, Block: 50 * time.Millisecond}
	if err := c.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureGroup(ctx); err != nil {
		t.Fatalf("EnsureGroup twice: %v", err)
	}
	first, err := c.Read(ctx)
	if err != nil || len(first) == 0 {
		t.Fatalf("read: %v (%d)", err, len(first))
	}
	// not acknowledged: a new consumer instance with the same name gets them again
	c2 := &Consumer{Client: rdb, Stream: stream, Group: "store", Name: "c1", Count: 50, Block: 50 * time.Millisecond}
	again, err := c2.Read(ctx)
	if err != nil || len(again) != len(first) || again[0].ID != first[0].ID {
		t.Fatalf("pending entries not redelivered: %v %d vs %d", err, len(again), len(first))
	}
	var ok, bad int
	for {
		msgs, err := c2.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			if c2.PendingDone() {
				break
			}
			continue
		}
		var ids []string
		for _, msg := range msgs {
			if msg.Err != nil {
				bad++
			} else {
				ok++
			}
			ids = append(ids, msg.ID)
		}
		if err := c2.Ack(ctx, ids...); err != nil {
			t.Fatal(err)
		}
	}
	n := rdb.XLen(ctx, stream).Val()
	if int64(ok+bad) != n || bad != 1 {
		t.Fatalf("read %d good + %d bad of %d", ok, bad, n)
	}
	if p := rdb.XPending(ctx, stream, "store").Val(); p.Count != 0 {
		t.Fatalf("%d entries left pending", p.Count)
	}
}

func TestRedisDownEventsAreLoggedLocallyAndCountedAsDropped(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := realRedis(t, srv.Addr())
	stream := streamName(t)
	var logs testenv.Buffer
	m := NewMetrics(nil)
	e, err := New(Config{Writer: RedisWriter{Client: rdb, Stream: stream, MaxLen: 1000}, Metrics: m,
		Logger: zerolog.New(&logs), WriteTimeout: 300 * time.Millisecond, Backoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.Emit(validEvent())
	flush(t, e)
	if testutil.ToFloat64(m.Written) != 1 {
		t.Fatal("first event not written")
	}

	srv.Kill()
	start := time.Now()
	for range 20 {
		e.Emit(validEvent())
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("Emit took %s with Redis down", d)
	}
	flush(t, e)
	if got := testutil.ToFloat64(m.Dropped.WithLabelValues(DropRedisError)); got != 20 {
		t.Fatalf("dropped %v, want 20", got)
	}
	out := logs.String()
	if n := strings.Count(out, `"audit_dropped":"redis_error"`); n != 20 {
		t.Fatalf("%d events in the local log, want 20", n)
	}
	if !strings.Contains(out, `"subject":"2f1c0a7e-3b7d-4f6e-9d0a-1c2b3d4e5f60"`) {
		t.Fatalf("the local log lacks the event fields:\n%s", out)
	}

	// Redis back: after the backoff, events flow again
	srv.Start()
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(m.Written) < 2 && time.Now().Before(deadline) {
		time.Sleep(150 * time.Millisecond)
		e.Emit(validEvent())
		flush(t, e)
	}
	if testutil.ToFloat64(m.Written) < 2 {
		t.Fatal("emitter did not recover after Redis came back")
	}
}

func TestADeadConsumersEntriesAreClaimedByALiveOne(t *testing.T) {
	rdb := realRedis(t, testenv.RedisAddr(t))
	ctx := context.Background()
	stream := streamName(t)
	if !testenv.KeepForSweep() {
		t.Cleanup(func() { rdb.Del(context.Background(), stream) })
	}
	for range 5 {
		ev := validEvent()
		if err := (RedisWriter{Client: rdb, Stream: stream, MaxLen: 1000}).Write(ctx, []Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	dead := &Consumer{Client: rdb, Stream: stream, Group: "g", Name: "replica-a", Block: 10 * time.Millisecond}
	if err := dead.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	if msgs, err := dead.Read(ctx); err != nil || len(msgs) != 5 {
		t.Fatalf("%d %v", len(msgs), err)
	}
	// replica-a dies without acknowledging
	live := &Consumer{Client: rdb, Stream: stream, Group: "g", Name: "replica-b", Block: 10 * time.Millisecond, ClaimIdle: 20 * time.Millisecond}
	time.Sleep(50 * time.Millisecond)
	msgs, err := live.Read(ctx)
	if err != nil || len(msgs) != 5 {
		t.Fatalf("claimed %d %v, want 5", len(msgs), err)
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	if err := live.Ack(ctx, ids...); err != nil {
		t.Fatal(err)
	}
	if p := rdb.XPending(ctx, stream, "g").Val(); p.Count != 0 {
		t.Fatalf("%d pending", p.Count)
	}
}
