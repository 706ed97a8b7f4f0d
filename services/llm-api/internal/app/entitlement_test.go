package app_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/app"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keystest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/llmstub"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/pgtest"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// appBudgets: users 2000 tokens a day (the stub answers 1 prompt + 5
// completion tokens; a request reserves its prompt bound + 16), priced.
const appBudgets = `default_max_completion_tokens: 16
roles:
  user: {tokens_per_day: 100000, usd_per_day: 1}
prices:
  stub-model: {prompt_usd_per_million: 1, completion_usd_per_million: 2}
`

// budgetCluster is n llm-api instances on one PostgreSQL schema and one
// Redis, in front of one stub model server (replicas behind Kong).
type budgetCluster struct {
	idp  *jwttest.IdP
	apps []*app.App
	urls []string
	rdb  *redis.Client
}

func startBudgetCluster(t *testing.T, n int, logs io.Writer, syncEvery time.Duration) *budgetCluster {
	t.Helper()
	stub := &llmstub.Stub{}
	up := httptest.NewServer(stub)
	t.Cleanup(up.Close)
	c := &budgetCluster{idp: jwttest.New(t)}
	dsn, addr := pgtest.Schema(t), redisAddr(t)
	c.rdb = redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.rdb.Close() })
	if logs == nil {
		logs = io.Discard
	}
	for i := range n {
		cfg := testConfig(t, c.idp, dsn, addr)
		b, err := budget.Parse(strings.NewReader(appBudgets))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Budgets, cfg.LLMBudgetOnRedisError = &b, "deny"
		cfg.LLMUpstreamURL = up.URL + "/v1"
		cfg.LLMUpstreamTimeout, cfg.LLMUpstreamHeaderTimeout, cfg.LLMMaxBodyBytes = time.Minute, time.Minute, 1<<20
		a, err := app.New(context.Background(), cfg, zerolog.New(logs).Level(zerolog.DebugLevel).With().Int("replica", i).Logger(),
			app.Deps{Roles: keystest.NewRoles(), UsageInterval: time.Hour, AuditConsumer: fmt.Sprint("r", i), BudgetSyncInterval: syncEvery})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Close)
		ctx, cancel := context.WithCancel(context.Background())
		wg := a.Background(ctx)
		t.Cleanup(func() { cancel(); wg.Wait() })
		srv := httptest.NewServer(a.Public)
		t.Cleanup(srv.Close)
		c.apps, c.urls = append(c.apps, a), append(c.urls, srv.URL)
	}
	return c
}

func randomSubject(t *testing.T) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "app-" + hex.EncodeToString(b[:])
}

func (c *budgetCluster) bearer(t testing.TB, sub string, roles ...string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + c.idp.Token(t, sub, map[string]any{
		"realm_access": map[string]any{"roles": roles}})}
}

const hello = `{"model":"stub-model","messages":[{"role":"user","content":"hi"}]}`

