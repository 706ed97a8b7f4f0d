package guests_test

import (
	"context"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/audit/audittest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/guests"
)

func TestSweepEmitsGuestDeletedPerDeletedGuest(t *testing.T) {
	clk := newClock()
	dir := newDir()
	dir.add("0b6f3f0e-1111-4c1e-9d5a-000000000001", "guest-a", clk.now().Add(-48*time.Hour), true)
	dir.add("0b6f3f0e-1111-4c1e-9d5a-000000000002", "guest-b", clk.now().Add(-time.Hour), true)
	em, sink := audittest.Emitter(t)
	c := &guests.Cleaner{Directory: dir, TTL: 24 * time.Hour, Now: clk.now, Audit: em}
	if _, err := c.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := sink.Events(t, em)
	if len(got) != 1 {
		t.Fatalf("events %+v", got)
	}
	e := got[0]
	if e.Action != audit.ActionGuestDeleted || e.Target != "0b6f3f0e-1111-4c1e-9d5a-000000000001" || e.Reason != "guest_expired" || e.Source != "llm-api" {
		t.Fatalf("event %+v", e)
	}
}
