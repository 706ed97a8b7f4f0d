package auditlog_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/redisconn"
	"github.com/edgeguard/edgeguard/pkg/requestid"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/auditlog"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/pgtest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/store"
)

// Integration (real Redis and PostgreSQL): an event an emitter sanitized —
// a credential-shaped request id and target — travels the stream as
// version 2 and is stored with its flag; an unflagged event beside it is
// stored with none. Neither holds the refused values.
func TestSanitizedEventsAreStoredWithTheirFlag(t *testing.T) {
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
	if !testenv.KeepForSweep() {
		defer rdb.Del(ctx, stream)
	}
	em, err := audit.New(audit.Config{Writer: audit.RedisWriter{Client: rdb, Stream: stream, MaxLen: 10000}, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	bad := event(0)
	bad.RequestID, bad.Target = "sk_rt1234", "eyJrt.ab12.x"
	em.Emit(bad)
	em.Emit(event(1))
	em.Close()

	in := &auditlog.Ingester{Reader: &audit.Consumer{Client: rdb, Stream: stream, Group: "llm-api", Name: "a", Block: 10 * time.Millisecond},
		Store: pg, Logger: zerolog.Nop()}
	if n, err := in.Step(ctx); err != nil || n != 2 {
		t.Fatalf("ingested %d: %v", n, err)
	}
	got, err := pg.AuditEvents(ctx, auditlog.Query{Limit: 10})
	if err != nil || len(got) != 2 {
		t.Fatalf("stored %d: %v", len(got), err)
	}
	flagged, plain := got[1].Event, got[0].Event // newest first
	if flagged.Sanitized != audit.SanitizedRequestID|audit.SanitizedTarget || flagged.Target != "" ||
		flagged.RequestID == bad.RequestID || !requestid.Valid(flagged.RequestID) {
		t.Fatalf("flagged event stored as %+v", flagged)
	}
	if plain.Sanitized != 0 || plain.RequestID != event(1).RequestID {
		t.Fatalf("plain event stored as %+v", plain)
	}
	for _, e := range got {
		if s := strings.Join(e.Fields(), " "); strings.Contains(s, "sk_rt") || strings.Contains(s, "eyJ") {
			t.Fatalf("a refused value was stored: %s", s)
		}
	}
}
