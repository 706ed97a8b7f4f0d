package cmd

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/apikey"
	"github.com/edgeguard/edgeguard/pkg/dpop"
)

// fakeLLMAPI is an httptest stand-in for llm-api's /auth/api-keys: it
// accepts only the bearer token it is told is valid, and records requests.
type fakeLLMAPI struct {
	srv *httptest.Server

	mu      sync.Mutex
	bearer  func() string // the valid token
	reqs    []string      // "METHOD path?query body"
	auths   []string
	keys    []string // secrets handed out
	failure *struct {
		status     int
		code, body string
	}
	// deleteStatus answers DELETE (0: 204); onCreate runs before a create
	// is answered (edgectl run's tests).
	deleteStatus int
	onCreate     func()
	// dpop, when set, makes it an edge for DPoP-bound tokens: it wants
	// "Authorization: DPoP" and a valid proof (and a nonce of nonces, when
	// set) instead of a bearer token.
	dpop   *dpop.Verifier
	nonces *dpop.Nonces
	proofs int
	// apiKeys are the API keys /v1/usage accepts (secret → kid); asKey is
	// the kid of the last request made with one.
	apiKeys map[string]string
	asKey   string
	// overrides are the budget overrides by subject (the PUT bodies).
	overrides map[string]map[string]any
}

// requests returns the requests so far ("METHOD path?query body").
func (f *fakeLLMAPI) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reqs...)
}

func newFakeLLMAPI(t *testing.T, bearer func() string) *fakeLLMAPI {
	f := &fakeLLMAPI{bearer: bearer}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeLLMAPI) newKey() map[string]any {
	k, _ := apikey.Generate("live")
	f.keys = append(f.keys, k.Secret())
	exp := time.Date(2030, 6, 5, 7, 8, 9, 0, time.UTC)
	return map[string]any{"id": "6f1c0000-0000-4000-8000-00000000000" + string(rune('0'+len(f.keys))), "kid": k.KID(), "name": "ci",
		"last4": k.Last4(), "roles": []string{"user"}, "status": "active", "created_at": exp.AddDate(0, -1, 0),
		"expires_at": exp, "revoked_at": nil, "last_used_at": nil, "key": k.Secret()}
}

