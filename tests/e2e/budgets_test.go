package e2e

// Token budgets through the gateway (issue 15): the official openai SDK with
// an API key of a small budget, through the real Kong to llm-api and the stub
// model server.

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"
)

// keyTokensPerDay is the key's own day budget. The SDK's chat body
// ({"model":"stub-model","messages":[{"role":"user","content":"hello"}]},
// 69 bytes) is reserved at llm-api's prompt bound, 2 × 69 − 7 + 256 + 16 =
// 403 tokens, plus a cap clamped to what is left; the stub answers 6 prompt
// and 64 completion tokens. With 1000 a day the two streams and about six
// answers fit, the last one cut to what is left, and then the bound alone
// no longer fits: refused.
const keyTokensPerDay = 1000

// usageFigures is an OpenAI usage object.
type usageFigures struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// streamRun is what client.mjs reports of a stream.
type streamRun struct {
	Chunks         int           `json:"chunks"`
	ContentChunks  int64         `json:"content_chunks"`
	ContentTokens  int64         `json:"content_tokens"`
	UsageChunks    int           `json:"usage_chunks"`
	UsageKeys      int           `json:"usage_keys"`
	Usage          *usageFigures `json:"usage"`
	LastUsageChunk int           `json:"last_usage_chunk"`
	LastChoices    *int          `json:"last_choices"`
}

// budgetRun is what client.mjs budget prints.
type budgetRun struct {
	UsageStream streamRun `json:"usage_stream"`
	PlainStream streamRun `json:"plain_stream"`
	Answers     []struct {
		Status          int          `json:"status"`
		Usage           usageFigures `json:"usage"`
		ContentTokens   int64        `json:"content_tokens"`
		FinishReason    string       `json:"finish_reason"`
		LimitTokens     *string      `json:"limit_tokens"`
		RemainingTokens *string      `json:"remaining_tokens"`
		ResetTokens     *string      `json:"reset_tokens"`
	} `json:"answers"`
	Refusal *struct {
		RateLimitError bool   `json:"rate_limit_error"`
		APIError       bool   `json:"api_error"`
		Name           string `json:"name"`
		Status         int    `json:"status"`
		// err.error: the OpenAI body's "error" object
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Param   any    `json:"param"`
			Code    string `json:"code"`
		} `json:"error"`
		// err.type, err.code: the SDK's reading of it
		SDKType     *string `json:"type"`
		SDKCode     *string `json:"code"`
		Message     string  `json:"message"`
		RetryAfter  *string `json:"retry_after"`
		LimitTokens *string `json:"limit_tokens"`
	} `json:"refusal"`
}

