package metering

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/ledger"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/llmproxy"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/llmrequest"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// model is a fake model server: prompt tokens = body bytes / 8, each
// choice answers min(cap, Natural) one-token words; it counts what it
// produced (written to the connection).
type model struct {
	Natural  int64
	produced atomic.Int64
	prompts  atomic.Int64
	calls    atomic.Int64
	mu       sync.Mutex
	last     map[string]any
	fail     int // status to answer instead
}

func (m *model) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.calls.Add(1)
	if r.URL.Path == "/v1/models" {
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"small","object":"model"},{"id":"large","object":"model"},{"id":"other","object":"model"}]}`)
		return
	}
	b, _ := io.ReadAll(r.Body)
	var req map[string]any
	_ = json.Unmarshal(b, &req)
	m.mu.Lock()
	m.last = req
	m.mu.Unlock()
	if m.fail != 0 {
		w.WriteHeader(m.fail)
		_, _ = io.WriteString(w, `{"error":"internal detail"}`)
		return
	}
	prompt := int64(len(b)) / 8
	n := int64(1)
	if v, ok := req["n"].(float64); ok {
		n = int64(v)
	}
	limit := int64(1 << 30)
	for _, k := range []string{"max_completion_tokens", "max_tokens"} {
		if v, ok := req[k].(float64); ok {
			limit = int64(v)
			break
		}
	}
	per := min(limit, m.Natural)
	m.prompts.Add(prompt)
	if strings.HasSuffix(r.URL.Path, "/embeddings") {
		fmt.Fprintf(w, `{"object":"list","data":[],"usage":{"prompt_tokens":%d,"total_tokens":%d}}`, prompt, prompt)
		return
	}
	if s, _ := req["stream"].(bool); s {
		so, _ := req["stream_options"].(map[string]any)
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		var done int64
		for i := int64(0); i < per; i++ {
			for c := int64(0); c < n; c++ {
				done++
				usage := ""
				if so["continuous_usage_stats"] == true {
					usage = fmt.Sprintf(`,"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}`, prompt, done, prompt+done)
				}
				if _, err := fmt.Fprintf(w, "data: {\"choices\":[{\"index\":%d,\"delta\":{\"content\":\"w \"}}]%s}\n\n", c, usage); err != nil {
					return
				}
				fl.Flush()
				m.produced.Add(1)
				time.Sleep(time.Millisecond)
				if r.Context().Err() != nil {
					return
				}
			}
		}
		if so["include_usage"] == true {
			fmt.Fprintf(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n", prompt, done, prompt+done)
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
		return
	}
	m.produced.Add(per * n)
	fmt.Fprintf(w, `{"object":"chat.completion","choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`, prompt, per*n, prompt+per*n)
}

type memLedger struct {
	mu      sync.Mutex
	entries []ledger.Entry
}

func (l *memLedger) Record(e ledger.Entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, e)
}

// settled waits for the settlements of the requests made so far.
func (r *rig) settled() *memLedger { r.h.Close(); return r.ledger }

func (l *memLedger) all() []ledger.Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ledger.Entry(nil), l.entries...)
}

const budgets = `default_max_completion_tokens: 512
roles:
  guest: {tokens_per_day: 2000, models: [small]}
  user:  {tokens_per_minute: 100000, tokens_per_day: 1000000, model_limits: {large: {tokens_per_day: 300}}}
prices:
  small: {prompt_usd_per_million: 0.5, completion_usd_per_million: 1.5}
`

type rig struct {
	h      *Handler
	m      *model
	ledger *memLedger
	rdb    redis.UniversalClient
	store  *budget.Store
}