func (f *fakeLLMAPI) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, r.Method+" "+r.URL.RequestURI()+" "+string(body))
	f.auths = append(f.auths, r.Header.Get("Authorization"))
	w.Header().Set("Content-Type", "application/json")
	reply := func(status int, v any) {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	if f.dpop != nil {
		tok := f.bearer()
		if r.Header.Get("Authorization") != "DPoP "+tok {
			reply(http.StatusUnauthorized, map[string]any{"error": map[string]string{"code": "dpop_downgrade", "message": "invalid token"}})
			return
		}
		claims, _ := enc.DecodeString(strings.Split(tok, ".")[1])
		var c struct {
			Cnf struct{ JKT string } `json:"cnf"`
		}
		_ = json.Unmarshal(claims, &c)
		err := f.dpop.Verify(r.Context(), r.Header.Get("DPoP"), dpop.Request{Method: r.Method, URL: f.srv.URL + r.URL.Path, AccessToken: tok, JKT: c.Cnf.JKT})
		if reason := dpop.ReasonOf(err); reason != "" {
			if f.nonces != nil && reason.ErrorAttr() == dpop.ErrorUseNonce {
				w.Header().Set("DPoP-Nonce", f.nonces.Issue())
			}
			w.Header().Set("WWW-Authenticate", dpop.Challenge("edgeguard", reason.ErrorAttr(), nil))
			reply(http.StatusUnauthorized, map[string]any{"error": map[string]string{"code": string(reason), "message": "invalid DPoP proof"}})
			return
		}
		f.proofs++
	} else if auth := r.Header.Get("Authorization"); strings.HasPrefix(auth, "Bearer sk_") {
		kid, ok := f.apiKeys[strings.TrimPrefix(auth, "Bearer ")]
		switch {
		case !ok:
			reply(http.StatusUnauthorized, map[string]any{"error": map[string]string{"code": "key_not_found", "message": "api key refused"}})
			return
		case r.URL.Path != "/v1/usage":
			reply(http.StatusForbidden, map[string]any{"error": map[string]string{"code": "auth_method_not_allowed", "message": "not with an API key"}})
			return
		}
		f.asKey = kid
	} else if auth != "Bearer "+f.bearer() {
		reply(http.StatusUnauthorized, map[string]any{"error": map[string]string{"code": "signature_invalid", "message": "invalid token"}})
		return
	}
	if f.failure != nil {
		w.WriteHeader(f.failure.status)
		_, _ = io.WriteString(w, f.failure.body)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/auth/api-keys":
		if f.onCreate != nil {
			f.onCreate()
		}
		k := f.newKey()
		var in map[string]any
		_ = json.Unmarshal(body, &in)
		if b, ok := in["budget"].(map[string]any); ok { // as llm-api shows a key's budget: every window, null if unlimited
			view := map[string]any{}
			for _, w := range []string{"tokens_per_minute", "tokens_per_day", "tokens_per_month", "usd_per_day", "usd_per_month"} {
				view[w] = b[w]
			}
			k["budget"] = view
		}
		k["models"] = in["models"]
		reply(http.StatusCreated, k)
	case r.Method == http.MethodGet && r.URL.Path == "/auth/api-keys":
		k := f.newKey()
		delete(k, "key")
		limited := f.newKey()
		delete(limited, "key")
		limited["budget"] = map[string]any{"tokens_per_minute": nil, "tokens_per_day": 200000, "tokens_per_month": nil, "usd_per_day": "2.5", "usd_per_month": nil}
		limited["models"] = []string{"qwen2.5-7b", "llama\x1b[2J"}
		reply(http.StatusOK, map[string]any{"keys": []any{k, limited}})
	case strings.HasPrefix(r.URL.Path, "/v1/"):
		f.serveBudgets(w, r, body, reply)
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/auth/api-keys/"):
		if f.deleteStatus != 0 {
			reply(f.deleteStatus, map[string]any{"error": map[string]string{"code": "unavailable", "message": "try again"}})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/rotate"):
		k := f.newKey()
		k["replaced_id"], k["replaced_kid"], k["replaced_revoked_at"] = "old-id", "OldKid12", time.Now().UTC()
		reply(http.StatusCreated, k)
	default:
		reply(http.StatusNotFound, map[string]any{"error": map[string]string{"code": "not_found", "message": "no route"}})
	}
}

func loggedIn(t *testing.T) (*user, *fakeKeycloak, *fakeLLMAPI) {
	clock := &fakeClock{now: time.Now()}
	kc := newFakeKeycloak(t, clock)
	u := newUser(t, clock)
	if r := u.run("login", "--server", kc.URL()); r.code != 0 {
		t.Fatalf("login: %q", r.stderr)
	}
	api := newFakeLLMAPI(t, func() string { // the latest access token
		kc.mu.Lock()
		defer kc.mu.Unlock()
		return kc.issued[len(kc.issued)-2]
	})
	return u, kc, api
}

func TestKeysCommandsUseTheLogin(t *testing.T) {
	u, kc, api := loggedIn(t)
	apiArgs := []string{"--api", api.srv.URL}

	// create: the key alone on stdout, the rest on stderr.
	r := u.run(append([]string{"keys", "create", "--name", "ci", "--expires-in-days", "30", "--role", "user"}, apiArgs...)...)
	if r.code != 0 || r.stdout != api.keys[0]+"\n" {
		t.Fatalf("create: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "shown only this once") || !strings.Contains(r.stderr, `"ci"`) || strings.Contains(r.stderr, api.keys[0]) {
		t.Errorf("create stderr: %q", r.stderr)
	}
	if want := `POST /auth/api-keys {"expires_in_days":30,"name":"ci","roles":["user"]}`; api.reqs[0] != want {
		t.Errorf("request %q, want %q", api.reqs[0], want)
	}
	if api.auths[0] != "Bearer "+kc.issued[0] {
		t.Error("create was not authenticated with the stored access token")
	}

	// create --json: one line with the whole answer.
	r = u.run(append([]string{"keys", "create", "--name", "ci", "--no-roles", "--json"}, apiArgs...)...)
	var k map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &k) != nil || k["key"] != api.keys[1] || k["kid"] == "" {
		t.Fatalf("create --json: exit %d %q", r.code, r.stdout)
	}
	if !strings.HasSuffix(api.reqs[1], `"roles":[]}`) {
		t.Errorf("--no-roles request: %q", api.reqs[1])
	}

	// list: a table, or one JSON line; never a secret.
	r = u.run(append([]string{"keys", "list"}, apiArgs...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "KID") || !strings.Contains(r.stdout, "active") {
		t.Fatalf("list: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	hasLine(t, r.stdout, "ID KID NAME STATUS ROLES EXPIRES LAST USED BUDGET MODELS")
	if !regexp.MustCompile(`(?m) owner's +owner's$`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m) tokens/day=200000,usd/day=2\.5 +qwen2\.5-7b,llama\?\[2J$`).MatchString(r.stdout) {
		t.Errorf("list: the keys' budgets and models:\n%s", r.stdout)
	}
	r = u.run(append([]string{"keys", "list", "--json"}, apiArgs...)...)
	var l struct{ Keys []map[string]any }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &l) != nil || len(l.Keys) != 2 || l.Keys[0]["key"] != nil || l.Keys[1]["key"] != nil {
		t.Fatalf("list --json: exit %d %q", r.code, r.stdout)
	}
	if !strings.Contains(r.stdout, `"budget":null,"models":null}`) ||
		!strings.Contains(r.stdout, `"budget":{"tokens_per_minute":null,"tokens_per_day":200000,"tokens_per_month":null,"usd_per_day":"2.5","usd_per_month":null},"models":["qwen2.5-7b",`) {
		t.Errorf("list --json: budgets and models as llm-api has them: %s", r.stdout)
	}

	// revoke and rotate.
	r = u.run(append([]string{"keys", "revoke", "6f1c-id/../x"}, apiArgs...)...)
	if r.code != 0 || r.stdout != "revoked 6f1c-id/../x\n" || !strings.HasPrefix(api.reqs[len(api.reqs)-1], "DELETE /auth/api-keys/6f1c-id%2F..%2Fx ") {
		t.Fatalf("revoke: exit %d %q; request %q", r.code, r.stdout, api.reqs[len(api.reqs)-1])
	}
	if r := u.run(append([]string{"keys", "revoke", "id-2", "--json"}, apiArgs...)...); r.stdout != `{"revoked":true,"id":"id-2"}`+"\n" {
		t.Errorf("revoke --json: %q", r.stdout)
	}
	r = u.run(append([]string{"keys", "rotate", "old-id", "--grace", "5m"}, apiArgs...)...)
	last := api.keys[len(api.keys)-1]
	if r.code != 0 || r.stdout != last+"\n" || !strings.Contains(r.stderr, "replaces key old-id") {
		t.Fatalf("rotate: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	if want := `POST /auth/api-keys/old-id/rotate {"grace_seconds":300}`; api.reqs[len(api.reqs)-1] != want {
		t.Errorf("rotate request %q", api.reqs[len(api.reqs)-1])
	}
	for _, r := range []result{r} {
		noTokens(t, r, kc.secrets())
	}
}

func TestKeysDefaultAPIIsTheServer(t *testing.T) {
	u, _, _ := loggedIn(t)
	// The fake Keycloak has no /auth/api-keys: the request went to the server.
	r := u.run("keys", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "llm-api answered 404") {
		t.Fatalf("keys list against the server: exit %d %q", r.code, r.stderr)
	}
}

func TestKeysRefuseAPIKeys(t *testing.T) {
	u, kc, api := loggedIn(t)
	k, _ := apikey.Generate("live")
	r := u.run("keys", "list", "--api", api.srv.URL, "--api-key", k.Secret())
	if r.code != 2 || !strings.Contains(r.stderr, "not accepted") || strings.Contains(r.stderr, k.Secret()) || len(api.reqs) != 0 {
		t.Fatalf("--api-key on keys: exit %d stderr %q, %d requests", r.code, r.stderr, len(api.reqs))
	}
	// EDGEGUARD_API_KEY is ignored (said on stderr); the login is used.
	u.vars["EDGEGUARD_API_KEY"] = k.Secret()
	r = u.run("keys", "list", "--api", api.srv.URL)
	if r.code != 0 || !strings.Contains(r.stderr, "EDGEGUARD_API_KEY is ignored") || api.auths[0] != "Bearer "+kc.issued[0] {
		t.Fatalf("EDGEGUARD_API_KEY set: exit %d stderr %q auth is the JWT %t", r.code, r.stderr, api.auths[0] == "Bearer "+kc.issued[0])
	}
	if strings.Contains(r.stdout+r.stderr, k.Secret()) {
		t.Fatal("the API key was printed")
	}
}

func TestKeysRefreshAnExpiringToken(t *testing.T) {
	u, kc, api := loggedIn(t)
	u.clock.Add(280 * time.Second)
	r := u.run("keys", "list", "--api", api.srv.URL)
	if r.code != 0 || kc.refreshes != 1 || api.auths[0] != "Bearer "+kc.issued[2] {
		t.Fatalf("keys with 20 s left: exit %d, %d refreshes, new token used %t (%q)", r.code, kc.refreshes, api.auths[0] == "Bearer "+kc.issued[2], r.stderr)
	}
}

func TestKeysErrors(t *testing.T) {
	tests := []struct {
		name, body string
		status     int
		args       []string
		code       int
		stderr     string
	}{
		{"name taken", `{"error":{"code":"name_taken","message":"an active key has this name"}}`, 409, []string{"create", "--name", "ci"}, 1, "llm-api answered 409 name_taken: an active key has this name"},
		{"guest", `{"error":{"code":"forbidden_role","message":"forbidden"}}`, 403, []string{"list"}, 1, "guests cannot manage API keys"},
		{"terminal escapes in the message", "{\"error\":{\"code\":\"x\",\"message\":\"\\u001b[2Jgotcha\"}}", 400, []string{"list"}, 1, "?[2Jgotcha"},
		{"not JSON", `<html>502 Bad Gateway</html>`, 502, []string{"list"}, 1, "llm-api answered 502"},
		{"wrong types on success", `{"keys":"no"}`, 200, []string{"list"}, 1, "malformed answer"},
		{"huge", `{"keys":[` + strings.Repeat(`{},`, 400000) + `{}]}`, 200, []string{"list"}, 1, "larger than"},
		{"create answer without key", `{"id":"x"}`, 201, []string{"create", "--name", "ci"}, 1, "carries no key"},
		{"missing --name", ``, 200, []string{"create"}, 2, "--name is required"},
		{"--role with --no-roles", ``, 200, []string{"create", "--name", "x", "--role", "user", "--no-roles"}, 2, "exclude"},
		{"revoke without id", ``, 200, []string{"revoke"}, 2, "exactly one key ID"},
		{"bad grace", ``, 200, []string{"rotate", "id", "--grace", "1ms"}, 2, "whole seconds"},
		{"no subcommand", ``, 200, nil, 2, "missing subcommand"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, kc, api := loggedIn(t)
			api.failure = &struct {
				status     int
				code, body string
			}{status: tt.status, body: tt.body}
			r := u.run(append(append([]string{"keys"}, tt.args...), "--api", api.srv.URL)...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) {
				t.Fatalf("exit %d stderr %q; want %d with %q", r.code, r.stderr, tt.code, tt.stderr)
			}
			if strings.Contains(r.stderr, "\x1b") {
				t.Error("a terminal escape reached stderr")
			}
			noTokens(t, r, kc.secrets())
		})
	}
}

func TestKeysWithoutLogin(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	u := newUser(t, clock)
	api := newFakeLLMAPI(t, func() string { return "x" })
	r := u.run("keys", "list", "--server", "https://edge.example.com", "--api", api.srv.URL)
	if r.code != 1 || !strings.Contains(r.stderr, "not logged in to https://edge.example.com") || len(api.reqs) != 0 {
		t.Fatalf("keys without login: exit %d %q", r.code, r.stderr)
	}
}

// keys create's budget flags and --model: sent as "budget" and "models"
// exactly (USD as the string given), only when given; bad values are usage
// errors before anything is sent; llm-api's refusals are exit 1.
func TestKeysCreateWithABudgetAndModels(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		body   string // the create request's body
		stderr string
	}{
		{"none", nil, 0, `{"name":"ci"}`, "budget owner's, models owner's"},
		{"every window", []string{"--tokens-per-minute", "20000", "--tokens-per-day", "200000", "--tokens-per-month", "3000000",
			"--usd-per-day", "2.50", "--usd-per-month", "0.000000001"}, 0,
			`{"budget":{"tokens_per_minute":20000,"tokens_per_day":200000,"tokens_per_month":3000000,"usd_per_day":"2.50","usd_per_month":"0.000000001"},"name":"ci"}`,
			"budget tokens/min=20000,tokens/day=200000,tokens/month=3000000,usd/day=2.50,usd/month=0.000000001, models owner's"},
		{"models only", []string{"--model", "qwen2.5-7b", "--model", "org/llama,3"}, 0, `{"models":["qwen2.5-7b","org/llama,3"],"name":"ci"}`,
			"models qwen2.5-7b,org/llama,3"},
		{"with roles and expiry", []string{"--role", "user", "--expires-in-days", "7", "--usd-per-day", "1", "--model", "m"}, 0,
			`{"budget":{"usd_per_day":"1"},"expires_in_days":7,"models":["m"],"name":"ci","roles":["user"]}`, "budget usd/day=1, models m"},
		{"usd exponent", []string{"--usd-per-day", "1e9"}, 2, "", `invalid argument "1e9" for "--usd-per-day" flag: not plain decimal digits`},
		{"usd negative", []string{"--usd-per-month", "-1"}, 2, "", "--usd-per-month"},
		{"usd hex", []string{"--usd-per-day", "0x10"}, 2, "", "not plain decimal digits"},
		{"usd ten decimals", []string{"--usd-per-day", "1.0000000001"}, 2, "", "more than 9 decimals"},
		{"usd zero", []string{"--usd-per-day", "0.00"}, 2, "", "more than 0"},
		{"usd arabic digits", []string{"--usd-per-day", "١"}, 2, "", "not plain decimal digits"},
		{"usd too much", []string{"--usd-per-month", "1000000.5"}, 2, "", "at most 1000000"},
		{"tokens negative", []string{"--tokens-per-day", "-5"}, 2, "", "--tokens-per-day"},
		{"tokens zero", []string{"--tokens-per-minute", "0"}, 2, "", "between 1 and"},
		{"tokens float", []string{"--tokens-per-day", "1.5"}, 2, "", "not plain decimal digits"},
		{"tokens hex", []string{"--tokens-per-month", "0x10"}, 2, "", "not plain decimal digits"},
		{"tokens above 2^50", []string{"--tokens-per-month", "1125899906842625"}, 2, "", "between 1 and"},
		{"model twice", []string{"--model", "a", "--model", "a"}, 2, "", "given twice"},
		{"model with a space", []string{"--model", "a b"}, 2, "", "no spaces"},
		{"model empty", []string{"--model", ""}, 2, "", "1-128 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, kc, api := loggedIn(t)
			r := u.run(append([]string{"keys", "create", "--name", "ci", "--api", api.srv.URL}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) {
				t.Fatalf("exit %d stderr %q; want %d with %q", r.code, r.stderr, tt.code, tt.stderr)
			}
			reqs := api.requests()
			if tt.code != 0 {
				if len(reqs) != 0 || r.stdout != "" || !strings.Contains(r.stderr, "Run 'edgectl keys create --help' for usage.") {
					t.Fatalf("a usage error sent %d requests, stdout %q stderr %q", len(reqs), r.stdout, r.stderr)
				}
				return
			}
			if want := "POST /auth/api-keys " + tt.body; len(reqs) != 1 || reqs[0] != want {
				t.Fatalf("request %q, want %q", reqs, want)
			}
			if r.stdout != api.keys[0]+"\n" || strings.Contains(r.stderr, api.keys[0]) {
				t.Fatalf("the key: stdout %q, in stderr %t", r.stdout, strings.Contains(r.stderr, api.keys[0]))
			}
			noTokens(t, r, kc.secrets())
		})
	}

	// llm-api's refusals, as every other API error: exit 1, status, code, message.
	for code, msg := range map[string]string{
		"budget_exceeds_owner": "budget.tokens_per_day: must be limited, at most 100000 (your budget)",
		"models_not_allowed":   "models[0] is not among your models",
		"key_budgets_disabled": "budgets are not configured on this server",
	} {
		u, kc, api := loggedIn(t)
		api.failure = &struct {
			status     int
			code, body string
		}{status: 400, body: `{"error":{"code":"` + code + `","message":"` + msg + `"}}`}
		r := u.run("keys", "create", "--name", "ci", "--api", api.srv.URL, "--tokens-per-day", "500000", "--model", "big")
		if want := "edgectl: llm-api answered 400 " + code + ": " + msg + "\n"; r.code != 1 || r.stderr != want || r.stdout != "" {
			t.Errorf("%s: exit %d stdout %q stderr %q, want %q", code, r.code, r.stdout, r.stderr, want)
		}
		noTokens(t, r, kc.secrets())
	}
}
