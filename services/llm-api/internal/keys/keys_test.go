package keys_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keystest"
)

func TestCachedRolesServesAtMostTTLAndNeverCachesFailures(t *testing.T) {
	src := keystest.NewRoles()
	src.Set(keys.Owner{Subject: "a", Enabled: true, RealmRoles: []string{"user"}})
	now := time.Unix(1000, 0)
	c := keys.NewCachedRoles(src, 10*time.Minute, 0, func() time.Time { return now }) // clamped to 60 s
	ctx := context.Background()
	for range 3 {
		if _, err := c.Owner(ctx, "a"); err != nil {
			t.Fatal(err)
		}
	}
	if src.Calls() != 1 {
		t.Fatalf("%d lookups, want 1", src.Calls())
	}
	src.Set(keys.Owner{Subject: "a", Enabled: false})
	now = now.Add(59 * time.Second)
	if o, _ := c.Owner(ctx, "a"); !o.Enabled {
		t.Fatal("expired early")
	}
	now = now.Add(time.Second)
	if o, _ := c.Owner(ctx, "a"); o.Enabled {
		t.Fatal("served beyond 60 s")
	}
	// not found is cached; failures are not
	if _, err := c.Owner(ctx, "gone"); !errors.Is(err, keys.ErrOwnerNotFound) {
		t.Fatal(err)
	}
	calls := src.Calls()
	if _, err := c.Owner(ctx, "gone"); !errors.Is(err, keys.ErrOwnerNotFound) || src.Calls() != calls {
		t.Fatal("not-found not cached")
	}
	src.Fail = keystest.ErrDown
	if _, err := c.Owner(ctx, "b"); !errors.Is(err, keystest.ErrDown) {
		t.Fatal(err)
	}
	src.Fail = nil
	src.Set(keys.Owner{Subject: "b", Enabled: true})
	if _, err := c.Owner(ctx, "b"); err != nil {
		t.Fatal("failure was cached")
	}
}

// A cache bounded at max entries remembers at most max subjects: after a
// round over n subjects, a second round reaches the source again for at
// least n-max of them (an unbounded cache answers it from memory). Up to
// the bound, nothing is evicted.
func TestCachedRolesIsBounded(t *testing.T) {
	for _, tc := range []struct {
		name          string
		max, subjects int
	}{
		{"ten times the bound", 10, 100},
		{"one over the bound", 10, 11},
		{"a bound of one", 1, 5},
		{"exactly the bound", 10, 10},
		{"under the bound", 10, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := keystest.NewRoles()
			now := time.Unix(1000, 0)
			c := keys.NewCachedRoles(src, time.Minute, tc.max, func() time.Time { return now })
			ctx := context.Background()
			round := func() int {
				before := src.Calls()
				for i := range tc.subjects {
					sub := fmt.Sprintf("user-%d", i)
					src.Set(keys.Owner{Subject: sub, Enabled: true})
					if _, err := c.Owner(ctx, sub); err != nil {
						t.Fatal(err)
					}
				}
				return src.Calls() - before
			}
			if got := round(); got != tc.subjects {
				t.Fatalf("first round: %d lookups, want %d", got, tc.subjects)
			}
			again := round()
			if tc.subjects <= tc.max {
				if again != 0 {
					t.Fatalf("%d subjects under a bound of %d: %d lookups again, want 0 (evicted below the bound)", tc.subjects, tc.max, again)
				}
				return
			}
			if want := tc.subjects - tc.max; again < want {
				t.Fatalf("second round: %d lookups, want at least %d: the cache kept %d subjects, over its bound of %d",
					again, want, tc.subjects-again, tc.max)
			}
		})
	}
}

// A batch the store refused is merged back and written by the next flush;
// merging keeps the newer of the refused time and a later use.
func TestUsageMergesAFailedBatchBack(t *testing.T) {
	t0 := time.Unix(100, 0)
	for _, tc := range []struct {
		name  string
		later *time.Time // a use recorded after the failed flush
		want  time.Time
	}{
		{"nothing new: the refused batch is written", nil, t0},
		{"an older use does not replace the refused time", ptr(t0.Add(-time.Second)), t0},
		{"a newer use replaces it", ptr(t0.Add(time.Second)), t0.Add(time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &recordingToucher{fail: keystest.ErrDown}
			u := keys.NewUsage(st, time.Hour, nopLogger())
			u.Record("key-1", t0)
			if err := u.Flush(context.Background()); !errors.Is(err, keystest.ErrDown) {
				t.Fatalf("flush with the store down: %v", err)
			}
			st.fail = nil
			if tc.later != nil {
				u.Record("key-1", *tc.later)
			}
			if err := u.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if len(st.written) != 1 {
				t.Fatalf("%d batches written after the failure, want 1 (the refused batch was not merged back)", len(st.written))
			}
			if got, ok := st.written[0]["key-1"]; !ok || !got.Equal(tc.want) || len(st.written[0]) != 1 {
				t.Fatalf("written %v, want key-1 at %v", st.written[0], tc.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// recordingToucher refuses batches while fail is set and keeps the ones it
// accepts.
type recordingToucher struct {
	fail    error
	written []map[string]time.Time
}

func (r *recordingToucher) TouchLastUsed(_ context.Context, used map[string]time.Time) error {
	if r.fail != nil {
		return r.fail
	}
	r.written = append(r.written, maps.Clone(used))
	return nil
}

func TestStatus(t *testing.T) {
	now := time.Unix(1000, 0)
	past, future := now.Add(-time.Second), now.Add(time.Second)
	cases := []struct {
		rec  keys.Record
		want string
	}{
		{keys.Record{}, keys.StatusActive},
		{keys.Record{ExpiresAt: &future}, keys.StatusActive},
		{keys.Record{ExpiresAt: &now}, keys.StatusExpired},
		{keys.Record{RevokedAt: &past, ExpiresAt: &past}, keys.StatusRevoked},
		{keys.Record{RevokedAt: &future}, keys.StatusRotating},
	}
	for i, c := range cases {
		if got := c.rec.Status(now); got != c.want {
			t.Errorf("case %d: %s, want %s", i, got, c.want)
		}
	}
}

func TestValidUUID(t *testing.T) {
	id, _ := keys.NewUUID()
	for s, want := range map[string]bool{id: true, "00000000-0000-4000-8000-00000000000A": true, "": false,
		"00000000-0000-4000-8000-00000000000g": false, "00000000000040008000000000000000": false, id + "x": false} {
		if keys.ValidUUID(s) != want {
			t.Errorf("%q: %v", s, !want)
		}
	}
}