// TestOpenAISDKHitsAKeysTokenBudget: a user's key with a budget of 1000
// tokens a day, used with the official openai SDK through the real Kong.
// A stream with include_usage ends in one usage chunk (choices: []) whose
// completion tokens are the content tokens streamed; a stream without it
// carries no usage at all. Plain answers carry x-ratelimit-*-tokens; once
// the budget cannot hold the next request the SDK raises RateLimitError
// (429, insufficient_quota / token_budget_exhausted, Retry-After) — never a
// token more than the budget. What the SDK was told, what the stub model
// server produced, the key's and the user's day counters (GET /v1/usage)
// and the usage ledger all agree.
func TestOpenAISDKHitsAKeysTokenBudget(t *testing.T) {
	openAIDir(t)
	s, e := requireEdge(t)
	// A user of its own: the budgets and the edge's per-identity request
	// limits it uses up are nobody else's.
	_, name, pw := s.createUser(t)
	jwt := s.deviceLogin(t, e.Env["GATEWAY_PUBLIC_URL"]+"/realms/jan", name, pw).AccessToken
	kid, key := e.budgetKey(t, jwt, "openai-sdk-budget", map[string]any{
		// Within the owner's (role user, config/budgets/dev.yaml): every
		// window the owner is limited in, at most as high.
		"tokens_per_minute": 200000, "tokens_per_day": keyTokensPerDay, "usd_per_day": "50",
	})

	before := stubProduced(t, e)
	raw, err := openAI(t, "budget", "OPENAI_BASE_URL="+e.gw+"/v1", "OPENAI_API_KEY="+key, "MODEL=stub-model",
		"PACE_MS=120", "MAX_REQUESTS=40")
	if err != nil {
		t.Fatalf("client.mjs budget: %v: %v", err, raw)
	}
	after := stubProduced(t, e)
	var run budgetRun
	if b, err := json.Marshal(raw); err != nil || json.Unmarshal(b, &run) != nil {
		t.Fatalf("client.mjs budget printed %v", raw)
	}

	// The stream with include_usage: one usage chunk, the last, choices [].
	us := run.UsageStream
	if us.Usage == nil || us.UsageChunks != 1 || us.LastUsageChunk != us.Chunks-1 || us.LastChoices == nil || *us.LastChoices != 0 {
		t.Fatalf("stream with include_usage: %d usage chunks, the last at %d of %d chunks, its choices %v",
			us.UsageChunks, us.LastUsageChunk, us.Chunks, us.LastChoices)
	}
	prompt := us.Usage.PromptTokens
	if prompt <= 0 || us.ContentTokens == 0 || us.Usage.CompletionTokens != us.ContentTokens ||
		us.ContentChunks != us.ContentTokens || us.Usage.TotalTokens != prompt+us.Usage.CompletionTokens {
		t.Fatalf("stream with include_usage: usage %+v, %d content tokens in %d content chunks", *us.Usage, us.ContentTokens, us.ContentChunks)
	}
	// The stream without: llm-api asked the model server for usage and
	// took all of it out.
	ps := run.PlainStream
	if ps.UsageKeys != 0 || ps.UsageChunks != 0 || ps.ContentTokens == 0 {
		t.Fatalf("stream without include_usage: %d chunks with a usage key, %d content tokens", ps.UsageKeys, ps.ContentTokens)
	}
	// It was charged what the stub produced: the same prompt, its content.
	total := us.Usage.TotalTokens + prompt + ps.ContentTokens
	completion := us.Usage.CompletionTokens + ps.ContentTokens

	if len(run.Answers) < 2 {
		t.Fatalf("%d answers before the refusal, want at least 2", len(run.Answers))
	}
	for i, a := range run.Answers {
		if a.Status != http.StatusOK || a.Usage.PromptTokens != prompt || a.Usage.CompletionTokens != a.ContentTokens ||
			a.ContentTokens == 0 || a.Usage.TotalTokens != prompt+a.ContentTokens {
			t.Fatalf("answer %d: status %d, usage %+v, %d content tokens (prompt %d)", i, a.Status, a.Usage, a.ContentTokens, prompt)
		}
		limit, lerr := headerInt(a.LimitTokens)
		remaining, rerr := headerInt(a.RemainingTokens)
		if lerr != nil || rerr != nil || limit <= 0 || remaining < 0 || remaining > limit || a.ResetTokens == nil {
			t.Fatalf("answer %d: x-ratelimit-limit-tokens %v, -remaining-tokens %v, -reset-tokens %v", i,
				deref(a.LimitTokens), deref(a.RemainingTokens), deref(a.ResetTokens))
		}
		if _, err := time.ParseDuration(*a.ResetTokens); err != nil {
			t.Fatalf("answer %d: x-ratelimit-reset-tokens %q: %v", i, *a.ResetTokens, err)
		}
		total += a.Usage.TotalTokens
		completion += a.Usage.CompletionTokens
	}

	r := run.Refusal
	if r == nil {
		t.Fatalf("no refusal after %d answers", len(run.Answers))
	}
	if !r.RateLimitError || !r.APIError || r.Status != http.StatusTooManyRequests ||
		deref(r.SDKType) != "insufficient_quota" || deref(r.SDKCode) != "token_budget_exhausted" ||
		r.Error.Type != "insufficient_quota" || r.Error.Code != "token_budget_exhausted" || r.Error.Param != nil || r.Error.Message == "" {
		t.Fatalf("the refusal as the SDK raised it: %+v", *r)
	}
	retry, err := headerInt(r.RetryAfter)
	if err != nil || retry < 1 || retry > 86400 {
		t.Fatalf("the refusal's Retry-After %v: want the seconds to the end of the UTC day", deref(r.RetryAfter))
	}
	// "Limit 1000, Used …, Requested … tokens": the key's day window held
	// exactly what was reported, and the next request did not fit.
	m := regexp.MustCompile(`of your key budget: Limit (\d+), Used (\d+), Requested (\d+) tokens`).FindStringSubmatch(r.Error.Message)
	if m == nil {
		t.Fatalf("the refusal's message %q names no key budget figures", r.Error.Message)
	}
	limit, _ := strconv.ParseInt(m[1], 10, 64)
	usedAt, _ := strconv.ParseInt(m[2], 10, 64)
	requested, _ := strconv.ParseInt(m[3], 10, 64)
	if limit != keyTokensPerDay || usedAt != total || usedAt+requested <= limit {
		t.Fatalf("refused at Limit %d, Used %d, Requested %d; the SDK was reported %d tokens", limit, usedAt, requested, total)
	}

	// The stub model server produced exactly what the SDK was told.
	requests := int64(2 + len(run.Answers))
	if d := after.sub(before); d.Requests != requests || d.PromptTokens != prompt*requests || d.CompletionTokens != completion {
		t.Fatalf("the stub produced %+v during the run; the SDK was reported %d requests, %d prompt and %d completion tokens",
			d, requests, prompt*requests, completion)
	}

	// GET /v1/usage with the key: its budget used up to the refusal, the
	// user's day counter the same (a user of its own), and the ledger's rows
	// (written asynchronously) the reported usage; the refusal none.
	var u usageAnswer
	ok := eventually(10*time.Second, func() bool {
		a := e.do(t, http.MethodGet, "/v1/usage", key, nil, nil)
		if a.status != http.StatusOK {
			t.Fatalf("GET /v1/usage with the key: %d %s", a.status, a.body)
		}
		u = usageAnswer{}
		if err := json.Unmarshal(a.body, &u); err != nil {
			t.Fatalf("GET /v1/usage: %v", err)
		}
		return u.ledger().Tokens == total
	})
	kd, ud := u.tokenWindow("key", "tokens_per_day"), u.tokenWindow("user", "tokens_per_day")
	l := u.ledger()
	if !ok || l.Requests != requests || l.PromptTokens != prompt*requests || l.CompletionTokens != completion || l.Flagged != 0 ||
		len(l.keys) != 1 || l.keys[0] != kid || len(l.models) != 1 || l.models[0] != "stub-model" {
		t.Fatalf("the ledger through /v1/usage: %+v; reported %d requests, %d tokens (%d completion)", l, requests, total, completion)
	}
	if kd.Limit != keyTokensPerDay || kd.Used != total || kd.Remaining != keyTokensPerDay-total || kd.Remaining >= requested || ud.Used != total {
		t.Fatalf("budgets through /v1/usage: key %+v, user %+v; reported %d tokens, refused a request of %d", kd, ud, total, requested)
	}

	last := run.Answers[len(run.Answers)-1]
	t.Logf("streams: include_usage %d chunks, usage %d+%d in the last (choices []); without it %d content tokens, no usage key in %d chunks",
		us.Chunks, prompt, us.Usage.CompletionTokens, ps.ContentTokens, ps.Chunks)
	t.Logf("%d answers (%d prompt + %d completion each, the last %d, finish_reason %q; x-ratelimit-*-tokens %s/%s/%s), then RateLimitError %d %s/%s, Retry-After %d s: %q",
		len(run.Answers), prompt, run.Answers[0].Usage.CompletionTokens, last.Usage.CompletionTokens, last.FinishReason,
		deref(last.LimitTokens), deref(last.RemainingTokens), deref(last.ResetTokens),
		r.Status, r.Error.Type, r.Error.Code, retry, r.Error.Message)
	t.Logf("the stub produced %d requests, %d tokens; /v1/usage: key tokens_per_day used %d of %d (remaining %d), user used %d; ledger %d requests, %d tokens",
		requests, total, kd.Used, kd.Limit, kd.Remaining, ud.Used, l.Requests, l.Tokens)
}

