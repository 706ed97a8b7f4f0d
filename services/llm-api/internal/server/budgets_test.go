package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/entitlement"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/ledger"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/server"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// testBudgets: users may use small and large (large at most 1000 tokens a
// day), 10000 tokens a minute, 100000 a day, 5 USD a month; guests small,
// 1000 a day; the role "nobudget" has none (no default role).
const testBudgets = `default_max_completion_tokens: 256
roles:
  user:  {tokens_per_minute: 10000, tokens_per_day: 100000, usd_per_month: 5, models: [small, large], model_limits: {large: {tokens_per_day: 1000}}}
  guest: {tokens_per_day: 1000, models: [small]}
prices:
  small: {prompt_usd_per_million: 0.5, completion_usd_per_million: 1.5}
`

// memBudgets is the PostgreSQL side of package entitlement and the
// ledger's reader, in memory.
type memBudgets struct {
	mu        sync.Mutex
	overrides map[string]entitlement.Override
	rows      []ledger.Row
	queries   []ledger.Query
	fail      error
}

var (
	_ entitlement.Store = (*memBudgets)(nil)
	_ ledger.Reader     = (*memBudgets)(nil)
)

func (m *memBudgets) PutOverride(ctx context.Context, o entitlement.Override, apply func(context.Context) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if err := apply(ctx); err != nil {
		return err
	}
	m.overrides[o.Subject] = o
	return nil
}

func (m *memBudgets) Override(_ context.Context, subject string) (entitlement.Override, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return entitlement.Override{}, m.fail
	}
	o, ok := m.overrides[subject]
	if !ok || o.Removed != nil {
		return entitlement.Override{}, entitlement.ErrNotFound
	}
	return o, nil
}

func (m *memBudgets) RemoveOverride(ctx context.Context, subject, by string, at time.Time, apply func(context.Context) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	o, ok := m.overrides[subject]
	if !ok {
		return entitlement.ErrNotFound
	}
	if err := apply(ctx); err != nil {
		return err
	}
	if o.Removed == nil {
		o.Removed, o.UpdatedBy = &at, by
	}
	m.overrides[subject] = o
	return nil
}

func (m *memBudgets) ListOverrides(ctx context.Context, _ time.Time, apply func(context.Context, []entitlement.Override) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []entitlement.Override
	for _, o := range m.overrides {
		out = append(out, o)
	}
	return apply(ctx, out)
}

func (m *memBudgets) KeyBudgets(context.Context, time.Time) ([]entitlement.KeyBudget, error) {
	return nil, nil
}

