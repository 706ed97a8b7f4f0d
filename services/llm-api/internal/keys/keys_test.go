package keys_test

import (
	"context"
	"errors"
	"fmt"
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

func TestUsageMergesAFailedBatchBack(t *testing.T) {
	st := keystest.NewMemStore()
	u := keys.NewUsage(st, time.Hour, nopLogger())
	t0 := time.Unix(100, 0)
	u.Record("x", t0)
	st.Fail = keystest.ErrDown
	if err := u.Flush(context.Background()); err == nil {
		t.Fatal("flush succeeded with the store down")
	}
	st.Fail = nil
	u.Record("x", t0.Add(-time.Second)) // older: ignored
	if err := u.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
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
