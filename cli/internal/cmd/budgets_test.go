package cmd

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/apikey"
	"github.com/edgeguard/edgeguard/pkg/dpop"
)

// budgets set|get|delete: the requests llm-api's admin API expects (PUT
// body with only the windows and models given, USD strings exact, the
// subject path-escaped), the text and --json outputs, usage errors before
// any request.
func TestBudgetsSetGetDelete(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		req    string // the one request, "" for none
		stdout []string
		stderr string
	}{
		{"set limits and models", []string{"set", "2f1c-sub", "--tokens-per-day", "2000000", "--usd-per-month", "150.000", "--model", "qwen2.5-7b", "--model", "llama-3.1-70b"}, 0,
			`PUT /v1/admin/budgets/users/2f1c-sub {"tokens_per_day":2000000,"usd_per_month":"150.000","models":["qwen2.5-7b","llama-3.1-70b"]}`,
			[]string{"subject 2f1c-sub", "tokens/min -", "tokens/day 2000000", "tokens/month -", "usd/day -", "usd/month 150.000",
				"models qwen2.5-7b, llama-3.1-70b", "updated 2026-12-07T10:00:00Z by admin-sub"}, ""},
		{"set every window", []string{"set", "u", "--tokens-per-minute", "1", "--tokens-per-day", "2", "--tokens-per-month", "3", "--usd-per-day", "0.000000001", "--usd-per-month", "1000000"}, 0,
			`PUT /v1/admin/budgets/users/u {"tokens_per_minute":1,"tokens_per_day":2,"tokens_per_month":3,"usd_per_day":"0.000000001","usd_per_month":"1000000"}`,
			[]string{"models the roles' models", "usd/day 0.000000001"}, ""},
		{"set models only", []string{"set", "u", "--model", "m"}, 0, `PUT /v1/admin/budgets/users/u {"models":["m"]}`, []string{"tokens/day -", "models m"}, ""},
		{"set --unlimited", []string{"set", "u", "--unlimited"}, 0, `PUT /v1/admin/budgets/users/u {}`, []string{"tokens/day -", "usd/month -"}, ""},
		{"subject escaped", []string{"set", "a/b c?d#e", "--tokens-per-day", "5"}, 0, `PUT /v1/admin/budgets/users/a%2Fb%20c%3Fd%23e {"tokens_per_day":5}`, nil, ""},
		{"federated subject", []string{"set", "f:idp:alice@example.com", "--tokens-per-day", "5"}, 0, `PUT /v1/admin/budgets/users/f:idp:alice@example.com {"tokens_per_day":5}`, nil, ""},
		{"get: none", []string{"get", "nobody"}, 1, "GET /v1/admin/budgets/users/nobody ", nil,
			"edgectl: llm-api answered 404 budget_override_not_found: no budget override for this subject\n"},
		{"delete: none", []string{"delete", "nobody"}, 1, "DELETE /v1/admin/budgets/users/nobody ", nil, "404 budget_override_not_found"},
		{"set without a limit", []string{"set", "u"}, 2, "", nil, "give a limit"},
		{"--unlimited with a limit", []string{"set", "u", "--unlimited", "--usd-per-day", "1"}, 2, "", nil, "exclude each other"},
		{"usd exponent", []string{"set", "u", "--usd-per-day", "1e3"}, 2, "", nil, "not plain decimal digits"},
		{"usd unicode digits", []string{"set", "u", "--usd-per-month", "１０"}, 2, "", nil, "not plain decimal digits"},
		{"tokens hex", []string{"set", "u", "--tokens-per-day", "0x10"}, 2, "", nil, "not plain decimal digits"},
		{"no subject", []string{"get"}, 2, "", nil, "exactly one USER_SUBJECT"},
		{"two subjects", []string{"delete", "a", "b"}, 2, "", nil, "exactly one USER_SUBJECT"},
		{"dot-dot subject", []string{"delete", ".."}, 2, "", nil, "does not start with a dot"},
		{"empty subject", []string{"get", ""}, 2, "", nil, "exactly one USER_SUBJECT"},
		{"no subcommand", nil, 2, "", nil, "missing subcommand"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, kc, api := loggedIn(t)
			r := u.run(append(append([]string{"budgets"}, tt.args...), "--api", api.srv.URL)...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) || (tt.stderr == "" && r.stderr != "") {
				t.Fatalf("exit %d stdout %q stderr %q; want %d with %q", r.code, r.stdout, r.stderr, tt.code, tt.stderr)
			}
			reqs := api.requests()
			switch {
			case tt.req == "" && len(reqs) != 0:
				t.Fatalf("requests %q, want none", reqs)
			case tt.req != "" && (len(reqs) != 1 || reqs[0] != tt.req):
				t.Fatalf("requests %q, want %q", reqs, tt.req)
			}
			if tt.req != "" && api.auths[0] != "Bearer "+kc.issued[0] {
				t.Error("not sent with the login's token")
			}
			for _, l := range tt.stdout {
				hasLine(t, r.stdout, l)
			}
			if r.code != 0 && r.stdout != "" {
				t.Errorf("stdout on failure: %q", r.stdout)
			}
			noTokens(t, r, kc.secrets())
		})
	}
}

