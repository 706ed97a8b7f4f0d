package auditlog_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/redisconn"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/auditlog"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/pgtest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/store"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

func event(i int) audit.Event {
	return audit.Event{Time: time.Now().UTC().Truncate(time.Microsecond), RequestID: "r" + string(rune('a'+i%26)),
		Actor: audit.Actor{Subject: "alice", IP: "192.0.2.1"}, Action: audit.ActionAuthDenied, Target: "route-1",
		Outcome: audit.OutcomeDenied, Reason: "token_expired", Severity: audit.SeverityWarning, Source: "keycloak-jwt"}
}

// fakes for the unit level
type fakeReader struct {
	msgs  []audit.Message
	acked []string
}

func (r *fakeReader) EnsureGroup(context.Context) error { return nil }
func (r *fakeReader) Rewind()                           {}
func (r *fakeReader) Read(context.Context) ([]audit.Message, error) {
	m := r.msgs
	r.msgs = nil
	return m, nil
}
func (r *fakeReader) Ack(_ context.Context, ids ...string) error {
	r.acked = append(r.acked, ids...)
	return nil
}

type fakeStore struct {
	auditlog.Store
	fail bool
	got  []auditlog.Stored
}

func (s *fakeStore) InsertAuditEvents(_ context.Context, e []auditlog.Stored) error {
	if s.fail {
		return errors.New("db down")
	}
	s.got = append(s.got, e...)
	return nil
}

func TestStoreFailureLeavesEntriesUnacknowledged(t *testing.T) {
	r := &fakeReader{msgs: []audit.Message{{ID: "1-0", Event: event(0)}}}
	s := &fakeStore{fail: true}
	in := &auditlog.Ingester{Reader: r, Store: s, Logger: zerolog.Nop()}
	if _, err := in.Step(context.Background()); err == nil {
		t.Fatal("store failure not reported")
	}
	if len(r.acked) != 0 {
		t.Fatal("acknowledged entries that were not stored")
	}
}

func TestInvalidEntriesAreAcknowledgedAndCountedNotStored(t *testing.T) {
	r := &fakeReader{msgs: []audit.Message{{ID: "1-0", Event: event(0)}, {ID: "2-0", Err: audit.ErrInvalid}}}
	s := &fakeStore{}
	in := &auditlog.Ingester{Reader: r, Store: s, Logger: zerolog.Nop()}
	if n, err := in.Step(context.Background()); err != nil || n != 2 {
		t.Fatal(n, err)
	}
	if len(s.got) != 1 || len(r.acked) != 2 || testutil.ToFloat64(in.Metrics.Rejected) != 1 {
		t.Fatalf("stored %d acked %d", len(s.got), len(r.acked))
	}
}

// Integration: real Redis and PostgreSQL.
func TestRedeliveredEntriesAreStoredOnceAndRetentionDeletesOldOnes(t *testing.T) {
	ctx := context.Background()
	rdb, err := redisconn.New(redisconn.Config{Addrs: []string{testenv.RedisAddr(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	pg, err := store.Open(ctx, pgtest.Schema(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	if _, err := pg.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	stream := "test:audit:" + hex.EncodeToString(b[:])
	if !testenv.KeepForSweep() { // scripts/test.sh sweeps the streams for secrets
		defer rdb.Del(ctx, stream)
	}

	em, err := audit.New(audit.Config{Writer: audit.RedisWriter{Client: rdb, Stream: stream, MaxLen: 10000}, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	old := event(0)
	old.Time = time.Now().Add(-40 * 24 * time.Hour).UTC().Truncate(time.Microsecond)
	em.Emit(old)
	for i := range 9 {
		em.Emit(event(i))
	}
	em.Close()
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []string{"v", "1", "msg", "free text"}})

	// a consumer reads everything and "crashes" before acknowledging
	crashed := &audit.Consumer{Client: rdb, Stream: stream, Group: "llm-api", Name: "a", Block: 10 * time.Millisecond}
	if err := crashed.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	msgs, err := crashed.Read(ctx)
	if err != nil || len(msgs) != 11 {
		t.Fatalf("read %d %v", len(msgs), err)
	}
	var good []auditlog.Stored
	for _, m := range msgs {
		if m.Err == nil {
			good = append(good, auditlog.Stored{StreamID: m.ID, Event: m.Event})
		}
	}
	if err := pg.InsertAuditEvents(ctx, good[:5]); err != nil {
		t.Fatal(err)
	}

	// restarted under the same name: the pending entries come again
	in := &auditlog.Ingester{Reader: &audit.Consumer{Client: rdb, Stream: stream, Group: "llm-api", Name: "a", Block: 10 * time.Millisecond},
		Store: pg, Logger: zerolog.Nop(), Retention: 30 * 24 * time.Hour}
	for range 3 {
		if _, err := in.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got, err := pg.AuditEvents(ctx, auditlog.Query{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 {
		t.Fatalf("stored %d, want 10 (each once)", len(got))
	}
	if p := rdb.XPending(ctx, stream, "llm-api").Val(); p.Count != 0 {
		t.Fatalf("%d pending", p.Count)
	}
	if got[len(got)-1].Event != old {
		t.Fatalf("oldest %+v", got[len(got)-1])
	}

	st, err := pg.AuditStats(ctx, time.Now().Add(-24*time.Hour))
	if err != nil || st.Total != 9 || st.ByAction["auth.denied"] != 9 || st.BySeverity["warning"] != 9 {
		t.Fatalf("stats %+v %v", st, err)
	}
	n, err := in.Expire(ctx)
	if err != nil || n != 1 {
		t.Fatalf("expired %d %v", n, err)
	}
	if got, _ := pg.AuditEvents(ctx, auditlog.Query{Limit: 100, Actor: "alice", Severity: audit.SeverityWarning}); len(got) != 9 {
		t.Fatalf("after retention %d", len(got))
	}
}