// TestAnOverrideOnOneReplicaDecidesTheNextReservationOfAnother: an
// administrator's PUT on replica 0 is in Redis when replica 1 reserves;
// its DELETE likewise.
func TestAnOverrideOnOneReplicaDecidesTheNextReservationOfAnother(t *testing.T) {
	c := startBudgetCluster(t, 2, nil, time.Hour)
	user := randomSubject(t)
	u := c.bearer(t, user, "user")
	if st, b := call(t, http.MethodPost, c.urls[1]+"/v1/chat/completions", u, hello); st != 200 {
		t.Fatalf("before: %d %s", st, b)
	}
	admin := c.bearer(t, "root-admin", "admin", "user")
	// 100 tokens a day: less than one request's reservation
	if st, b := call(t, http.MethodPut, c.urls[0]+"/v1/admin/budgets/users/"+user, admin, `{"tokens_per_day":100}`); st != 200 {
		t.Fatalf("put: %d %s", st, b)
	}
	st, b := call(t, http.MethodPost, c.urls[1]+"/v1/chat/completions", u, hello)
	if st != 429 || !strings.Contains(string(b), "token_budget_exhausted") || !strings.Contains(string(b), "Limit 100") {
		t.Fatalf("after the override: %d %s", st, b)
	}
	// the other replica reads it back from PostgreSQL
	if st, b := call(t, http.MethodGet, c.urls[1]+"/v1/admin/budgets/users/"+user, admin, ""); st != 200 || !strings.Contains(string(b), `"tokens_per_day":100`) {
		t.Fatalf("get: %d %s", st, b)
	}
	// a model list in the override applies too
	if st, b := call(t, http.MethodPut, c.urls[0]+"/v1/admin/budgets/users/"+user, admin, `{"models":["another-model"]}`); st != 200 {
		t.Fatalf("put: %d %s", st, b)
	}
	if st, b := call(t, http.MethodPost, c.urls[1]+"/v1/chat/completions", u, hello); st != 403 || !strings.Contains(string(b), "model_not_allowed") {
		t.Fatalf("a model outside the override's list: %d %s", st, b)
	}
	if st, b := call(t, http.MethodDelete, c.urls[0]+"/v1/admin/budgets/users/"+user, admin, ""); st != 204 {
		t.Fatalf("delete: %d %s", st, b)
	}
	if st, b := call(t, http.MethodPost, c.urls[1]+"/v1/chat/completions", u, hello); st != 200 {
		t.Fatalf("after the removal: %d %s", st, b)
	}
}

// TestTheSyncRestoresOverridesAndKeyBudgetsAfterRedisLosesThem: Redis
// forgets (a flush, a failover without persistence); the next sync writes
// both back from PostgreSQL.
func TestTheSyncRestoresOverridesAndKeyBudgetsAfterRedisLosesThem(t *testing.T) {
	var logs testenv.Buffer
	c := startBudgetCluster(t, 1, &logs, 200*time.Millisecond)
	user := randomSubject(t)
	ctx := context.Background()
	admin := c.bearer(t, "root-admin", "admin", "user")
	if st, b := call(t, http.MethodPut, c.urls[0]+"/v1/admin/budgets/users/"+user, admin, `{"tokens_per_day":100}`); st != 200 {
		t.Fatalf("put: %d %s", st, b)
	}
	st, b := call(t, http.MethodPost, c.urls[0]+"/auth/api-keys", c.bearer(t, user, "user"), `{"name":"k","budget":{"tokens_per_day":50},"models":["stub-model"]}`)
	if st != 201 {
		t.Fatalf("create: %d %s", st, b)
	}
	var k struct{ KID string }
	_ = json.Unmarshal(b, &k)
	bs := budget.NewStore(c.rdb, time.Minute)
	// lost
	userKey, keyKey := "eg:budget:{"+user+"}:u:lim", "eg:budget:{"+user+"}:k:"+k.KID+":lim"
	if n := c.rdb.Del(ctx, userKey, keyKey).Val(); n != 2 {
		t.Fatalf("deleted %d of the two entries (key names changed?)", n)
	}
	// back within a sync period
	deadline := time.Now().Add(5 * time.Second)
	for {
		u, _ := bs.Limits(ctx, user, "u")
		kl, _ := bs.Limits(ctx, user, "k:"+k.KID)
		if u != nil && kl != nil {
			if u.Limits.TokensPerDay != 100 || kl.Limits.TokensPerDay != 50 || kl.Models[0] != "stub-model" {
				t.Fatalf("restored %+v %+v", u, kl)
			}
			if ttl := c.rdb.TTL(ctx, keyKey).Val(); ttl <= 0 {
				t.Fatalf("the key's entry does not expire with the key: %v", ttl)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not restored: %+v %+v", u, kl)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "budget overrides and key budgets written to Redis") {
		t.Fatal("the sync logs no counts")
	}
	// a removed override is removed again by the sync
	if st, b := call(t, http.MethodDelete, c.urls[0]+"/v1/admin/budgets/users/"+user, admin, ""); st != 204 {
		t.Fatalf("delete: %d %s", st, b)
	}
	c.rdb.HSet(ctx, userKey, "set", "1", "tpd", "1") // a stale copy (a raced write)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if u, _ := bs.Limits(ctx, user, "u"); u == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stale copy of a removed override stayed")
		}
	}
}