func newRig(t testing.TB, addr string, mod func(*Config)) *rig {
	t.Helper()
	cfg, err := budget.Parse(strings.NewReader(budgets))
	if err != nil {
		t.Fatal(err)
	}
	m := &model{Natural: 20}
	up := httptest.NewServer(m)
	t.Cleanup(up.Close)
	p, err := llmproxy.New(llmproxy.Config{UpstreamURL: up.URL + "/v1", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	opts := &redis.Options{Addr: addr}
	if addr == deadRedis {
		opts.MaxRetries, opts.DialTimeout = -1, 200*time.Millisecond
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	store := budget.NewStore(rdb, time.Minute)
	l := &memLedger{}
	logger := zerolog.Nop()
	if tt, ok := t.(*testing.T); ok {
		logger = zerolog.New(zerolog.NewTestWriter(tt))
	}
	c := Config{Budgets: cfg, Store: store, Upstream: p, Ledger: l, Logger: logger}
	if mod != nil {
		mod(&c)
	}
	h, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{h: h, m: m, ledger: l, rdb: rdb, store: store}
}

type caller struct {
	sub, key string
	roles    []string
}

func newCaller(roles ...string) caller {
	return caller{sub: "u-" + NewID()[:12], roles: roles}
}

func (r *rig) do(t *testing.T, c caller, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	id := &identity.Identity{Subject: c.sub, RealmRoles: c.roles, AuthMethod: identity.MethodJWT}
	if c.key != "" {
		id.AuthMethod, id.APIKeyID = identity.MethodAPIKey, c.key
	}
	req = req.WithContext(edgehttp.WithIdentity(req.Context(), id))
	w := httptest.NewRecorder()
	r.h.ServeHTTP(w, req)
	return w
}

func errCode(t *testing.T, w *httptest.ResponseRecorder) (typ, code string) {
	t.Helper()
	var b struct {
		Error struct{ Type, Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		t.Fatalf("not an OpenAI error: %s", w.Body.String())
	}
	return b.Error.Type, b.Error.Code
}

func chat(extra string) string {
	return `{"model":"small","messages":[{"role":"user","content":"hello there"}]` + extra + `}`
}

func TestPlainAnswerIsReservedCappedAndSettled(t *testing.T) {
	r := newRig(t, testenv.RedisAddr(t), nil)
	c := newCaller("guest")
	w := r.do(t, c, http.MethodPost, "/v1/chat/completions", chat(`,"max_tokens":900,"max_completion_tokens":100`))
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	r.m.mu.Lock()
	last := r.m.last
	r.m.mu.Unlock()
	if _, ok := last["max_tokens"]; ok || last["max_completion_tokens"] != float64(100) {
		t.Fatalf("upstream got %v", last)
	}
	if w.Header().Get("X-Ratelimit-Limit-Tokens") != "2000" || w.Header().Get("X-Ratelimit-Reset-Tokens") == "" {
		t.Fatalf("headers %v", w.Header())
	}
	e := r.settled().all()
	if len(e) != 1 || e[0].Status != StatusSettled || e[0].CompletionTokens != 20 || e[0].Subject != c.sub || e[0].ID == "" {
		t.Fatalf("ledger %+v", e)
	}
	// 0.5 USD/M prompt, 1.5 USD/M completion, in nano-USD
	if e[0].Nano != e[0].PromptTokens*500+20*1500 {
		t.Fatalf("cost %d", e[0].Nano)
	}
}

func TestAClientCapThatDoesNotFitIs429AndNeverReachesTheModel(t *testing.T) {
	r := newRig(t, testenv.RedisAddr(t), nil)
	c := newCaller("guest")
	w := r.do(t, c, http.MethodPost, "/v1/chat/completions", chat(`,"max_completion_tokens":5000`))
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	typ, code := errCode(t, w)
	if typ != "insufficient_quota" || code != CodeTokenBudgetExhausted || w.Header().Get("Retry-After") != "" {
		t.Fatalf("%s %s %v", typ, code, w.Header())
	}
	if !strings.Contains(w.Body.String(), "Limit 2000, Used 0, Requested") || !strings.Contains(w.Body.String(), "alone exceeds") {
		t.Fatalf("message %s", w.Body)
	}
	if r.m.calls.Load() != 0 {
		t.Fatal("the model server was called")
	}
}

func TestTheDefaultCapIsClampedToWhatIsLeft(t *testing.T) {
	r := newRig(t, testenv.RedisAddr(t), nil)
	r.m.Natural = 10000
	c := newCaller("guest")
	// no cap: 512 each; the budget (2000) runs out, the last one clamped
	var caps []float64
	for range 6 {
		w := r.do(t, c, http.MethodPost, "/v1/chat/completions", chat(""))
		if w.Code == http.StatusTooManyRequests {
			if w.Header().Get("Retry-After") == "" {
				t.Fatal("a period refusal without Retry-After")
			}
			break
		}
		r.m.mu.Lock()
		caps = append(caps, r.m.last["max_completion_tokens"].(float64))
		r.m.mu.Unlock()
	}
	if len(caps) < 4 || caps[0] != 512 || caps[len(caps)-1] >= 512 {
		t.Fatalf("caps %v", caps)
	}
	var used int64
	for _, e := range r.settled().all() {
		used += e.Tokens
	}
	// used to within one reservation of the end: what is left cannot hold
	// the next request's prompt bound and one completion token
	plan, err := llmrequest.Analyze(llmrequest.Chat, []byte(chat("")), r.h.cfg.Options)
	if err != nil {
		t.Fatal(err)
	}
	if used > 2000 || 2000-used >= plan.PromptTokens+1 {
		t.Fatalf("used %d of 2000 (a request reserves at least %d)", used, plan.PromptTokens+1)
	}
}

func TestStreamsAreSettledAtTheirUsage(t *testing.T) {
	r := newRig(t, testenv.RedisAddr(t), nil)
	c := newCaller("guest")
	w := r.do(t, c, http.MethodPost, "/v1/chat/completions", chat(`,"stream":true,"max_tokens":7`))
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), "usage") || !strings.HasSuffix(w.Body.String(), "data: [DONE]\n\n") {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	w = r.do(t, c, http.MethodPost, "/v1/chat/completions", chat(`,"stream":true,"max_tokens":7,"stream_options":{"include_usage":true}`))
	if !strings.Contains(w.Body.String(), `"choices":[],"usage":{"prompt_tokens"`) || !strings.Contains(w.Body.String(), `"usage":null`) {
		t.Fatalf("%s", w.Body)
	}
	for _, e := range r.settled().all() {
		if e.Status != StatusSettled || e.CompletionTokens != 7 {
			t.Fatalf("%+v", e)
		}
	}
}

func TestAStreamAbortedByTheClientIsSettledAtTheLastUsageSeen(t *testing.T) {
	r := newRig(t, testenv.RedisAddr(t), nil)
	r.m.Natural = 400
	c := newCaller("guest")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		id := &identity.Identity{Subject: c.sub, RealmRoles: c.roles, AuthMethod: identity.MethodJWT}
		r.h.ServeHTTP(w, req.WithContext(edgehttp.WithIdentity(req.Context(), id)))
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(chat(`,"stream":true`)))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("%d %s", res.StatusCode, b)
	}
	sc := bufio.NewScanner(res.Body)
	events := 0
	for sc.Scan() && events < 10 {
		if strings.HasPrefix(sc.Text(), "data: ") {
			events++
		}
	}
	cancel()
	_ = res.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for len(r.ledger.all()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	e := r.ledger.all()
	if len(e) != 1 || e[0].Status != StatusAborted {
		t.Fatalf("%+v", e)
	}
	if e[0].CompletionTokens < 10 || e[0].CompletionTokens > r.m.produced.Load() || e[0].CompletionTokens >= 400 {
		t.Fatalf("charged %d completion tokens; the model produced %d", e[0].CompletionTokens, r.m.produced.Load())
	}
}

func TestUpstreamFailuresAreChargedAsStated(t *testing.T) {
	r := newRig(t, testenv.RedisAddr(t), nil)
	r.m.fail = http.StatusInternalServerError
	c := newCaller("guest")
	if w := r.do(t, c, http.MethodPost, "/v1/chat/completions", chat(`,"max_tokens":10`)); w.Code != http.StatusBadGateway {
		t.Fatalf("%d", w.Code)
	}
	r.m.fail = http.StatusBadRequest
	if w := r.do(t, c, http.MethodPost, "/v1/chat/completions", chat(`,"max_tokens":10`)); w.Code != http.StatusBadRequest {
		t.Fatalf("%d", w.Code)
	}
	// settlements run beside the answers: in any order
	e := r.settled().all()
	byStatus := map[string]ledger.Entry{}
	for _, x := range e {
		byStatus[x.Status] = x
	}
	failed, refused := byStatus[StatusFailed], byStatus[StatusRefused]
	if len(e) != 2 || failed.Status == "" || failed.Tokens != failed.Reserved || refused.Status == "" || refused.Tokens != 0 {
		t.Fatalf("%+v", e)
	}
}

func TestModelsAreLimitedToWhatTheCallerMayUse(t *testing.T) {
	r := newRig(t, testenv.RedisAddr(t), nil)
	guest := newCaller("guest")
	if w := r.do(t, guest, http.MethodPost, "/v1/chat/completions", `{"model":"large","messages":[{"role":"user","content":"x"}]}`); w.Code != http.StatusForbidden {
		t.Fatalf("%d", w.Code)
	} else if _, code := errCode(t, w); code != CodeModelNotAllowed {
		t.Fatal(code)
	}
	w := r.do(t, guest, http.MethodGet, "/v1/models", "")
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), "large") || !strings.Contains(w.Body.String(), `"id":"small"`) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	// a key limited to "other" sees only that of its owner's models
	key := newCaller("user")
	key.key = "kid00001"
	if err := r.store.SetLimits(context.Background(), key.sub, "k:"+key.key, &budget.StoredLimits{Models: []string{"other"}}); err != nil {
		t.Fatal(err)
	}
	w = r.do(t, key, http.MethodGet, "/v1/models", "")
	if strings.Contains(w.Body.String(), "small") || !strings.Contains(w.Body.String(), `"id":"other"`) {
		t.Fatalf("%s", w.Body)
	}
	if w := r.do(t, key, http.MethodPost, "/v1/chat/completions", chat("")); w.Code != http.StatusForbidden {
		t.Fatalf("the key used a model outside its list: %d", w.Code)
	}
	// a role without a configured budget
	if w := r.do(t, newCaller("offline_access"), http.MethodGet, "/v1/models", ""); w.Code != http.StatusForbidden {
		t.Fatalf("%d", w.Code)
	}
}