func (m *memBudgets) Usage(_ context.Context, q ledger.Query) ([]ledger.Row, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	m.queries = append(m.queries, q)
	var out []ledger.Row
	for _, r := range m.rows {
		d, _ := time.Parse(time.DateOnly, r.Day)
		if (q.Subject == "" || r.Subject == q.Subject) && (q.KeyID == "" || r.KeyID == q.KeyID) && !d.Before(q.From) && d.Before(q.To) {
			out = append(out, r)
		}
	}
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

func (m *memBudgets) lastQuery() ledger.Query {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.queries[len(m.queries)-1]
}

// budgetsOn builds the entitlement service on the real Redis (make test's).
func (h *harness) budgetsOn(t testing.TB, log zerolog.Logger) {
	t.Helper()
	cfg, err := budget.Parse(strings.NewReader(testBudgets))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	h.budgets = budget.NewStore(rdb, time.Minute)
	h.over = &memBudgets{overrides: map[string]entitlement.Override{}}
	h.ent, err = entitlement.New(entitlement.Config{Budgets: cfg, Store: h.over, Redis: h.budgets, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
}

// sub is a subject of this test alone (the test Redis is shared).
func sub(t testing.TB) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "s-" + hex.EncodeToString(b)
}

func (h *harness) admin(t testing.TB) string { return h.token("admin-"+sub(t), "admin", "user") }

func overridePath(s string) string { return "/v1/admin/budgets/users/" + s }

func TestBudgetRoutesAreForAdminsWithAJWTOnly(t *testing.T) {
	h := newHarness(t, options{budgets: true})
	target := sub(t)
	for _, path := range []string{overridePath(target), "/v1/admin/usage"} {
		for name, c := range map[string]struct {
			token  string
			status int
			code   string
		}{
			"no credential": {"", 401, "credential_missing"},
			"a user":        {h.token(sub(t), "user"), 403, "insufficient_role"},
			"a guest":       {h.token(sub(t), "guest"), 403, "insufficient_role"},
		} {
			for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
				if path == "/v1/admin/usage" && m != http.MethodGet {
					continue
				}
				r := h.api(m, path, c.token, `{"tokens_per_day":1}`)
				if r.status != c.status || r.code() != c.code {
					t.Errorf("%s %s %s: %d %s", name, m, path, r.status, r.body)
				}
			}
		}
	}
	if _, err := h.ent.Override(context.Background(), target); err == nil {
		t.Fatal("a refused caller set an override")
	}
}

func TestOverridesArePutReadAppliedAndRemoved(t *testing.T) {
	em, events := newAuditSink(t)
	h := newHarness(t, options{budgets: true, audit: em})
	adm := h.admin(t)
	target := sub(t)
	ctx := context.Background()
	if r := h.api(http.MethodGet, overridePath(target), adm, ""); r.status != 404 || r.code() != "budget_override_not_found" {
		t.Fatalf("before: %d %s", r.status, r.body)
	}
	r := h.api(http.MethodPut, overridePath(target), adm,
		`{"tokens_per_day":500,"usd_per_month":"2.5","usd_per_day":0.000000001,"models":["small","org/model:7b"]}`)
	if r.status != 200 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	var v map[string]any
	r.json(t, &v)
	if v["subject"] != target || v["tokens_per_day"] != float64(500) || v["tokens_per_minute"] != nil || v["usd_per_month"] != "2.5" ||
		v["usd_per_day"] != "0.000000001" || len(v["models"].([]any)) != 2 || !strings.HasPrefix(v["updated_by"].(string), "admin-") || v["updated_at"] == nil {
		t.Fatalf("answer %v", v)
	}
	// in Redis for every replica's next reservation
	l, err := h.budgets.Limits(ctx, target, "u")
	if err != nil || l == nil || l.Limits != (budget.Limits{TokensPerDay: 500, NanoUSDPerDay: 1, NanoUSDPerMonth: 2_500_000_000}) ||
		!slices.Equal(l.Models, []string{"small", "org/model:7b"}) {
		t.Fatalf("redis: %+v %v", l, err)
	}
	if g := h.api(http.MethodGet, overridePath(target), adm, ""); g.status != 200 || !strings.Contains(string(g.body), `"usd_per_month":"2.5"`) {
		t.Fatalf("get: %d %s", g.status, g.body)
	}
	// replaced by {}: no limit in any window, the roles' models
	if r := h.api(http.MethodPut, overridePath(target), adm, `{}`); r.status != 200 || !strings.Contains(string(r.body), `"models":null`) {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if l, _ := h.budgets.Limits(ctx, target, "u"); l == nil || !l.Limits.Zero() || l.Models != nil {
		t.Fatalf("redis: %+v", l)
	}
	if r := h.api(http.MethodDelete, overridePath(target), adm, ""); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if l, _ := h.budgets.Limits(ctx, target, "u"); l != nil {
		t.Fatalf("still in redis: %+v", l)
	}
	if r := h.api(http.MethodGet, overridePath(target), adm, ""); r.status != 404 || r.code() != "budget_override_not_found" {
		t.Fatalf("after delete: %d %s", r.status, r.body)
	}
	if r := h.api(http.MethodDelete, overridePath(target), adm, ""); r.status != 204 {
		t.Fatalf("deleting twice: %d %s", r.status, r.body)
	}
	if r := h.api(http.MethodDelete, overridePath(sub(t)), adm, ""); r.status != 404 || r.code() != "budget_override_not_found" {
		t.Fatalf("never set: %d %s", r.status, r.body)
	}
	// budget.changed per change, the subject as target
	var changed []audit.Event
	for _, e := range events() {
		if e.Action == audit.ActionBudgetChanged {
			changed = append(changed, e)
		}
	}
	if len(changed) != 4 || changed[0].Target != target || changed[0].Reason != "override_set" || changed[2].Reason != "override_removed" ||
		changed[0].Source != "llm-api" || !strings.HasPrefix(changed[0].Actor.Subject, "admin-") {
		t.Fatalf("events %+v", changed)
	}
	// the store down: 503, nothing changed
	h.over.fail = errBudgetStoreDown
	if r := h.api(http.MethodPut, overridePath(target), adm, `{"tokens_per_day":1}`); r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if l, _ := h.budgets.Limits(ctx, target, "u"); l != nil {
		t.Fatalf("written while the store failed: %+v", l)
	}
}

func TestOverrideInputIsRefusedWithStableCodes(t *testing.T) {
	h := newHarness(t, options{budgets: true})
	adm := h.admin(t)
	long := strings.Repeat("a", 129)
	for _, c := range []struct {
		path, body string
		status     int
		code       string
	}{
		{overridePath("x"), `{"tokens_per_day":0}`, 400, "invalid_tokens_per_day"},
		{overridePath("x"), `{"tokens_per_minute":-5}`, 400, "invalid_tokens_per_minute"},
		{overridePath("x"), `{"tokens_per_month":1125899906842625}`, 400, "invalid_tokens_per_month"},
		{overridePath("x"), `{"tokens_per_day":1.5}`, 400, "invalid_field_type"},
		{overridePath("x"), `{"tokens_per_day":"100"}`, 400, "invalid_field_type"},
		{overridePath("x"), `{"usd_per_day":"1e3"}`, 400, "invalid_usd_per_day"},
		{overridePath("x"), `{"usd_per_day":1e3}`, 400, "invalid_usd_per_day"},
		{overridePath("x"), `{"usd_per_day":"0"}`, 400, "invalid_usd_per_day"},
		{overridePath("x"), `{"usd_per_month":"0.0000000001"}`, 400, "invalid_usd_per_month"},
		{overridePath("x"), `{"usd_per_month":"-1"}`, 400, "invalid_usd_per_month"},
		{overridePath("x"), `{"usd_per_month":"1000001"}`, 400, "invalid_usd_per_month"},
		{overridePath("x"), `{"usd_per_month":true}`, 400, "invalid_field_type"},
		{overridePath("x"), `{"usd_per_month":{"x":1}}`, 400, "invalid_field_type"},
		{overridePath("x"), `{"models":[]}`, 400, "invalid_models"},
		{overridePath("x"), `{"models":["a b"]}`, 400, "invalid_models"},
		{overridePath("x"), `{"models":["a","a"]}`, 400, "invalid_models"},
		{overridePath("x"), `{"models":["` + strings.Repeat("m", 129) + `"]}`, 400, "invalid_models"},
		{overridePath("x"), `{"models":"small"}`, 400, "invalid_field_type"},
		{overridePath("x"), `{"models":[1]}`, 400, "invalid_field_type"},
		{overridePath("x"), `{"budget":{}}`, 400, "unknown_field"},
		{overridePath("x"), `{"tokens_per_day":1,"tokens_per_day":2,"x":1}`, 400, "unknown_field"},
		{overridePath("x"), ``, 400, "invalid_json"},
		{overridePath("x"), `[]`, 400, "invalid_json"},
		{overridePath("x"), `null`, 400, "invalid_json"},
		{overridePath("x"), `{"tokens_per_day":1}{}`, 400, "invalid_json"},
		{overridePath("x"), `{"models":["` + strings.Repeat("m", 20000) + `"]}`, 413, "body_too_large"},
		// the subject in the path
		{overridePath(".."), `{}`, 400, "invalid_subject"},
		{overridePath("%2e%2e"), `{}`, 400, "invalid_subject"},
		{overridePath(".hidden"), `{}`, 400, "invalid_subject"},
		{overridePath("a%7Db"), `{}`, 400, "invalid_subject"},
		{overridePath("a%20b"), `{}`, 400, "invalid_subject"},
		{overridePath("%C3%A9"), `{}`, 400, "invalid_subject"},
		{overridePath("a%00"), `{}`, 400, "invalid_subject"},
		{overridePath(long), `{}`, 400, "invalid_subject"},
		{overridePath("a%2Fb"), `{}`, 404, "not_found"},
		{overridePath("../../audit/events"), `{}`, 404, "not_found"},
		{overridePath(""), `{}`, 404, "not_found"},
	} {
		r := h.api(http.MethodPut, c.path, adm, c.body)
		if r.status != c.status || r.code() != c.code {
			t.Errorf("PUT %s %.60s: %d %s, want %d %s", c.path, c.body, r.status, r.body, c.status, c.code)
		}
		if c.code == "invalid_subject" {
			for _, m := range []string{http.MethodGet, http.MethodDelete} {
				if r := h.api(m, c.path, adm, ""); r.status != 400 || r.code() != "invalid_subject" {
					t.Errorf("%s %s: %d %s", m, c.path, r.status, r.body)
				}
			}
		}
	}
	if len(h.over.overrides) != 0 {
		t.Fatalf("stored %+v", h.over.overrides)
	}
}

func TestBudgetRoutesWithoutBudgetsAre503(t *testing.T) {
	h := newHarness(t, options{})
	adm := h.admin(t)
	for _, c := range []struct{ method, path, token, body string }{
		{http.MethodPut, overridePath("x"), adm, `{}`},
		{http.MethodGet, overridePath("x"), adm, ``},
		{http.MethodDelete, overridePath("x"), adm, ``},
		{http.MethodGet, "/v1/admin/usage", adm, ``},
		{http.MethodGet, "/v1/usage", h.token("bob", "user"), ``},
	} {
		if r := h.api(c.method, c.path, c.token, c.body); r.status != 503 || r.code() != "budgets_disabled" {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.status, r.body)
		}
	}
	// and a key budget is refused as such, a key without one is made
	tok := h.token("bob", "user")
	if r := h.api(http.MethodPost, "/auth/api-keys", tok, `{"name":"b","budget":{"tokens_per_day":5}}`); r.status != 400 || r.code() != "key_budgets_disabled" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	h.create(tok, `{"name":"plain"}`)
}

type keyWithBudget struct {
	created
	Budget *server.LimitsView `json:"budget"`
	Models []string           `json:"models"`
}

func TestKeyBudgetsStayWithinTheOwnersAndFollowTheKey(t *testing.T) {
	h := newHarness(t, options{budgets: true, maxPerUser: 100})
	ctx := context.Background()
	owner := sub(t)
	tok := h.token(owner, "user")
	// refusals: 4xx with stable codes, nothing in Redis
	for _, c := range []struct {
		body, token string
		status      int
		code        string
	}{
		{`{"name":"a","budget":{"tokens_per_day":200000,"tokens_per_minute":10,"usd_per_month":"1"}}`, tok, 400, "budget_exceeds_owner"},
		{`{"name":"a","budget":{"tokens_per_day":10}}`, tok, 400, "budget_exceeds_owner"}, // the owner's minute and month limits unset
		{`{"name":"a","budget":{"tokens_per_day":10,"tokens_per_minute":10,"usd_per_month":"5.000000001"}}`, tok, 400, "budget_exceeds_owner"},
		{`{"name":"a","models":["small","gpt-x"]}`, tok, 400, "models_not_allowed"},
		{`{"name":"a","budget":{}}`, tok, 400, "invalid_budget"},
		{`{"name":"a","budget":{"tokens_per_day":0}}`, tok, 400, "invalid_tokens_per_day"},
		{`{"name":"a","budget":{"usd_per_day":"x"}}`, tok, 400, "invalid_usd_per_day"},
		{`{"name":"a","budget":{"TOKENS_PER_DAY":5,"bogus":1}}`, tok, 400, "unknown_field"},
		{`{"name":"a","budget":[]}`, tok, 400, "invalid_field_type"},
		{`{"name":"a","models":[]}`, tok, 400, "invalid_models"},
		{`{"name":"a","models":["a\nb"]}`, tok, 400, "invalid_models"},
		{`{"name":"a","models":["small"]}`, h.token(sub(t), "nobudget"), 403, "budget_not_configured"},
		{`{"name":"a","models":["small"]}`, h.token(sub(t), "guest"), 403, "forbidden_role"},
	} {
		if r := h.api(http.MethodPost, "/auth/api-keys", c.token, c.body); r.status != c.status || r.code() != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.body, r.status, r.body, c.status, c.code)
		}
	}
	// within: stored, shown, in Redis until the key's end (+1 h)
	var k keyWithBudget
	r := h.api(http.MethodPost, "/auth/api-keys", tok,
		`{"name":"ci","budget":{"tokens_per_minute":100,"tokens_per_day":1000,"usd_per_month":"0.25"},"models":["large"]}`)
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	r.json(t, &k)
	if k.Budget == nil || *k.Budget.TokensPerDay != 1000 || *k.Budget.USDPerMonth != "0.25" || k.Budget.TokensPerMonth != nil || !slices.Equal(k.Models, []string{"large"}) {
		t.Fatalf("%s", r.body)
	}
	l, err := h.budgets.Limits(ctx, owner, "k:"+k.KID)
	if err != nil || l == nil || l.Limits.TokensPerMinute != 100 || l.Limits.NanoUSDPerMonth != 250_000_000 || !slices.Equal(l.Models, []string{"large"}) {
		t.Fatalf("redis %+v %v", l, err)
	}
	// listed with it; a key without shows nulls
	h.create(tok, `{"name":"plain"}`)
	lr := h.api(http.MethodGet, "/auth/api-keys", tok, "")
	var list struct{ Keys []keyWithBudget }
	lr.json(t, &list)
	if len(list.Keys) != 2 || !strings.Contains(string(lr.body), `"budget":null,"models":null`) ||
		!strings.Contains(string(lr.body), `"usd_per_month":"0.25"`) {
		t.Fatalf("%s", lr.body)
	}
	// a short-lived run key works the same (edgectl run)
	run := h.api(http.MethodPost, "/auth/api-keys", tok, `{"name":"run:node:1","expires_in_seconds":600,"models":["small"]}`)
	if run.status != 201 {
		t.Fatalf("%d %s", run.status, run.body)
	}
	var rk keyWithBudget
	run.json(t, &rk)
	if l, _ := h.budgets.Limits(ctx, owner, "k:"+rk.KID); l == nil || !l.Limits.Zero() || l.Models[0] != "small" {
		t.Fatalf("run key %+v", l)
	}
	// an override above the roles lets a key go higher
	if _, err := h.ent.PutOverride(ctx, entitlement.Override{Subject: owner, Limits: budget.Limits{TokensPerDay: 500_000}}); err != nil {
		t.Fatal(err)
	}
	if r := h.api(http.MethodPost, "/auth/api-keys", tok, `{"name":"big","budget":{"tokens_per_day":400000},"models":["small"]}`); r.status != 201 {
		t.Fatalf("within the override: %d %s", r.status, r.body)
	}
	// rotation: the new key keeps budget and models, in Redis too; the old
	// key's entry ends with its grace
	rot := h.api(http.MethodPost, "/auth/api-keys/"+k.ID+"/rotate", tok, `{"grace_seconds":60}`)
	if rot.status != 201 {
		t.Fatalf("%d %s", rot.status, rot.body)
	}
	var nk keyWithBudget
	rot.json(t, &nk)
	if nk.Budget == nil || *nk.Budget.TokensPerMinute != 100 || !slices.Equal(nk.Models, []string{"large"}) {
		t.Fatalf("rotated %s", rot.body)
	}
	if l, _ := h.budgets.Limits(ctx, owner, "k:"+nk.KID); l == nil || l.Limits.TokensPerDay != 1000 {
		t.Fatalf("rotated key in redis: %+v", l)
	}
	// revocation removes the key's entry
	if r := h.api(http.MethodDelete, "/auth/api-keys/"+nk.ID, tok, ""); r.status != 204 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if l, _ := h.budgets.Limits(ctx, owner, "k:"+nk.KID); l != nil {
		t.Fatalf("a revoked key's limits stay: %+v", l)
	}
	// a rotation with grace 0 removes the old key's at once
	rot = h.api(http.MethodPost, "/auth/api-keys/"+rk.ID+"/rotate", tok, ``)
	if rot.status != 201 {
		t.Fatalf("%d %s", rot.status, rot.body)
	}
	if l, _ := h.budgets.Limits(ctx, owner, "k:"+rk.KID); l != nil {
		t.Fatalf("the rotated-away key's limits stay: %+v", l)
	}
}