// budgetKey creates an API key with its own budget for the holder of jwt
// and returns its kid and secret.
func (e *edgeStack) budgetKey(t *testing.T, jwt, name string, budget map[string]any) (kid, key string) {
	t.Helper()
	var k struct {
		Kid    string           `json:"kid"`
		Key    string           `json:"key"`
		Budget map[string]any   `json:"budget"`
		Models *json.RawMessage `json:"models"`
	}
	res := e.do(t, http.MethodPost, "/auth/api-keys", jwt, map[string]any{"name": name, "budget": budget}, nil)
	if res.status != http.StatusCreated {
		t.Fatalf("create API key with a budget: %d %s", res.status, res.body)
	}
	if err := json.Unmarshal(res.body, &k); err != nil || k.Key == "" || k.Kid == "" {
		t.Fatalf("API key answer: %v", err)
	}
	used.add(k.Key)
	if k.Budget["tokens_per_day"] != float64(budget["tokens_per_day"].(int)) {
		t.Fatalf("the key's budget as created: %v", k.Budget)
	}
	return k.Kid, k.Key
}

// stubUsage is what the stub model server produced (GET /_stub/usage).
type stubUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	Requests         int64 `json:"requests"`
}

func (u stubUsage) sub(v stubUsage) stubUsage {
	return stubUsage{u.PromptTokens - v.PromptTokens, u.CompletionTokens - v.CompletionTokens, u.Requests - v.Requests}
}

