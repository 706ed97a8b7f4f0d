package cmd

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/apikey"
	"github.com/edgeguard/edgeguard/pkg/dpop"
)

// usageAnswer is llm-api's GET /v1/usage answer of its README, for a login
// (every row) or an API key (its rows, its own budget as scope "key").
func usageAnswer(q url.Values, kid string) map[string]any {
	from, to := q.Get("from"), q.Get("to")
	if from == "" {
		from = "2026-12-01"
	}
	if to == "" {
		to = "2026-12-07"
	}
	budgets := map[string]any{
		"user": map[string]any{
			"tokens_per_minute": map[string]any{"limit": 20000, "used": 456, "remaining": 19544, "reset": "1.368s"},
			"tokens_per_day":    map[string]any{"limit": 500000, "used": 12040, "remaining": 487960, "reset": "6h12m3.5s"},
			"usd_per_month":     map[string]any{"limit": "20", "used": "0.004512", "remaining": "19.995488", "reset": "577h12m3.5s"},
		},
		"model:llama-3.1-70b": map[string]any{
			"tokens_per_day": map[string]any{"limit": 50000, "used": 900, "remaining": 49100, "reset": "6h12m3.5s"}},
	}
	rows := []any{
		map[string]any{"day": "2026-12-07", "key_id": "AbCd1234", "model": "qwen2.5-7b", "requests": 12, "prompt_tokens": 9000,
			"completion_tokens": 3040, "tokens": 12040, "usd": "0.001812", "flagged": 0},
	}
	if kid == "" {
		rows = append(rows, map[string]any{"day": "2026-12-06", "model": "llama-3.1-70b\u001b[2J", "requests": 1, "prompt_tokens": 500,
			"completion_tokens": 400, "tokens": 900, "usd": "0.00062", "flagged": 1})
	} else {
		budgets["key"] = map[string]any{"tokens_per_day": map[string]any{"limit": 200000, "used": 3000, "remaining": 197000, "reset": "6h12m3.5s"}}
	}
	return map[string]any{"subject": "0b9d-user-1", "from": from, "to": to, "models": []string{"llama-3.1-70b", "qwen2.5-7b"},
		"budgets": budgets, "usage": rows, "truncated": false}
}

// serveBudgets is the fake's /v1/usage, /v1/admin/usage and
// /v1/admin/budgets/users/{subject} (called with f.mu held).
func (f *fakeLLMAPI) serveBudgets(w http.ResponseWriter, r *http.Request, body []byte, reply func(int, any)) {
	const users = "/v1/admin/budgets/users/"
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/usage":
		reply(http.StatusOK, usageAnswer(r.URL.Query(), f.asKey))
	case r.Method == http.MethodGet && r.URL.Path == "/v1/admin/usage":
		q := r.URL.Query()
		var sub any
		if s := q.Get("subject"); s != "" {
			sub = s
		}
		reply(http.StatusOK, map[string]any{"subject": sub, "from": "2026-12-01", "to": "2026-12-07", "truncated": true,
			"usage": []any{map[string]any{"day": "2026-12-07", "subject": "0b9d-user-1", "key_id": "AbCd1234", "model": "qwen2.5-7b",
				"requests": 12, "prompt_tokens": 9000, "completion_tokens": 3040, "tokens": 12040, "usd": "0.001812", "flagged": 0}}})
	case strings.HasPrefix(r.URL.EscapedPath(), users):
		sub := strings.TrimPrefix(r.URL.EscapedPath(), users)
		if f.overrides == nil {
			f.overrides = map[string]map[string]any{}
		}
		view := func(in map[string]any) map[string]any {
			out := map[string]any{"subject": sub, "models": in["models"], "updated_at": "2026-12-07T10:00:00.123456Z", "updated_by": "admin-sub"}
			for _, k := range []string{"tokens_per_minute", "tokens_per_day", "tokens_per_month", "usd_per_day", "usd_per_month"} {
				out[k] = in[k]
			}
			return out
		}
		notFound := map[string]any{"error": map[string]string{"code": "budget_override_not_found", "message": "no budget override for this subject"}}
		switch r.Method {
		case http.MethodPut:
			var in map[string]any
			if err := json.Unmarshal(body, &in); err != nil {
				reply(http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "invalid_json", "message": "not JSON"}})
				return
			}
			f.overrides[sub] = in
			reply(http.StatusOK, view(in))
		case http.MethodGet:
			in, ok := f.overrides[sub]
			if !ok {
				reply(http.StatusNotFound, notFound)
				return
			}
			reply(http.StatusOK, view(in))
		case http.MethodDelete:
			if _, ok := f.overrides[sub]; !ok {
				reply(http.StatusNotFound, notFound)
				return
			}
			delete(f.overrides, sub)
			w.WriteHeader(http.StatusNoContent)
		}
	default:
		reply(http.StatusNotFound, map[string]any{"error": map[string]string{"code": "not_found", "message": "no route"}})
	}
}

