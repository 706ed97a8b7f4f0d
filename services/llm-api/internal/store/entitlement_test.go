package store_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/entitlement"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keystest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/ledger"
)

func noop(context.Context) error { return nil }

func TestOverridesArePutReadRemovedAndListedWithTombstones(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	at := time.Date(2026, 12, 7, 10, 0, 0, 123000, time.UTC)
	o := entitlement.Override{Subject: "alice", Limits: budget.Limits{TokensPerDay: 1000, NanoUSDPerMonth: 1_500_000_000},
		Models: []string{"small"}, UpdatedAt: at, UpdatedBy: "admin-1"}
	if _, err := s.Override(ctx, "alice"); !errors.Is(err, entitlement.ErrNotFound) {
		t.Fatalf("before: %v", err)
	}
	if err := s.PutOverride(ctx, o, noop); err != nil {
		t.Fatal(err)
	}
	got, err := s.Override(ctx, "alice")
	if err != nil || !reflect.DeepEqual(got, o) {
		t.Fatalf("read back %+v (%v), want %+v", got, err, o)
	}
	// replaced: every window absent is no limit, models nil
	o2 := entitlement.Override{Subject: "alice", UpdatedAt: at.Add(time.Minute), UpdatedBy: "admin-2"}
	if err := s.PutOverride(ctx, o2, noop); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Override(ctx, "alice"); err != nil || !reflect.DeepEqual(got, o2) {
		t.Fatalf("replaced %+v (%v)", got, err)
	}
	// a failing apply rolls the change back
	boom := errors.New("redis down")
	if err := s.PutOverride(ctx, o, func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("%v", err)
	}
	if got, _ := s.Override(ctx, "alice"); !reflect.DeepEqual(got, o2) {
		t.Fatalf("a failed apply changed the row: %+v", got)
	}
	if err := s.RemoveOverride(ctx, "alice", "admin-3", at.Add(2*time.Minute), func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if _, err := s.Override(ctx, "alice"); err != nil {
		t.Fatalf("a failed removal removed: %v", err)
	}
	// removed: a tombstone, which a second removal keeps as it was
	if err := s.RemoveOverride(ctx, "alice", "admin-3", at.Add(2*time.Minute), noop); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveOverride(ctx, "alice", "admin-4", at.Add(3*time.Minute), noop); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	if _, err := s.Override(ctx, "alice"); !errors.Is(err, entitlement.ErrNotFound) {
		t.Fatalf("after removal: %v", err)
	}
	if err := s.RemoveOverride(ctx, "nobody", "admin", at, noop); !errors.Is(err, entitlement.ErrNotFound) {
		t.Fatalf("never set: %v", err)
	}
	if err := s.PutOverride(ctx, entitlement.Override{Subject: "bob", Limits: budget.Limits{TokensPerMinute: 10}, UpdatedAt: at, UpdatedBy: "a"}, noop); err != nil {
		t.Fatal(err)
	}
	list := func(since time.Time) []entitlement.Override {
		var out []entitlement.Override
		if err := s.ListOverrides(ctx, since, func(_ context.Context, os []entitlement.Override) error { out = os; return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	l := list(at)
	if len(l) != 2 || l[0].Subject != "alice" || l[0].Removed == nil || !l[0].Removed.Equal(at.Add(2*time.Minute)) ||
		l[0].UpdatedBy != "admin-3" || l[1].Subject != "bob" || l[1].Removed != nil {
		t.Fatalf("%+v", l)
	}
	// tombstones older than the bound are dropped for good
	if l := list(at.Add(time.Hour)); len(l) != 1 || l[0].Subject != "bob" {
		t.Fatalf("%+v", l)
	}
	if err := s.RemoveOverride(ctx, "alice", "admin", at, noop); !errors.Is(err, entitlement.ErrNotFound) {
		t.Fatalf("a dropped tombstone: %v", err)
	}
	// set again after removal: live
	if err := s.PutOverride(ctx, o, noop); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Override(ctx, "alice"); err != nil || got.Removed != nil {
		t.Fatalf("%+v %v", got, err)
	}
}

// TestAPutWaitsForTheSyncsRedisWrites: the sync lists overrides FOR SHARE
// and writes Redis inside; a PUT of one of them reaches Redis after it.
func TestAPutWaitsForTheSyncsRedisWrites(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	at := time.Now().UTC()
	if err := s.PutOverride(ctx, entitlement.Override{Subject: "carol", UpdatedAt: at, UpdatedBy: "a"}, noop); err != nil {
		t.Fatal(err)
	}
	inSync, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var order []string
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	done := make(chan error, 1)
	go func() {
		done <- s.ListOverrides(ctx, at.Add(-time.Hour), func(context.Context, []entitlement.Override) error {
			close(inSync)
			<-release
			note("sync")
			return nil
		})
	}()
	<-inSync
	put := make(chan error, 1)
	go func() {
		put <- s.PutOverride(ctx, entitlement.Override{Subject: "carol", Limits: budget.Limits{TokensPerDay: 1}, UpdatedAt: at, UpdatedBy: "b"},
			func(context.Context) error { note("put"); return nil })
	}()
	select {
	case err := <-put:
		t.Fatalf("the PUT did not wait for the sync: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-put; err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(order, []string{"sync", "put"}) {
		t.Fatalf("order %v", order)
	}
}

func TestKeyBudgetsListsLiveAndRecentlyEndedKeysWithABudget(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	mk := func(name string, b *budget.Limits, models []string) *keys.Record {
		r := keystest.Record(t, "dave", name, now)
		r.Budget, r.Models = b, models
		if err := s.Create(ctx, r, 100, now); err != nil {
			t.Fatal(err)
		}
		return r
	}
	live := mk("live", &budget.Limits{TokensPerDay: 10}, nil)
	models := mk("models", nil, []string{"small"})
	mk("plain", nil, nil)
	revoked := mk("revoked", &budget.Limits{TokensPerMinute: 5}, nil)
	if _, _, err := s.Revoke(ctx, "dave", revoked.ID, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	old := mk("old", &budget.Limits{TokensPerMinute: 5}, nil)
	if _, _, err := s.Revoke(ctx, "dave", old.ID, now.Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err := s.KeyBudgets(ctx, now.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	byKID := map[string]int{}
	for i, k := range got {
		byKID[k.KID] = i
	}
	if len(got) != 3 {
		t.Fatalf("%+v", got)
	}
	if k := got[byKID[live.KID]]; k.Owner != "dave" || *k.Budget != *live.Budget || k.End == nil || !k.End.Equal(*live.ExpiresAt) {
		t.Fatalf("live %+v", k)
	}
	if k := got[byKID[models.KID]]; k.Budget != nil || len(k.Models) != 1 {
		t.Fatalf("models %+v", k)
	}
	if k := got[byKID[revoked.KID]]; k.End == nil || !k.End.Equal(now.Add(time.Hour)) {
		t.Fatalf("a revoked key ends at its revocation: %+v", k)
	}
}

func TestUsageOfOneKey(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	id := func(n string) string { return "00000000000000000000000000000" + n }
	if err := s.InsertUsage(ctx, []ledger.Entry{
		entry(id("001"), "erin", "", "m", "2026-12-07", 1, 1, 1, "settled"),
		entry(id("002"), "erin", "kidAAAA1", "m", "2026-12-07", 2, 2, 2, "settled"),
		entry(id("003"), "erin", "kidBBBB2", "m", "2026-12-07", 3, 3, 3, "settled"),
	}); err != nil {
		t.Fatal(err)
	}
	from, _ := time.Parse(time.DateOnly, "2026-12-07")
	rows, err := s.Usage(ctx, ledger.Query{Subject: "erin", KeyID: "kidAAAA1", From: from, To: from.AddDate(0, 0, 1)})
	if err != nil || len(rows) != 1 || rows[0].KeyID != "kidAAAA1" || rows[0].Tokens != 4 {
		t.Fatalf("%+v %v", rows, err)
	}
}