// TestLedgerRowsOfModelRequestsAreTheRedisDayCounters: requests through
// the model API on two replicas settle into Redis and into the ledger;
// GET /v1/usage shows the rows, and their sum is the day counter the next
// reservation reads.
func TestLedgerRowsOfModelRequestsAreTheRedisDayCounters(t *testing.T) {
	c := startBudgetCluster(t, 2, nil, time.Hour)
	user := randomSubject(t)
	u := c.bearer(t, user, "user")
	for i := range 5 {
		if st, b := call(t, http.MethodPost, c.urls[i%2]+"/v1/chat/completions", u, hello); st != 200 {
			t.Fatalf("%d %s", st, b)
		}
	}
	// a request is settled (and queued for the ledger) just after its
	// answer: wait for the fifth
	var st int
	var b []byte
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		for _, a := range c.apps {
			if err := a.Ledger.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		st, b = call(t, http.MethodGet, c.urls[0]+"/v1/usage", u, "")
		if st != 200 {
			t.Fatalf("%d %s", st, b)
		}
		if strings.Contains(string(b), `"requests":5`) || time.Now().After(deadline) {
			break
		}
	}
	var a struct {
		Subject, From, To string
		Budgets           map[string]map[string]struct {
			Limit, Used, Remaining any
			Reset                  string
		}
		Usage []struct {
			Day, Model, USD  string
			Requests, Tokens int64
			Prompt           int64 `json:"prompt_tokens"`
			Completion       int64 `json:"completion_tokens"`
		}
	}
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Format(time.DateOnly)
	if a.Subject != user || a.To != today || len(a.Usage) != 1 || a.Usage[0].Day != today || a.Usage[0].Requests != 5 ||
		a.Usage[0].Tokens != 105 || a.Usage[0].Prompt != 25 || a.Usage[0].Completion != 80 {
		t.Fatalf("%s", b)
	}
	// the stub: 5 prompt tokens (4 for the message, 1 for "hi") and 16
	// (the default cap) completion tokens a request;
	// 5 × (5 × 1000 + 16 × 2000) nano-USD
	if a.Usage[0].USD != "0.000185" {
		t.Fatalf("usd %s", a.Usage[0].USD)
	}
	day := time.Now().UTC().Format("20060102")
	redisTokens, _ := c.rdb.HGet(context.Background(), "eg:budget:{"+user+"}:u:d:"+day, "t").Int64()
	redisNano, _ := c.rdb.HGet(context.Background(), "eg:budget:{"+user+"}:u:d:"+day, "c").Int64()
	w := a.Budgets["user"]["tokens_per_day"]
	if redisTokens != a.Usage[0].Tokens || w.Used != float64(redisTokens) || w.Limit != float64(100000) ||
		redisNano != 185_000 || a.Budgets["user"]["usd_per_day"].Used != a.Usage[0].USD {
		t.Fatalf("redis %d tokens %d nano, answer %s", redisTokens, redisNano, b)
	}
	// the admin's view of the same
	st, b = call(t, http.MethodGet, c.urls[1]+"/v1/admin/usage?subject="+user, c.bearer(t, "root-admin", "admin"), "")
	if st != 200 || !strings.Contains(string(b), `"subject":"`+user+`"`) || !strings.Contains(string(b), `"tokens":105`) {
		t.Fatalf("admin: %d %s", st, b)
	}
}
