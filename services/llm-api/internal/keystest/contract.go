package keystest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
)

// Store is what the contract suite needs: the three store interfaces.
type Store interface {
	keys.Store
	keys.Toucher
	keys.RevocationQueue
}

var kidSeq = 0

// Record returns a valid record of owner named name (unique kid, random
// id, 32-byte MAC) created at now.
func Record(t testing.TB, owner, name string, now time.Time) *keys.Record {
	t.Helper()
	id, err := keys.NewUUID()
	if err != nil {
		t.Fatal(err)
	}
	kidSeq++
	mac := make([]byte, 32)
	_, _ = rand.Read(mac)
	exp := now.Add(90 * 24 * time.Hour)
	return &keys.Record{ID: id, KID: fmt.Sprintf("K%07d", kidSeq), MAC: mac, PepperID: "p1", Owner: owner, Name: name,
		Roles: []string{"user"}, Last4: "abcd", CreatedAt: now, ExpiresAt: &exp}
}

// StoreContract runs the behaviour every keys.Store must have. newStore
// returns an empty store.
func StoreContract(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	now := time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC)

	t.Run("CreatedKeyReadsBackByKID", func(t *testing.T) {
		s := newStore(t)
		rec := Record(t, "alice", "ci", now)
		rec.Roles = []string{"a", "user"}
		if err := s.Create(ctx, rec, 10, now); err != nil {
			t.Fatal(err)
		}
		got, err := s.ByKID(ctx, rec.KID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, *rec) {
			t.Fatalf("read back\n%+v\nwant\n%+v", got, *rec)
		}
		if _, err := s.ByKID(ctx, "ZZZZZZZZ"); !errors.Is(err, keys.ErrNotFound) {
			t.Fatalf("unknown kid: %v", err)
		}
	})

	t.Run("BudgetAndModelsReadBack", func(t *testing.T) {
		s := newStore(t)
		rec := Record(t, "alice", "budgeted", now)
		rec.Budget = &budget.Limits{TokensPerDay: 1000, NanoUSDPerMonth: 2_500_000_000}
		rec.Models = []string{"small", "org/model:7b"}
		only := Record(t, "alice", "models-only", now)
		only.Models = []string{"small"}
		plain := Record(t, "alice", "plain", now)
		for _, r := range []*keys.Record{rec, only, plain} {
			mustCreate(t, s, r, 10, now)
			got, err := s.ByKID(ctx, r.KID)
			if err != nil || !reflect.DeepEqual(got, *r) {
				t.Fatalf("read back\n%+v (%v)\nwant\n%+v", got, err, *r)
			}
		}
		list, err := s.List(ctx, "alice", 10)
		if err != nil || len(list) != 3 {
			t.Fatalf("%+v %v", list, err)
		}
		for _, r := range list {
			if r.KID == rec.KID && (r.Budget == nil || *r.Budget != *rec.Budget || len(r.Models) != 2) {
				t.Fatalf("listed %+v", r)
			}
			if r.KID == plain.KID && r.Budgeted() {
				t.Fatalf("a key without a budget listed with one: %+v", r)
			}
		}
	})

	t.Run("DuplicateKIDIsErrKIDTaken", func(t *testing.T) {
		s := newStore(t)
		a := Record(t, "alice", "a", now)
		b := Record(t, "bob", "b", now)
		b.KID = a.KID
		mustCreate(t, s, a, 10, now)
		if err := s.Create(ctx, b, 10, now); !errors.Is(err, keys.ErrKIDTaken) {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("NamesAreUniquePerOwnerAmongActiveKeys", func(t *testing.T) {
		s := newStore(t)
		a := Record(t, "alice", "ci", now)
		mustCreate(t, s, a, 10, now)
		if err := s.Create(ctx, Record(t, "alice", "ci", now), 10, now); !errors.Is(err, keys.ErrNameTaken) {
			t.Fatalf("same name: %v", err)
		}
		mustCreate(t, s, Record(t, "bob", "ci", now), 10, now)
		if _, _, err := s.Revoke(ctx, "alice", a.ID, now); err != nil {
			t.Fatal(err)
		}
		mustCreate(t, s, Record(t, "alice", "ci", now), 10, now)
	})

	t.Run("ActiveKeyLimitCountsOnlyActiveKeys", func(t *testing.T) {
		s := newStore(t)
		for i := range 3 {
			mustCreate(t, s, Record(t, "alice", fmt.Sprint("k", i), now), 3, now)
		}
		if err := s.Create(ctx, Record(t, "alice", "k4", now), 3, now); !errors.Is(err, keys.ErrLimit) {
			t.Fatalf("over the limit: %v", err)
		}
		mustCreate(t, s, Record(t, "bob", "k4", now), 3, now)
		// an expired key does not count
		s2 := newStore(t)
		old := Record(t, "alice", "old", now.Add(-48*time.Hour))
		past := now.Add(-time.Hour)
		old.ExpiresAt = &past
		mustCreate(t, s2, old, 1, now.Add(-48*time.Hour))
		mustCreate(t, s2, Record(t, "alice", "new", now), 1, now)
	})

	t.Run("ListIsNewestFirstAndOwnKeysOnly", func(t *testing.T) {
		s := newStore(t)
		a := Record(t, "alice", "a", now)
		b := Record(t, "alice", "b", now.Add(time.Second))
		mustCreate(t, s, a, 10, now)
		mustCreate(t, s, b, 10, now)
		mustCreate(t, s, Record(t, "bob", "c", now), 10, now)
		l, err := s.List(ctx, "alice", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(l) != 2 || l[0].ID != b.ID || l[1].ID != a.ID {
			t.Fatalf("list %+v", l)
		}
		if l, _ := s.List(ctx, "alice", 1); len(l) != 1 {
			t.Fatalf("limit: %d", len(l))
		}
		if l, _ := s.List(ctx, "nobody", 10); l == nil || len(l) != 0 {
			t.Fatalf("empty list: %#v", l)
		}
	})

	t.Run("RevokeIsOwnerScopedAndIdempotent", func(t *testing.T) {
		s := newStore(t)
		a := Record(t, "alice", "a", now)
		mustCreate(t, s, a, 10, now)
		if _, _, err := s.Revoke(ctx, "bob", a.ID, now); !errors.Is(err, keys.ErrNotFound) {
			t.Fatalf("other owner: %v", err)
		}
		missing, _ := keys.NewUUID()
		if _, _, err := s.Revoke(ctx, "alice", missing, now); !errors.Is(err, keys.ErrNotFound) {
			t.Fatalf("missing: %v", err)
		}
		rec, changed, err := s.Revoke(ctx, "alice", a.ID, now)
		if err != nil || !changed || rec.RevokedAt == nil || !rec.RevokedAt.Equal(now) {
			t.Fatalf("revoke: %+v %v %v", rec, changed, err)
		}
		if _, changed, err := s.Revoke(ctx, "alice", a.ID, now.Add(time.Second)); err != nil || changed {
			t.Fatalf("second revoke: %v %v", changed, err)
		}
		got, _ := s.ByKID(ctx, a.KID)
		if got.Status(now) != keys.StatusRevoked {
			t.Fatalf("status %s", got.Status(now))
		}
	})

	t.Run("RotateReplacesAndSchedulesTheOldKey", func(t *testing.T) {
		s := newStore(t)
		a := Record(t, "alice", "ci", now)
		mustCreate(t, s, a, 1, now)
		var built *keys.Record
		build := func(old keys.Record) (*keys.Record, error) {
			built = Record(t, old.Owner, old.Name, now)
			return built, nil
		}
		if _, _, err := s.Rotate(ctx, "bob", a.ID, build, now, now); !errors.Is(err, keys.ErrNotFound) {
			t.Fatalf("other owner: %v", err)
		}
		grace := now.Add(time.Minute)
		old, created, err := s.Rotate(ctx, "alice", a.ID, build, grace, now)
		if err != nil {
			t.Fatal(err)
		}
		if created.ID != built.ID || created.Name != "ci" || old.ReplacedBy != built.ID || !old.RevokedAt.Equal(grace) {
			t.Fatalf("rotate: old %+v created %+v", old, created)
		}
		got, _ := s.ByKID(ctx, a.KID)
		if got.Status(now) != keys.StatusRotating || got.Status(grace) != keys.StatusRevoked {
			t.Fatalf("old key status %s / %s", got.Status(now), got.Status(grace))
		}
		if _, _, err := s.Rotate(ctx, "alice", a.ID, build, grace, now); !errors.Is(err, keys.ErrNotActive) {
			t.Fatalf("rotating twice: %v", err)
		}
		// a kid collision rolls everything back
		b := Record(t, "alice", "other", now)
		mustCreate(t, s, b, 10, now)
		clash := func(old keys.Record) (*keys.Record, error) {
			r := Record(t, old.Owner, old.Name, now)
			r.KID = a.KID
			return r, nil
		}
		if _, _, err := s.Rotate(ctx, "alice", b.ID, clash, now, now); !errors.Is(err, keys.ErrKIDTaken) {
			t.Fatalf("collision: %v", err)
		}
		got, _ = s.ByKID(ctx, b.KID)
		if got.RevokedAt != nil || got.ReplacedBy != "" {
			t.Fatalf("collision left the old key changed: %+v", got)
		}
	})

	t.Run("RehashOnlyFromTheExpectedPepper", func(t *testing.T) {
		s := newStore(t)
		a := Record(t, "alice", "a", now)
		mustCreate(t, s, a, 10, now)
		mac := make([]byte, 32)
		mac[0] = 1
		if err := s.Rehash(ctx, a.ID, "other", mac, "p2"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.ByKID(ctx, a.KID); got.PepperID != "p1" {
			t.Fatal("re-hashed from the wrong pepper")
		}
		if err := s.Rehash(ctx, a.ID, "p1", mac, "p2"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.ByKID(ctx, a.KID); got.PepperID != "p2" || got.MAC[0] != 1 {
			t.Fatalf("not re-hashed: %+v", got)
		}
	})

	t.Run("LastUsedOnlyMovesForward", func(t *testing.T) {
		s := newStore(t)
		a := Record(t, "alice", "a", now)
		mustCreate(t, s, a, 10, now)
		t1, t0 := now.Add(time.Minute), now.Add(time.Second)
		if err := s.TouchLastUsed(ctx, map[string]time.Time{a.ID: t1}); err != nil {
			t.Fatal(err)
		}
		if err := s.TouchLastUsed(ctx, map[string]time.Time{a.ID: t0}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.ByKID(ctx, a.KID); got.LastUsedAt == nil || !got.LastUsedAt.Equal(t1) {
			t.Fatalf("last used %v, want %v", got.LastUsedAt, t1)
		}
	})

	t.Run("RevocationsArePendingUntilPublished", func(t *testing.T) {
		s := newStore(t)
		a := Record(t, "alice", "a", now)
		b := Record(t, "alice", "b", now)
		mustCreate(t, s, a, 10, now)
		mustCreate(t, s, b, 10, now)
		if p, _ := s.PendingRevocations(ctx, now, 10); len(p) != 0 {
			t.Fatalf("pending before any revocation: %d", len(p))
		}
		if _, _, err := s.Revoke(ctx, "alice", a.ID, now); err != nil {
			t.Fatal(err)
		}
		grace := now.Add(time.Minute)
		if _, _, err := s.Rotate(ctx, "alice", b.ID, func(old keys.Record) (*keys.Record, error) {
			return Record(t, old.Owner, old.Name, now), nil
		}, grace, now); err != nil {
			t.Fatal(err)
		}
		p, err := s.PendingRevocations(ctx, now, 10)
		if err != nil || len(p) != 1 || p[0].KID != a.KID {
			t.Fatalf("pending now: %+v %v", p, err)
		}
		if err := s.MarkPublished(ctx, []string{a.ID}, now); err != nil {
			t.Fatal(err)
		}
		p, _ = s.PendingRevocations(ctx, grace, 10)
		if len(p) != 1 || p[0].KID != b.KID {
			t.Fatalf("pending after the grace period: %+v", p)
		}
		// marking before the grace period ends does not count
		if err := s.MarkPublished(ctx, []string{b.ID}, now); err != nil {
			t.Fatal(err)
		}
		if p, _ = s.PendingRevocations(ctx, grace, 10); len(p) != 1 {
			t.Fatalf("marked early: %+v", p)
		}
	})
}

func mustCreate(t *testing.T, s Store, rec *keys.Record, max int, now time.Time) {
	t.Helper()
	if err := s.Create(context.Background(), rec, max, now); err != nil {
		t.Fatalf("create %s: %v", rec.Name, err)
	}
}