func TestBudgetsLifecycleAndJSON(t *testing.T) {
	u, kc, api := loggedIn(t)
	a := []string{"--api", api.srv.URL}
	r := u.run(append([]string{"budgets", "set", "2f1c-sub", "--tokens-per-minute", "50000", "--usd-per-day", "2.5", "--json"}, a...)...)
	var got map[string]any
	if r.code != 0 || strings.Count(r.stdout, "\n") != 1 || json.Unmarshal([]byte(r.stdout), &got) != nil {
		t.Fatalf("set --json: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	// llm-api's answer as it is: every window (null: not limited), USD strings
	if got["subject"] != "2f1c-sub" || got["tokens_per_minute"] != float64(50000) || got["usd_per_day"] != "2.5" ||
		got["tokens_per_day"] != nil || !strings.Contains(r.stdout, `"tokens_per_day":null`) || !strings.Contains(r.stdout, `"models":null`) {
		t.Fatalf("set --json: %s", r.stdout)
	}
	r = u.run(append([]string{"budgets", "get", "2f1c-sub"}, a...)...)
	if r.code != 0 {
		t.Fatalf("get: %d %q", r.code, r.stderr)
	}
	hasLine(t, r.stdout, "tokens/min 50000")
	hasLine(t, r.stdout, "usd/day 2.5")
	r = u.run(append([]string{"budgets", "delete", "2f1c-sub"}, a...)...)
	if r.code != 0 || r.stdout != "deleted the budget override of 2f1c-sub: the roles' budgets apply\n" {
		t.Fatalf("delete: %d %q %q", r.code, r.stdout, r.stderr)
	}
	u.run(append([]string{"budgets", "set", "x", "--unlimited"}, a...)...)
	if r = u.run(append([]string{"budgets", "delete", "x", "--json"}, a...)...); r.stdout != `{"deleted":true,"subject":"x"}`+"\n" {
		t.Fatalf("delete --json: %q", r.stdout)
	}
	if r = u.run(append([]string{"budgets", "get", "2f1c-sub"}, a...)...); r.code != 1 || !strings.Contains(r.stderr, "budget_override_not_found") {
		t.Fatalf("get after delete: %d %q", r.code, r.stderr)
	}
	noTokens(t, r, kc.secrets())
}

// The admin API takes the login only: --api-key is a usage error (nothing
// sent), EDGEGUARD_API_KEY is ignored with a note; a non-admin's refusal
// says why.
func TestBudgetsNeedTheAdminsLogin(t *testing.T) {
	u, kc, api := loggedIn(t)
	k, _ := apikey.Generate("live")
	r := u.run("budgets", "get", "u", "--api", api.srv.URL, "--api-key", k.Secret())
	if r.code != 2 || !strings.Contains(r.stderr, "not accepted") || len(api.requests()) != 0 {
		t.Fatalf("--api-key: exit %d %q", r.code, r.stderr)
	}
	u.vars["EDGEGUARD_API_KEY"] = k.Secret()
	r2 := u.run("budgets", "set", "u", "--tokens-per-day", "1", "--api", api.srv.URL)
	if r2.code != 0 || !strings.Contains(r2.stderr, "EDGEGUARD_API_KEY is ignored") || api.auths[0] != "Bearer "+kc.issued[0] {
		t.Fatalf("EDGEGUARD_API_KEY set: exit %d %q", r2.code, r2.stderr)
	}
	api.failure = &struct {
		status     int
		code, body string
	}{status: 403, body: `{"error":{"code":"insufficient_role","message":"forbidden"}}`}
	r3 := u.run("budgets", "get", "u", "--api", api.srv.URL)
	if r3.code != 1 || r3.stderr != "edgectl: EDGEGUARD_API_KEY is ignored: the admin API needs your login\nedgectl: llm-api answered 403 insufficient_role: forbidden (the admin role is needed)\n" {
		t.Fatalf("not an admin: exit %d %q", r3.code, r3.stderr)
	}
	for _, r := range []result{r, r2, r3} {
		noLeak(t, r, k.Secret())
		noTokens(t, r, kc.secrets())
	}
}

// A DPoP-bound admin session proves its key on PUT, GET and DELETE.
func TestBudgetsOfABoundSessionSendProofs(t *testing.T) {
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
	for i, args := range [][]string{{"set", "u", "--tokens-per-day", "9"}, {"get", "u"}, {"delete", "u"}} {
		r := u.run(append(append([]string{"budgets"}, args...), "--api", api.srv.URL)...)
		if r.code != 0 || api.proofs != i+1 || !strings.HasPrefix(api.auths[i], "DPoP ") {
			t.Fatalf("budgets %v: exit %d %q, %d proofs", args, r.code, r.stderr, api.proofs)
		}
		noTokens(t, r, kc.secrets())
	}
}