// stubProduced reads the stub's counters; the suites do not run in
// parallel, so what changes between two reads is one test's.
func stubProduced(t *testing.T, e *edgeStack) stubUsage {
	t.Helper()
	resp, err := http.Get(e.Env["STUB_UPSTREAM_URL"] + "/_stub/usage")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var u stubUsage
	if err := json.NewDecoder(resp.Body).Decode(&u); err != nil {
		t.Fatalf("GET /_stub/usage: %v", err)
	}
	return u
}

// usageAnswer is GET /v1/usage's answer (the token windows).
type usageAnswer struct {
	// scope → window → its figures (USD windows as decimal strings)
	Budgets map[string]map[string]json.RawMessage `json:"budgets"`
	Usage   []struct {
		KeyID            string `json:"key_id"`
		Model            string `json:"model"`
		Requests         int64  `json:"requests"`
		PromptTokens     int64  `json:"prompt_tokens"`
		CompletionTokens int64  `json:"completion_tokens"`
		Tokens           int64  `json:"tokens"`
		Flagged          int64  `json:"flagged"`
	} `json:"usage"`
	Truncated bool `json:"truncated"`
}

// tokenWindow is one token window of a scope (zero when not listed).
func (u usageAnswer) tokenWindow(scope, window string) tokenWindow {
	var w tokenWindow
	_ = json.Unmarshal(u.Budgets[scope][window], &w)
	return w
}

type tokenWindow struct {
	Limit     int64 `json:"limit"`
	Used      int64 `json:"used"`
	Remaining int64 `json:"remaining"`
}

// ledgerSum is the sum of the usage rows, with the keys and models named.
type ledgerSum struct {
	Requests, PromptTokens, CompletionTokens, Tokens, Flagged int64
	keys, models                                              []string
}

func (u usageAnswer) ledger() ledgerSum {
	var s ledgerSum
	for _, r := range u.Usage {
		s.Requests += r.Requests
		s.PromptTokens += r.PromptTokens
		s.CompletionTokens += r.CompletionTokens
		s.Tokens += r.Tokens
		s.Flagged += r.Flagged
		if !slices.Contains(s.keys, r.KeyID) {
			s.keys = append(s.keys, r.KeyID)
		}
		if !slices.Contains(s.models, r.Model) {
			s.models = append(s.models, r.Model)
		}
	}
	return s
}

func headerInt(v *string) (int64, error) {
	if v == nil {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseInt(*v, 10, 64)
}

func deref(v *string) string {
	if v == nil {
		return "<absent>"
	}
	return *v
}