// TestAnOverrideReplacesTheRolesModelsAndGivesABudget: an
// administrator's override (stored user limits, package entitlement) with
// models replaces the roles' list — widening it too — and gives a budget to
// a caller whose roles have none.
func TestAnOverrideReplacesTheRolesModelsAndGivesABudget(t *testing.T) {
	r := newRig(t, testenv.RedisAddr(t), nil)
	ctx := context.Background()
	guest := newCaller("guest") // roles: small only
	if err := r.store.SetLimits(ctx, guest.sub, "u", &budget.StoredLimits{Limits: budget.Limits{TokensPerDay: 5000}, Models: []string{"large"}}); err != nil {
		t.Fatal(err)
	}
	large := `{"model":"large","messages":[{"role":"user","content":"x"}]}`
	if w := r.do(t, guest, http.MethodPost, "/v1/chat/completions", large); w.Code != http.StatusOK {
		t.Fatalf("a model the override lists: %d %s", w.Code, w.Body)
	}
	if w := r.do(t, guest, http.MethodPost, "/v1/chat/completions", chat("")); w.Code != http.StatusForbidden {
		t.Fatalf("a model of the roles the override leaves out: %d %s", w.Code, w.Body)
	}
	w := r.do(t, guest, http.MethodGet, "/v1/models", "")
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), `"small"`) || !strings.Contains(w.Body.String(), `"id":"large"`) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	// no budget for the roles, but an override: its budget applies
	none := newCaller("offline_access")
	if err := r.store.SetLimits(ctx, none.sub, "u", &budget.StoredLimits{Limits: budget.Limits{TokensPerDay: 1000}}); err != nil {
		t.Fatal(err)
	}
	if w := r.do(t, none, http.MethodPost, "/v1/chat/completions", chat(`,"max_completion_tokens":5`)); w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if w := r.do(t, none, http.MethodPost, "/v1/chat/completions", chat(`,"max_completion_tokens":600`)); w.Code != http.StatusTooManyRequests {
		t.Fatalf("the override's day budget: %d %s", w.Code, w.Body)
	}
	if w := r.do(t, none, http.MethodGet, "/v1/models", ""); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"id":"small"`) {
		t.Fatalf("an override without models: every model: %d %s", w.Code, w.Body)
	}
}

func TestPerModelBudgetApplies(t *testing.T) {
	r := newRig(t, testenv.RedisAddr(t), nil)
	u := newCaller("user")
	w := r.do(t, u, http.MethodPost, "/v1/chat/completions", `{"model":"large","messages":[{"role":"user","content":"x"}],"max_tokens":400}`)
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if !strings.Contains(w.Body.String(), "model budget") {
		t.Fatalf("%s", w.Body)
	}
}

// deadRedis is an address nothing listens on (TestRedisAway).
var deadRedis = "127.0.0.1:1"

func TestRedisAway(t *testing.T) {
	dead := deadRedis
	r := newRig(t, dead, nil)
	w := r.do(t, newCaller("guest"), http.MethodPost, "/v1/chat/completions", chat(""))
	if _, code := errCode(t, w); w.Code != http.StatusServiceUnavailable || code != CodeBudgetUnavailable {
		t.Fatalf("deny: %d %s", w.Code, code)
	}
	if r.m.calls.Load() != 0 {
		t.Fatal("proxied")
	}
	a := newRig(t, dead, func(c *Config) { c.OnRedisError = OnRedisErrorAllow })
	if w := a.do(t, newCaller("guest"), http.MethodPost, "/v1/chat/completions", chat(`,"max_tokens":5`)); w.Code != http.StatusOK {
		t.Fatalf("allow: %d", w.Code)
	}
	if e := a.settled().all(); len(e) != 1 || e[0].Status != StatusUnmetered || e[0].CompletionTokens != 5 {
		t.Fatalf("%+v", e)
	}
}

// TestNeverExceededAcrossTwoReplicas: two handlers (replicas) on one Redis,
// 64 concurrent requests — plain, streamed (some aborted), n > 1, batched
// prompts, embeddings, both cap fields — against a 2,000-token day budget:
// what the model produced never passes it.
func TestNeverExceededAcrossTwoReplicas(t *testing.T) {
	addr := testenv.RedisAddr(t)
	a, b := newRig(t, addr, nil), newRig(t, addr, nil)
	c := newCaller("guest")
	bodies := []string{
		chat(""), chat(`,"max_tokens":30`), chat(`,"max_completion_tokens":25,"n":3`),
		chat(`,"stream":true`), chat(`,"stream":true,"max_tokens":40,"stream_options":{"include_usage":true}`),
		`{"model":"small","prompt":["one","two","three"],"max_tokens":9}`,
		`{"model":"small","input":["embed me","and me"]}`,
	}
	paths := []string{"/v1/chat/completions", "/v1/chat/completions", "/v1/chat/completions", "/v1/chat/completions",
		"/v1/chat/completions", "/v1/completions", "/v1/embeddings"}
	var wg sync.WaitGroup
	var ok, refused atomic.Int64
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rg := a
			if i%2 == 1 {
				rg = b
			}
			// a client retries what requests in flight refused (Retry-After
			// 1) and gives up on an exhausted day
			for attempt := 0; attempt < 200; attempt++ {
				w := rg.do(t, c, http.MethodPost, paths[i%len(paths)], bodies[i%len(bodies)])
				if w.Code == http.StatusOK {
					ok.Add(1)
					return
				}
				if w.Code != http.StatusTooManyRequests {
					t.Errorf("%d %s", w.Code, w.Body)
					return
				}
				if w.Header().Get("X-Ratelimit-Limit-Tokens") == "" && w.Header().Get("Retry-After") == "" {
					t.Errorf("a 429 without its headers: %v", w.Header())
				}
				if w.Header().Get("Retry-After") != "1" {
					refused.Add(1)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	produced := a.m.produced.Load() + b.m.produced.Load() + a.m.prompts.Load() + b.m.prompts.Load()
	var charged int64
	for _, e := range append(a.settled().all(), b.settled().all()...) {
		charged += e.Tokens
	}
	t.Logf("%d answered, %d refused; the model produced %d tokens (prompt + completion), %d charged", ok.Load(), refused.Load(), produced, charged)
	if produced > 2000 || charged > 2000 {
		t.Fatalf("budget exceeded: produced %d, charged %d of 2000", produced, charged)
	}
	if refused.Load() == 0 {
		t.Fatal("nothing refused: the budget was never reached")
	}
	// used to within one reservation of its end: the largest of the mix
	var largest int64
	for i, b := range bodies {
		ep := map[string]llmrequest.Endpoint{"/v1/chat/completions": llmrequest.Chat, "/v1/completions": llmrequest.Completions,
			"/v1/embeddings": llmrequest.Embeddings}[paths[i]]
		p, err := llmrequest.Analyze(ep, []byte(b), a.h.cfg.Options)
		if err != nil {
			t.Fatal(err)
		}
		c := p.Cap
		if c == 0 && ep != llmrequest.Embeddings {
			c = 512
		}
		largest = max(largest, p.PromptTokens+c*p.N)
	}
	if 2000-charged >= largest {
		t.Fatalf("%d of 2000 charged: more than one reservation (%d) left unused", charged, largest)
	}
}