// TestUsageShowsBudgetsAndRows: the default table (budgets per scope and
// window, then the rows), --json (llm-api's answer, one line), --from/--to
// in the query, the login's bearer token; nothing secret printed, server
// text sanitised.
func TestUsageShowsBudgetsAndRows(t *testing.T) {
	u, kc, api := loggedIn(t)
	r := u.run("usage", "--api", api.srv.URL)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("usage: exit %d stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{
		"subject 0b9d-user-1", "as the login", "days 2026-12-01 .. 2026-12-07 (UTC)", "models llama-3.1-70b, qwen2.5-7b",
		"SCOPE WINDOW LIMIT USED REMAINING RESET",
		"user tokens/min 20000 456 19544 1.368s",
		"user tokens/day 500000 12040 487960 6h12m3.5s",
		"user usd/month 20 0.004512 19.995488 577h12m3.5s",
		"model:llama-3.1-70b tokens/day 50000 900 49100 6h12m3.5s",
		"DAY MODEL KEY REQUESTS PROMPT TOKENS COMPLETION TOKENS USD FLAGGED",
		"2026-12-07 qwen2.5-7b AbCd1234 12 9000 3040 0.001812 0",
		"2026-12-06 llama-3.1-70b?[2J login 1 500 400 0.00062 1",
	} {
		hasLine(t, r.stdout, want)
	}
	// scopes in order: user, then model:…; windows in order within one
	if i, j := strings.Index(r.stdout, "user "), strings.Index(r.stdout, "model:"); i < 0 || j < i {
		t.Errorf("scope order:\n%s", r.stdout)
	}
	if i, j := strings.Index(r.stdout, "tokens/min"), strings.Index(r.stdout, "usd/month"); j < i {
		t.Errorf("window order:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "\x1b") {
		t.Error("a terminal escape reached stdout")
	}
	if want := "GET /v1/usage "; api.reqs[0] != want || api.auths[0] != "Bearer "+kc.issued[0] {
		t.Errorf("request %q (want %q), with the login's token %t", api.reqs[0], want, api.auths[0] == "Bearer "+kc.issued[0])
	}
	noTokens(t, r, kc.secrets())

	r = u.run("usage", "--api", api.srv.URL, "--from", "2026-11-01", "--to", "2026-11-30", "--json")
	var got map[string]any
	if r.code != 0 || strings.Count(r.stdout, "\n") != 1 || json.Unmarshal([]byte(r.stdout), &got) != nil {
		t.Fatalf("usage --json: exit %d %q", r.code, r.stdout)
	}
	if got["from"] != "2026-11-01" || got["to"] != "2026-11-30" || got["budgets"].(map[string]any)["user"] == nil ||
		!strings.Contains(r.stdout, `"usd":"0.001812"`) || !strings.Contains(r.stdout, `"limit":"20"`) || !strings.Contains(r.stdout, `"limit":20000`) {
		t.Fatalf("usage --json is not llm-api's answer: %s", r.stdout)
	}
	if want := "GET /v1/usage?from=2026-11-01&to=2026-11-30 "; api.reqs[1] != want {
		t.Errorf("request %q, want %q", api.reqs[1], want)
	}
	noTokens(t, r, kc.secrets())
}

// GET /v1/usage takes API keys: --api-key, else EDGEGUARD_API_KEY, before
// the login; the key is sent as a bearer token and shown by its kid only.
func TestUsageWithAnAPIKey(t *testing.T) {
	u, kc, api := loggedIn(t)
	k, _ := apikey.Generate("live")
	env, _ := apikey.Generate("live")
	api.apiKeys = map[string]string{k.Secret(): k.KID(), env.Secret(): env.KID()}

	r := u.run("usage", "--api", api.srv.URL, "--api-key", k.Secret())
	if r.code != 0 || api.auths[0] != "Bearer "+k.Secret() || !strings.Contains(r.stdout, "API key "+k.KID()+" (from --api-key)") {
		t.Fatalf("usage --api-key: exit %d auth is the key %t\n%s%s", r.code, api.auths[0] == "Bearer "+k.Secret(), r.stdout, r.stderr)
	}
	hasLine(t, r.stdout, "key tokens/day 200000 3000 197000 6h12m3.5s")
	if strings.Contains(r.stdout, "login") {
		t.Errorf("a key's view shows the login's rows:\n%s", r.stdout)
	}
	u.vars["EDGEGUARD_API_KEY"] = env.Secret()
	r2 := u.run("usage", "--api", api.srv.URL)
	if r2.code != 0 || api.auths[1] != "Bearer "+env.Secret() || !strings.Contains(r2.stdout, "(from EDGEGUARD_API_KEY)") {
		t.Fatalf("usage with EDGEGUARD_API_KEY: exit %d\n%s%s", r2.code, r2.stdout, r2.stderr)
	}
	// a malformed --api-key is a usage error; nothing is sent
	before := len(api.reqs)
	r3 := u.run("usage", "--api", api.srv.URL, "--api-key", "sk_live_not-a-key")
	if r3.code != 2 || !strings.Contains(r3.stderr, "not a well-formed") || len(api.reqs) != before {
		t.Fatalf("bad --api-key: exit %d %q", r3.code, r3.stderr)
	}
	// a key llm-api refuses: exit 1, no "log in again" (it is not the login)
	api.apiKeys = nil
	r4 := u.run("usage", "--api", api.srv.URL)
	if r4.code != 1 || !strings.Contains(r4.stderr, "llm-api answered 401 key_not_found: api key refused\n") {
		t.Fatalf("refused key: exit %d %q", r4.code, r4.stderr)
	}
	for _, r := range []result{r, r2, r3, r4} {
		noLeak(t, r, k.Secret(), env.Secret(), k.Secret()[len(k.Secret())-20:], env.Secret()[len(env.Secret())-20:])
		noTokens(t, r, kc.secrets())
	}
}

// --all is the admin view: GET /v1/admin/usage with the login only
// (--api-key refused, EDGEGUARD_API_KEY ignored), --subject in the query.
func TestUsageAllIsTheAdminView(t *testing.T) {
	u, kc, api := loggedIn(t)
	r := u.run("usage", "--api", api.srv.URL, "--all", "--subject", "2f1c/x y", "--from", "2026-12-01")
	if r.code != 0 || strings.Contains(r.stdout, "SCOPE") || strings.Contains(r.stdout, "models") {
		t.Fatalf("usage --all: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	hasLine(t, r.stdout, "subject 2f1c/x y")
	hasLine(t, r.stdout, "DAY SUBJECT MODEL KEY REQUESTS PROMPT TOKENS COMPLETION TOKENS USD FLAGGED")
	hasLine(t, r.stdout, "2026-12-07 0b9d-user-1 qwen2.5-7b AbCd1234 12 9000 3040 0.001812 0")
	if !strings.Contains(r.stderr, "shorter range") {
		t.Errorf("a truncated answer is not said: %q", r.stderr)
	}
	if want := "GET /v1/admin/usage?from=2026-12-01&subject=2f1c%2Fx+y "; api.reqs[0] != want {
		t.Errorf("request %q, want %q", api.reqs[0], want)
	}
	r = u.run("usage", "--api", api.srv.URL, "--all", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"subject":null,`) || !strings.Contains(r.stdout, `"truncated":true`) || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("usage --all --json: %d %q", r.code, r.stdout)
	}
	k, _ := apikey.Generate("live")
	before := len(api.reqs)
	if r := u.run("usage", "--api", api.srv.URL, "--all", "--api-key", k.Secret()); r.code != 2 || !strings.Contains(r.stderr, "not accepted") ||
		len(api.reqs) != before || strings.Contains(r.stderr, k.Secret()) {
		t.Fatalf("--all --api-key: exit %d %q", r.code, r.stderr)
	}
	u.vars["EDGEGUARD_API_KEY"] = k.Secret()
	r = u.run("usage", "--api", api.srv.URL, "--all")
	if r.code != 0 || !strings.Contains(r.stderr, "EDGEGUARD_API_KEY is ignored") || api.auths[len(api.auths)-1] != "Bearer "+kc.latest() {
		t.Fatalf("--all with EDGEGUARD_API_KEY: exit %d %q", r.code, r.stderr)
	}
	noLeak(t, r, k.Secret())
	noTokens(t, r, kc.secrets())
}

func (f *fakeKeycloak) latest() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issued[len(f.issued)-2]
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name, body string
		status     int
		args       []string
		code       int
		stderr     string
	}{
		{"date range", `{"error":{"code":"invalid_date_range","message":"from must not be after to"}}`, 400,
			[]string{"--from", "2026-12-07", "--to", "2026-12-01"}, 1, "edgectl: llm-api answered 400 invalid_date_range: from must not be after to\n"},
		{"budgets off", `{"error":{"code":"budgets_disabled","message":"budgets are not configured on this server"}}`, 503, nil, 1,
			"llm-api answered 503 budgets_disabled: budgets are not configured on this server"},
		{"not admin", `{"error":{"code":"insufficient_role","message":"forbidden"}}`, 403, []string{"--all"}, 1,
			"llm-api answered 403 insufficient_role: forbidden (the admin role is needed)"},
		{"token refused", `{"error":{"code":"token_expired","message":"invalid token"}}`, 401, nil, 1, "(log in again: edgectl login)"},
		{"escapes", "{\"error\":{\"code\":\"x\\u001b]0;\",\"message\":\"\\u001b[2Jgotcha\"}}", 400, nil, 1, "?[2Jgotcha"},
		{"not JSON", `<html>502</html>`, 502, nil, 1, "llm-api answered 502"},
		{"wrong types", `{"budgets":{"user":{"tokens_per_day":{"limit":true}}}}`, 200, nil, 1, "malformed answer"},
		{"huge", `{"usage":[` + strings.Repeat(`{},`, 400000) + `{}]}`, 200, nil, 1, "larger than"},
		{"bad --from", ``, 200, []string{"--from", "2026-13-01"}, 2, "--from must be a day YYYY-MM-DD"},
		{"--from not a day", ``, 200, []string{"--from", "2026-1-1"}, 2, "--from must be a day"},
		{"bad --to", ``, 200, []string{"--to", "yesterday"}, 2, "--to must be a day"},
		{"--subject without --all", ``, 200, []string{"--subject", "x"}, 2, "--subject needs --all"},
		{"argument", ``, 200, []string{"extra"}, 2, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, kc, api := loggedIn(t)
			api.failure = &struct {
				status     int
				code, body string
			}{status: tt.status, body: tt.body}
			r := u.run(append(append([]string{"usage"}, tt.args...), "--api", api.srv.URL)...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) || r.code != 0 && r.stdout != "" {
				t.Fatalf("exit %d stdout %q stderr %q; want %d with %q", r.code, r.stdout, r.stderr, tt.code, tt.stderr)
			}
			if tt.code == 2 && len(api.reqs) != 0 {
				t.Errorf("a usage error sent %d requests", len(api.reqs))
			}
			if strings.Contains(r.stderr, "\x1b") {
				t.Error("a terminal escape reached stderr")
			}
			noTokens(t, r, kc.secrets())
		})
	}
}

// A DPoP-bound session's usage request carries "Authorization: DPoP" and
// a proof for GET <api>/v1/usage (the query is not part of htu).
func TestUsageOfABoundSessionSendsAProof(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	kc := newFakeKeycloak(t, clock)
	u := newUser(t, clock)
	boundLogin(t, u, kc, "--client", "jan-agent")
	api := newFakeLLMAPI(t, kc.latest)
	v, err := dpop.New(dpop.Config{Replay: &dpop.ReplayGuard{Local: dpop.NewLocalStore(100, clock.Now)}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	api.dpop = v
	r := u.run("usage", "--api", api.srv.URL, "--from", "2026-12-01")
	if r.code != 0 || api.proofs != 1 || !strings.HasPrefix(api.auths[0], "DPoP ") || !strings.Contains(r.stdout, "the login (DPoP-bound)") {
		t.Fatalf("usage of a bound session: exit %d, %d proofs\n%s%s", r.code, api.proofs, r.stdout, r.stderr)
	}
	r = u.run("usage", "--api", api.srv.URL, "--all")
	if r.code != 0 || api.proofs != 2 {
		t.Fatalf("usage --all of a bound session: exit %d, %d proofs %q", r.code, api.proofs, r.stderr)
	}
	noTokens(t, r, kc.secrets())
}
