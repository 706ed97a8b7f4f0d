package entitlement

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
)

// fakeStore and fakeRedis: the two sides, in memory.
type fakeStore struct {
	overrides []Override
	keys      []KeyBudget
}

func (f *fakeStore) PutOverride(ctx context.Context, o Override, apply func(context.Context) error) error {
	return apply(ctx)
}

func (f *fakeStore) Override(_ context.Context, subject string) (Override, error) {
	for _, o := range f.overrides {
		if o.Subject == subject && o.Removed == nil {
			return o, nil
		}
	}
	return Override{}, ErrNotFound
}

func (f *fakeStore) RemoveOverride(ctx context.Context, _, _ string, _ time.Time, apply func(context.Context) error) error {
	return apply(ctx)
}

func (f *fakeStore) ListOverrides(ctx context.Context, _ time.Time, apply func(context.Context, []Override) error) error {
	return apply(ctx, f.overrides)
}

func (f *fakeStore) KeyBudgets(context.Context, time.Time) ([]KeyBudget, error) { return f.keys, nil }

type fakeRedis struct {
	mu      sync.Mutex
	entries map[string]*budget.StoredLimits
	until   map[string]time.Time
	failFor string
}

func (f *fakeRedis) SetLimitsUntil(_ context.Context, subject, part string, l *budget.StoredLimits, until time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failFor != "" && subject == f.failFor {
		return errors.New("redis: connection refused")
	}
	k := subject + "/" + part
	if l == nil {
		delete(f.entries, k)
		return nil
	}
	f.entries[k], f.until[k] = l, until
	return nil
}

func (f *fakeRedis) Status(context.Context, string, []budget.Scope) ([]budget.ScopeStatus, error) {
	return nil, errors.New("not used")
}

const file = `default_max_completion_tokens: 16
roles:
  user: {tokens_per_minute: 100, tokens_per_day: 1000, models: [a, b]}
  free: {}
`

func newService(t *testing.T, st *fakeStore, rd *fakeRedis, now time.Time) *Service {
	cfg, err := budget.Parse(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Budgets: cfg, Store: st, Redis: rd, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSyncWritesLiveEntriesRemovesEndedOnesAndGoesOnPastFailures(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	st := &fakeStore{
		overrides: []Override{{Subject: "a", Limits: budget.Limits{TokensPerDay: 5}}, {Subject: "b", Removed: &past}, {Subject: "down"}},
		keys: []KeyBudget{{Owner: "a", KID: "k1", Budget: &budget.Limits{TokensPerDay: 1}, End: &future},
			{Owner: "a", KID: "k2", Models: []string{"m"}, End: &past}, {Owner: "a", KID: "k3", Models: []string{"m"}}},
	}
	rd := &fakeRedis{entries: map[string]*budget.StoredLimits{"b/u": {}, "a/k:k2": {}}, until: map[string]time.Time{}, failFor: "down"}
	res, err := newService(t, st, rd, now).Sync(context.Background())
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err %v", err)
	}
	if res != (SyncResult{Overrides: 1, OverridesRemoved: 1, Keys: 2, KeysRemoved: 1, Failed: 1}) {
		t.Fatalf("%+v", res)
	}
	if rd.entries["a/u"].Limits.TokensPerDay != 5 || rd.entries["b/u"] != nil || rd.entries["a/k:k2"] != nil ||
		!rd.until["a/k:k1"].Equal(future) || !rd.until["a/k:k3"].IsZero() {
		t.Fatalf("%+v %+v", rd.entries, rd.until)
	}
}

func TestCheckKeepsAKeyWithinItsOwner(t *testing.T) {
	st := &fakeStore{overrides: []Override{{Subject: "ov", Limits: budget.Limits{TokensPerDay: 5000}, Models: []string{"z"}}}}
	s := newService(t, st, &fakeRedis{}, time.Now())
	l := func(tpm, tpd int64) *budget.Limits { return &budget.Limits{TokensPerMinute: tpm, TokensPerDay: tpd} }
	for name, c := range map[string]struct {
		sub    string
		roles  []string
		limits *budget.Limits
		models []string
		want   string
	}{
		"within":                  {"u", []string{"user"}, l(100, 1000), []string{"a"}, ""},
		"above the day":           {"u", []string{"user"}, l(100, 1001), nil, CodeBudgetExceedsOwner},
		"a window left open":      {"u", []string{"user"}, l(0, 10), nil, CodeBudgetExceedsOwner},
		"a model of nobody":       {"u", []string{"user"}, nil, []string{"a", "c"}, CodeModelsNotAllowed},
		"unlimited owner":         {"u", []string{"free"}, l(0, 1<<40), []string{"anything"}, ""},
		"the override decides":    {"ov", []string{"user"}, l(0, 5000), []string{"z"}, ""},
		"the override's models":   {"ov", []string{"user"}, nil, []string{"a"}, CodeModelsNotAllowed},
		"no budget for the roles": {"u", []string{"offline_access"}, nil, []string{"a"}, "no budget"},
	} {
		err := s.Check(context.Background(), &identity.Identity{Subject: c.sub, RealmRoles: c.roles}, c.limits, c.models)
		var ie *keys.InputError
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case c.want == "no budget" && !errors.Is(err, budget.ErrNoBudget):
			t.Errorf("%s: %v", name, err)
		case c.want != "" && c.want != "no budget" && (!errors.As(err, &ie) || ie.Code != c.want):
			t.Errorf("%s: %v, want %s", name, err, c.want)
		}
	}
}