// apiKeyAuth authenticates "X-Test-Key: <kid>" requests as that API key of
// the bearer's subject (the edge's assertion, in short), and everything
// else with next.
type apiKeyAuth struct{ next edgehttp.Authenticator }

func (a apiKeyAuth) Authenticate(r *http.Request) (*identity.Identity, error) {
	id, err := a.next.Authenticate(r)
	if err != nil || r.Header.Get("X-Test-Key") == "" {
		return id, err
	}
	k := *id
	k.AuthMethod, k.APIKeyID = identity.MethodAPIKey, r.Header.Get("X-Test-Key")
	return &k, nil
}

func TestUsageAnswersTheCallersBudgetsAndRows(t *testing.T) {
	h := newHarness(t, options{budgets: true, wrapAuth: func(a edgehttp.Authenticator) edgehttp.Authenticator { return apiKeyAuth{a} }})
	ctx := context.Background()
	me, other := sub(t), sub(t)
	tok := h.token(me, "user")
	h.over.rows = []ledger.Row{
		{Day: "2030-05-06", Subject: me, Model: "small", Requests: 2, Tokens: 30, USD: "0.00002"},
		{Day: "2030-05-05", Subject: me, KeyID: "kidAAAA1", Model: "large", Requests: 1, Tokens: 7, USD: "0"},
		{Day: "2030-04-30", Subject: me, Model: "small", Requests: 1, Tokens: 1, USD: "0"},
		{Day: "2030-05-06", Subject: other, Model: "small", Requests: 9, Tokens: 99, USD: "1"},
	}
	// some use of the day and the minute, and the key's own budget
	r := budget.Request{ID: strings.Repeat("a", 31) + "1", Subject: me, KeyID: "kidAAAA1", Model: "large", PromptTokens: 40, N: 1, Cap: 60,
		Price: budget.Price{PromptNano: 500, CompletionNano: 1500},
		Scopes: []budget.Scope{{Kind: "user", Part: "u", Limits: budget.Limits{TokensPerMinute: 10000, TokensPerDay: 100000, NanoUSDPerMonth: 5 * budget.NanoPerUSD}, Stored: true},
			{Kind: "key", Part: "k:kidAAAA1", Stored: true}, {Kind: "model", Part: "m:large", Limits: budget.Limits{TokensPerDay: 1000}}}}
	if err := h.budgets.SetLimits(ctx, me, "k:kidAAAA1", &budget.StoredLimits{Limits: budget.Limits{TokensPerDay: 500}, Models: []string{"large", "other"}}); err != nil {
		t.Fatal(err)
	}
	res, d, err := h.budgets.Reserve(ctx, r)
	if err != nil || d != nil {
		t.Fatalf("%+v %v", d, err)
	}
	t.Cleanup(func() { _, _ = h.budgets.Settle(context.Background(), res, 0, 0) })

	type window struct {
		Limit, Used, Remaining any
		Reset                  string
	}
	type answer struct {
		Subject, From, To string
		Models            []string
		Budgets           map[string]map[string]window
		Usage             []ledger.Row
		Truncated         bool
	}
	get := func(query, key string) (resp, answer) {
		hdr := map[string]string{"Authorization": "Bearer " + tok}
		if key != "" {
			hdr["X-Test-Key"] = key
		}
		rr := serve(h.public, http.MethodGet, "/v1/usage"+query, nil, hdr)
		var a answer
		if rr.status == 200 {
			rr.json(t, &a)
		}
		return rr, a
	}
	// a JWT caller: the month so far (the harness's clock: 2030-05-06),
	// every row of the subject, the user's and the model budgets
	rr, a := get("", "")
	if rr.status != 200 || rr.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("%d %s", rr.status, rr.body)
	}
	if a.Subject != me || a.From != "2030-05-01" || a.To != "2030-05-06" || !slices.Equal(a.Models, []string{"large", "small"}) || a.Truncated {
		t.Fatalf("%s", rr.body)
	}
	if len(a.Usage) != 2 || a.Usage[0].Subject != "" || h.over.lastQuery().KeyID != "" || h.over.lastQuery().Subject != me {
		t.Fatalf("rows %+v (query %+v)", a.Usage, h.over.lastQuery())
	}
	u := a.Budgets["user"]
	if len(a.Budgets) != 2 || u["tokens_per_day"].Limit != float64(100000) || u["tokens_per_day"].Used != float64(100) ||
		u["tokens_per_day"].Remaining != float64(99900) || u["tokens_per_minute"].Used.(float64) < 90 || u["usd_per_month"].Limit != "5" ||
		u["usd_per_month"].Used != "0.00011" || u["usd_per_month"].Remaining != "4.99989" || u["tokens_per_month"] != (window{}) {
		t.Fatalf("user budget %s", rr.body)
	}
	if !strings.HasSuffix(u["tokens_per_minute"].Reset, "ms") && !strings.HasSuffix(u["tokens_per_minute"].Reset, "s") {
		t.Fatalf("reset %q", u["tokens_per_minute"].Reset)
	}
	if _, err := time.ParseDuration(u["tokens_per_day"].Reset); err != nil {
		t.Fatalf("reset %q: %v", u["tokens_per_day"].Reset, err)
	}
	if m := a.Budgets["model:large"]["tokens_per_day"]; m.Limit != float64(1000) || m.Used != float64(100) {
		t.Fatalf("model budget %s", rr.body)
	}
	// the API key: its rows only, its own budget, its models among the user's
	rr, a = get("?from=2030-04-01&to=2030-05-06", "kidAAAA1")
	if rr.status != 200 || len(a.Usage) != 1 || a.Usage[0].KeyID != "kidAAAA1" || h.over.lastQuery().KeyID != "kidAAAA1" {
		t.Fatalf("%d %s", rr.status, rr.body)
	}
	if k := a.Budgets["key"]["tokens_per_day"]; k.Limit != float64(500) || k.Used != float64(100) || !slices.Equal(a.Models, []string{"large"}) {
		t.Fatalf("key budget %s", rr.body)
	}
	// a key without a budget of its own: no "key"
	if rr, a = get("", "kidBBBB2"); rr.status != 200 || a.Budgets["key"] != nil || len(a.Usage) != 0 {
		t.Fatalf("%d %s", rr.status, rr.body)
	}
	// an override replaces the user's budget and models
	if _, err := h.ent.PutOverride(ctx, entitlement.Override{Subject: me, Limits: budget.Limits{TokensPerMonth: 9}, Models: []string{"small"}}); err != nil {
		t.Fatal(err)
	}
	if rr, a = get("", ""); len(a.Budgets["user"]) != 1 || a.Budgets["user"]["tokens_per_month"].Limit != float64(9) || !slices.Equal(a.Models, []string{"small"}) {
		t.Fatalf("%s", rr.body)
	}
	// roles without a budget: nothing may be used
	rr = serve(h.public, http.MethodGet, "/v1/usage", nil, map[string]string{"Authorization": "Bearer " + h.token(sub(t), "nobudget")})
	if rr.status != 200 || !strings.Contains(string(rr.body), `"models":[]`) {
		t.Fatalf("%d %s", rr.status, rr.body)
	}
	// refusals
	for _, c := range []struct{ query, code string }{
		{"?from=2030-05-07&to=2030-05-01", "invalid_date_range"},
		{"?from=2029-01-01&to=2030-05-06", "invalid_date_range"},
		{"?from=05/01/2030", "invalid_date_range"},
		{"?subject=" + other, "unknown_parameter"},
		{"?from=2030-05-01&from=2030-05-02", "duplicate_parameter"},
		{"?from=%ZZ", "invalid_query"},
	} {
		if rr, _ := get(c.query, ""); rr.status != 400 || rr.code() != c.code {
			t.Errorf("%s: %d %s", c.query, rr.status, rr.body)
		}
	}
	if r := h.api(http.MethodGet, "/v1/usage", "", ""); r.status != 401 {
		t.Fatalf("no credential: %d", r.status)
	}
	// the ledger down: 503
	h.over.fail = errBudgetStoreDown
	if rr, _ := get("", ""); rr.status != 503 || rr.code() != "unavailable" {
		t.Fatalf("%d %s", rr.status, rr.body)
	}
}

