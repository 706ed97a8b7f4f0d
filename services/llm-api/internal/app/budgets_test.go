package app_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/app"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keystest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/ledger"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/llmstub"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/pgtest"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// budgetReplicas starts n llm-api apps on one PostgreSQL schema and one
// Redis with the budgets of doc, in front of stub.
func budgetReplicas(t *testing.T, n int, doc string, stub *llmstub.Stub) ([]*app.App, []string, *jwttest.IdP) {
	t.Helper()
	up := httptest.NewServer(stub)
	t.Cleanup(up.Close)
	b, err := budget.Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	idp := jwttest.New(t)
	dsn, raddr := pgtest.Schema(t), redisAddr(t)
	var apps []*app.App
	var urls []string
	for range n {
		cfg := testConfig(t, idp, dsn, raddr)
		cfg.LLMUpstreamURL = up.URL + "/v1"
		cfg.LLMUpstreamTimeout, cfg.LLMUpstreamHeaderTimeout, cfg.LLMMaxBodyBytes = time.Minute, time.Minute, 1<<20
		cfg.Budgets, cfg.LLMBudgetOnRedisError = &b, "deny"
		a, err := app.New(context.Background(), cfg, zerolog.Nop(), app.Deps{Roles: keystest.NewRoles()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Close)
		pub := httptest.NewServer(a.Public)
		t.Cleanup(pub.Close)
		apps, urls = append(apps, a), append(urls, pub.URL)
	}
	return apps, urls, idp
}

// TestBudgetNeverExceededAcrossTwoReplicas is the proof: two
// llm-api replicas (real Redis and PostgreSQL), 64 concurrent requests —
// plain and streamed chats, streams the client aborts, streams and answers
// the model server breaks, n > 1, both cap fields, batched prompts,
// embeddings — against a 2,000-token day budget. The tokens the model
// server produced (counted by the stub, not by llm-api) never pass 2,000;
// the budget is used to within one reservation of its end; every refusal
// is a 429 with its headers; the ledger equals the Redis counter.
func TestBudgetNeverExceededAcrossTwoReplicas(t *testing.T) {
	stub := &llmstub.Stub{}
	doc := `default_max_completion_tokens: 64
roles:
  guest: {tokens_per_day: 2000}
prices:
  stub-model: {prompt_usd_per_million: 0.5, completion_usd_per_million: 1.5}
models:
  stub-model: {template_tokens: 32, template_tokens_per_message: 8}
  fail-mid-stream: {template_tokens: 32, template_tokens_per_message: 8}
  fail-500: {template_tokens: 32, template_tokens_per_message: 8}
`
	apps, urls, idp := budgetReplicas(t, 2, doc, stub)
	sub := "guest-" + fmt.Sprint(time.Now().UnixNano())
	token := idp.Token(t, sub, map[string]any{"azp": "jan-cli", "realm_access": map[string]any{"roles": []string{"guest"}}})
	chat := func(model, extra string) string {
		return `{"model":"` + model + `","messages":[{"role":"user","content":"count to a hundred, please"}]` + extra + `}`
	}
	type call struct{ path, body, abort string }
	mix := []call{
		{"/v1/chat/completions", chat("stub-model", ""), ""},
		{"/v1/chat/completions", chat("stub-model", `,"max_tokens":20`), ""},
		{"/v1/chat/completions", chat("stub-model", `,"max_completion_tokens":10,"n":3`), ""},
		{"/v1/chat/completions", chat("stub-model", `,"stream":true`), ""},
		{"/v1/chat/completions", chat("stub-model", `,"stream":true,"max_tokens":40`), "client"},
		{"/v1/chat/completions", chat("fail-mid-stream", `,"stream":true`), ""},
		{"/v1/chat/completions", chat("fail-500", ""), ""},
		{"/v1/completions", `{"model":"stub-model","prompt":["one","two","three"],"max_tokens":8}`, ""},
		{"/v1/embeddings", `{"model":"stub-model","input":["embed me","and me"]}`, ""},
	}
	var answered, refused, failed atomic.Int64
	var mu sync.Mutex
	var badRefusals []string
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := mix[i%len(mix)]
			url := urls[i%2]
			for attempt := 0; attempt < 100; attempt++ {
				req, _ := http.NewRequest(http.MethodPost, url+c.path, strings.NewReader(c.body))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				ctx, cancel := context.WithCancel(context.Background())
				res, err := http.DefaultClient.Do(req.WithContext(ctx))
				if err != nil {
					cancel()
					t.Error(err)
					return
				}
				switch {
				case res.StatusCode == http.StatusOK && c.abort == "client":
					sc := bufio.NewScanner(res.Body)
					for n := 0; n < 4 && sc.Scan(); n++ {
					}
					cancel() // the client goes away mid-stream
					_ = res.Body.Close()
					answered.Add(1)
					return
				case res.StatusCode == http.StatusOK:
					_, _ = bufio.NewReader(res.Body).WriteTo(discard{})
					_ = res.Body.Close()
					cancel()
					answered.Add(1)
					return
				case res.StatusCode == http.StatusTooManyRequests:
					ra := res.Header.Get("Retry-After")
					if ra == "" && res.Header.Get("X-Ratelimit-Limit-Tokens") == "" {
						mu.Lock()
						badRefusals = append(badRefusals, fmt.Sprint(res.Header))
						mu.Unlock()
					}
					_ = res.Body.Close()
					cancel()
					if ra != "1" { // the day is used up: give up
						refused.Add(1)
						return
					}
					time.Sleep(30 * time.Millisecond) // requests in flight: retry
				default:
					_ = res.Body.Close()
					cancel()
					failed.Add(1) // the model server's failures (502)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, a := range apps {
		a.Metering.Close()
		if err := a.Ledger.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	prompt, completion := stub.Produced()
	produced := prompt + completion
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr(t)})
	defer rdb.Close()
	day := time.Now().UTC()
	counter, err := rdb.HGet(context.Background(), "eg:budget:{"+sub+"}:u:d:"+day.Format("20060102"), "t").Int64()
	if err != nil {
		t.Fatal(err)
	}
	rows, err := apps[0].Store.Usage(context.Background(), ledger.Query{Subject: sub, From: day.AddDate(0, 0, -1), To: day.AddDate(0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var inLedger int64
	for _, r := range rows {
		inLedger += r.Tokens
	}
	t.Logf("%d answered, %d refused, %d failed upstream; the stub produced %d tokens (%d prompt, %d completion); Redis counts %d, the ledger %d",
		answered.Load(), refused.Load(), failed.Load(), produced, prompt, completion, counter, inLedger)
	if produced > 2000 {
		t.Fatalf("the model server produced %d tokens of a 2,000-token budget", produced)
	}
	if counter > 2000 || counter < produced {
		t.Fatalf("Redis charged %d for %d produced", counter, produced)
	}
	// the largest reservation of the mix: the 3-prompt batch or n=3 chat
	// (prompt bound + cap × sequences) stays below 400 tokens here
	if 2000-counter >= 400 {
		t.Fatalf("%d of 2,000 charged: more than one reservation left unused", counter)
	}
	if inLedger != counter {
		t.Fatalf("the ledger holds %d tokens, Redis %d", inLedger, counter)
	}
	if len(badRefusals) > 0 {
		t.Fatalf("429s without their headers: %v", badRefusals)
	}
	if refused.Load() == 0 || answered.Load() == 0 {
		t.Fatal("the budget was never reached, or nothing was answered")
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestTokensPerMinuteAcrossAMinuteBoundary: the same two replicas with a
// minute rate only (600 tokens a minute, GCRA: a bucket of 600 refilled at
// 10 a second), clients sending without pause for 70 s: at no moment has
// the model server produced more than the rate allows since the start,
// 600 × (t + 60 s) / 60 s, and past the first minute the refill lets more
// through than the first bucket held. About 70 s; runs beside the others.
func TestTokensPerMinuteAcrossAMinuteBoundary(t *testing.T) {
	if testing.Short() {
		t.Skip("70 s")
	}
	t.Parallel()
	stub := &llmstub.Stub{}
	doc := `default_max_completion_tokens: 8
roles:
  guest: {tokens_per_minute: 600}
models:
  stub-model: {template_tokens: 16, template_tokens_per_message: 4}
`
	_, urls, idp := budgetReplicas(t, 2, doc, stub)
	sub := "tpm-" + fmt.Sprint(time.Now().UnixNano())
	token := idp.Token(t, sub, map[string]any{"azp": "jan-cli", "realm_access": map[string]any{"roles": []string{"guest"}}})
	const span = 70 * time.Second
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), span)
	defer cancel()
	var wg sync.WaitGroup
	var answered, limited atomic.Int64
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, urls[i%2]+"/v1/chat/completions",
					strings.NewReader(`{"model":"stub-model","messages":[{"role":"user","content":"hi"}]}`))
				req.Header.Set("Authorization", "Bearer "+token)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				_, _ = bufio.NewReader(res.Body).WriteTo(discard{})
				_ = res.Body.Close()
				switch res.StatusCode {
				case http.StatusOK:
					answered.Add(1)
				case http.StatusTooManyRequests:
					limited.Add(1)
					if res.Header.Get("X-Ratelimit-Limit-Tokens") != "600" || res.Header.Get("Retry-After") == "" {
						t.Errorf("a 429 without its headers: %v", res.Header)
					}
					time.Sleep(200 * time.Millisecond)
				default:
					t.Errorf("status %d", res.StatusCode)
					return
				}
			}
		}()
	}
	// sample what the stub produced against the GCRA bound
	var firstMinute int64
	for tick := time.NewTicker(250 * time.Millisecond); ctx.Err() == nil; {
		<-tick.C
		p, c := stub.Produced()
		elapsed := time.Since(start)
		bound := int64(600 * (elapsed.Seconds() + 60) / 60)
		if p+c > bound {
			t.Errorf("at %v the model server had produced %d tokens; the rate allows %d", elapsed.Round(time.Millisecond), p+c, bound)
		}
		if elapsed < time.Minute {
			firstMinute = p + c
		}
	}
	wg.Wait()
	p, c := stub.Produced()
	t.Logf("%d answered, %d limited; produced %d tokens in the first minute, %d in %v", answered.Load(), limited.Load(), firstMinute, p+c, time.Since(start).Round(time.Second))
	if p+c <= firstMinute || limited.Load() == 0 {
		t.Fatalf("nothing more after the first minute (%d, %d) or never limited", firstMinute, p+c)
	}
}
