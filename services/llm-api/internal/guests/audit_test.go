package guests_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/guests"
)

type auditSink struct {
	mu  sync.Mutex
	got []audit.Event
}

func (s *auditSink) Write(_ context.Context, evs []audit.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, evs...)
	return nil
}

func TestSweepEmitsGuestDeletedPerDeletedGuest(t *testing.T) {
	clk := newClock()
	dir := newDir()
	dir.add("0b6f3f0e-1111-4c1e-9d5a-000000000001", "guest-a", clk.now().Add(-48*time.Hour), true)
	dir.add("0b6f3f0e-1111-4c1e-9d5a-000000000002", "guest-b", clk.now().Add(-time.Hour), true)
	sink := &auditSink{}
	em, err := audit.New(audit.Config{Writer: sink, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	c := &guests.Cleaner{Directory: dir, TTL: 24 * time.Hour, Now: clk.now, Audit: em}
	if _, err := c.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := em.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.got) != 1 {
		t.Fatalf("events %+v", sink.got)
	}
	e := sink.got[0]
	if e.Action != audit.ActionGuestDeleted || e.Target != "0b6f3f0e-1111-4c1e-9d5a-000000000001" || e.Reason != "guest_expired" || e.Source != "llm-api" {
		t.Fatalf("event %+v", e)
	}
}