func TestAdminUsageListsEverySubjectOrOne(t *testing.T) {
	h := newHarness(t, options{budgets: true})
	adm := h.admin(t)
	h.over.rows = []ledger.Row{
		{Day: "2030-05-06", Subject: "alice", Model: "small", Requests: 2, Tokens: 30, USD: "0.00002"},
		{Day: "2030-05-06", Subject: "bob", Model: "small", Requests: 1, Tokens: 3, USD: "0"},
		{Day: "2030-03-01", Subject: "bob", Model: "small", Requests: 1, Tokens: 3, USD: "0"},
	}
	var all server.AdminUsageView
	r := h.api(http.MethodGet, "/v1/admin/usage", adm, "")
	r.json(t, &all)
	if r.status != 200 || all.Subject != nil || len(all.Usage) != 2 || all.Usage[1].Subject != "bob" || all.From != "2030-05-01" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var one server.AdminUsageView
	r = h.api(http.MethodGet, "/v1/admin/usage?subject=bob&from=2030-03-01&to=2030-05-06", adm, "")
	r.json(t, &one)
	if r.status != 200 || one.Subject == nil || *one.Subject != "bob" || len(one.Usage) != 2 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	for _, q := range []string{"?subject=../etc", "?subject=a%2Fb", "?subject=" + strings.Repeat("x", 129), "?subject=%E2%80%AE", "?to=2030-13-01", "?x=1"} {
		if r := h.api(http.MethodGet, "/v1/admin/usage"+q, adm, ""); r.status != 400 {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
	}
}

var errBudgetStoreDown = errors.New("postgres: connection refused")
