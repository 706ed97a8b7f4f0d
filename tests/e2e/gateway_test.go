package e2e

// The gateway suites: everything through the real Kong on kong/kong.yml
// (the stack `make dev` runs), with real clients — curl as the README's quick
// start says, the official openai SDK — against the real services, Keycloak,
// Redis and PostgreSQL.

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMakeDevTryCommands runs the two commands make dev prints, as a
// newcomer pastes them: a guest token with curl, then a chat completion.
func TestMakeDevTryCommands(t *testing.T) {
	_, e := requireEdge(t)
	try := e.TryCommands()
	if !strings.Contains(try, "curl") || !strings.Contains(try, "/auth/guest-login") {
		t.Fatalf("make dev printed no commands to try:\n%s", e.Banner)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", try).Output()
	if err != nil {
		t.Fatalf("the printed commands failed: %v", err)
	}
	var res struct {
		Object  string `json:"object"`
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.Object != "chat.completion" || len(res.Choices) != 1 {
		t.Fatalf("the chat completion: %v (object %q, %d choices)", err, res.Object, len(res.Choices))
	}
}

// openAI runs tests/e2e/openai/client.mjs (the openai SDK) in mode with env.
func openAI(t *testing.T, mode string, env ...string) (map[string]any, error) {
	t.Helper()
	dir := os.Getenv("EDGEGUARD_OPENAI_DIR")
	if dir == "" {
		if why := os.Getenv("EDGEGUARD_OPENAI_ERROR"); why != "" || os.Getenv("CI") == "true" {
			t.Fatalf("the openai SDK is not installed (scripts/openai-sdk.sh install): %s", why)
		}
		t.Skip("EDGEGUARD_OPENAI_DIR unset: run through make test (scripts/openai-sdk.sh install)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(dir, "client.mjs"), mode)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()
	var res map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(out), &res); err != nil {
		t.Fatalf("client.mjs %s: %v; stdout %q; stderr %s", mode, err, out, stderr.String())
	}
	return res, runErr
}

// TestOpenAISDKWithAnAPIKey: a key created through the API works with the
// official SDK (models, chat, streamed chat) through the gateway, and once
// revoked it fails with 401 within a second.
func TestOpenAISDKWithAnAPIKey(t *testing.T) {
	s, e := requireEdge(t)
	_, jwt := e.userToken(t, s)
	id, key := e.apiKey(t, jwt, "openai-sdk")
	base := []string{"OPENAI_BASE_URL=" + e.gw + "/v1", "OPENAI_API_KEY=" + key, "MODEL=stub-model"}

	res, err := openAI(t, "chat", base...)
	if err != nil {
		t.Fatalf("openai SDK: %v: %v", err, res)
	}
	models, _ := res["models"].([]any)
	if len(models) == 0 || models[0] != "stub-model" {
		t.Errorf("models.list: %v", res["models"])
	}
	if c, _ := res["content"].(string); !strings.HasPrefix(c, "tok0 tok1 tok2") { // the stub's answer
		t.Errorf("chat.completions.create: content %v", res["content"])
	}
	if chunks, _ := res["chunks"].(float64); chunks < 2 || res["streamed"] == "" {
		t.Errorf("streamed chat: %v chunks, text %q", res["chunks"], res["streamed"])
	}

	res, err = openAI(t, "revoked", append(base,
		"REVOKE_URL="+e.gw+"/auth/api-keys/"+id, "REVOKE_BEARER="+jwt, "DEADLINE_MS=1000")...)
	if err != nil || res["status"] != float64(401) {
		t.Fatalf("the revoked key: %v, %v (want 401 within 1 s)", err, res)
	}
	t.Logf("revoked key refused after %v ms (%v attempts)", res["elapsed_ms"], res["attempts"])
}

// TestGuestThroughTheGateway: a guest session is created, used, refreshed
// and ended through the gateway; guests cannot reach key management or
// admin routes.
func TestGuestThroughTheGateway(t *testing.T) {
	_, e := requireEdge(t)
	access, refresh := e.guest(t)
	if a := e.do(t, http.MethodGet, "/v1/models", access, nil, nil); a.status != http.StatusOK {
		t.Fatalf("guest GET /v1/models: %d %s", a.status, a.body)
	}
	for _, p := range []string{"/auth/api-keys", "/v1/admin/audit/events"} {
		if a := e.do(t, http.MethodGet, p, access, nil, nil); a.status != http.StatusForbidden {
			t.Errorf("guest GET %s: %d %s, want 403", p, a.status, a.body)
		}
	}
	if a := e.do(t, http.MethodPost, "/auth/api-keys", access, map[string]any{"name": "x"}, nil); a.status != http.StatusForbidden {
		t.Errorf("guest POST /auth/api-keys: %d, want 403", a.status)
	}
	if a := e.do(t, http.MethodGet, "/v1/models", "", nil, nil); a.status != http.StatusUnauthorized {
		t.Errorf("GET /v1/models without a credential: %d, want 401", a.status)
	}

	a := e.do(t, http.MethodPost, "/auth/refresh", "", map[string]string{"refresh_token": refresh}, nil)
	if a.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", a.status, a.body)
	}
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(a.body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("refresh answer: %v", err)
	}
	used.add(tok.AccessToken)
	used.add(tok.RefreshToken)
	if a := e.do(t, http.MethodGet, "/v1/models", tok.AccessToken, nil, nil); a.status != http.StatusOK {
		t.Errorf("refreshed token: %d", a.status)
	}
	if a := e.do(t, http.MethodPost, "/auth/logout", "", map[string]string{"refresh_token": tok.RefreshToken}, nil); a.status != http.StatusNoContent {
		t.Errorf("logout: %d %s", a.status, a.body)
	}
	if a := e.do(t, http.MethodPost, "/auth/refresh", "", map[string]string{"refresh_token": tok.RefreshToken}, nil); a.status == http.StatusOK {
		t.Error("a logged-out session still refreshes")
	}
}

// TestRateLimitedAtTheEdge: a guest (2 requests/s on the OpenAI routes) gets
// 429 with the rate-limit headers from the edge: RateLimit-*, Kong's
// X-RateLimit-*-Second and OpenAI's x-ratelimit-*-requests, the last two
// families describing the same window — the guest's per-second one, the
// scarcest on every 200 and the one that refuses.
func TestRateLimitedAtTheEdge(t *testing.T) {
	_, e := requireEdge(t)
	access, _ := e.guest(t)
	var limited *answer
	for i := 0; i < 8 && limited == nil; i++ {
		a := e.do(t, http.MethodGet, "/v1/models", access, nil, nil)
		switch a.status {
		case http.StatusOK:
			if a.header.Get("RateLimit-Limit") == "" || a.header.Get("X-RateLimit-Limit-Second") != "2" {
				t.Errorf("200 without the rate-limit headers: %v", a.header)
			}
			checkOpenAIRateLimitHeaders(t, a.header, "0", "1")
		case http.StatusTooManyRequests:
			limited = &a
		default:
			t.Fatalf("GET /v1/models: %d %s", a.status, a.body)
		}
	}
	if limited == nil {
		t.Fatal("8 requests in a burst as a guest (2/s): never 429")
	}
	if limited.code() != "rate_limited" || limited.header.Get("Retry-After") == "" ||
		limited.header.Get("RateLimit-Remaining") != "0" || limited.header.Get("X-RateLimit-Remaining-Second") != "0" {
		t.Errorf("429: code %q, headers %v", limited.code(), limited.header)
	}
	checkOpenAIRateLimitHeaders(t, limited.header, "0")
}

// checkOpenAIRateLimitHeaders: OpenAI's x-ratelimit-limit-requests /
// -remaining-requests / -reset-requests of the guest's per-second window
// (2 requests), remaining one of remaining, the reset a Go duration in
// (0, 1s] — and the same window as RateLimit-*.
func checkOpenAIRateLimitHeaders(t *testing.T, h http.Header, remaining ...string) {
	t.Helper()
	limit, left, reset := h.Get("x-ratelimit-limit-requests"), h.Get("x-ratelimit-remaining-requests"), h.Get("x-ratelimit-reset-requests")
	d, err := time.ParseDuration(reset)
	if limit != "2" || !slices.Contains(remaining, left) || err != nil || d <= 0 || d > time.Second {
		t.Errorf("x-ratelimit-*-requests: limit %q remaining %q (want one of %v) reset %q (%v): %v", limit, left, remaining, reset, err, h)
		return
	}
	if h.Get("RateLimit-Limit") != limit || h.Get("RateLimit-Remaining") != left || h.Get("RateLimit-Reset") != "1" {
		t.Errorf("RateLimit-* describe another window than x-ratelimit-*-requests: %v", h)
	}
}

// TestDenialsCarryTheirHeaders: the edge's 401 and 403 through the real
// Kong carry what clients and SDKs read — the RFC 6750 challenge (no error
// attribute without a credential, invalid_token for a bad one), a stable
// JSON error code, the request id — and no upstream Server header.
func TestDenialsCarryTheirHeaders(t *testing.T) {
	_, e := requireEdge(t)
	guest, _ := e.guest(t)
	cases := []struct {
		name, path, bearer string
		status             int
		challenge, code    string // challenge "": none expected; code "": any stable code
	}{
		{"no credential", "/v1/models", "", http.StatusUnauthorized, `Bearer realm="edgeguard"`, "credential_missing"},
		{"a forged JWT", "/v1/models", "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJ4In0.c2ln", http.StatusUnauthorized,
			`Bearer realm="edgeguard", error="invalid_token"`, ""},
		{"an unknown API key", "/v1/models", "sk_" + strings.Repeat("q", 40), http.StatusUnauthorized,
			`Bearer realm="edgeguard", error="invalid_token"`, ""},
		{"a guest on an admin route", "/v1/admin/audit/events", guest, http.StatusForbidden, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := e.do(t, http.MethodGet, c.path, c.bearer, nil, nil)
			if a.status != c.status {
				t.Fatalf("GET %s: %d %s, want %d", c.path, a.status, a.body, c.status)
			}
			if got := a.header.Get("WWW-Authenticate"); c.challenge != "" && got != c.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, c.challenge)
			}
			if code := a.code(); code == "" || (c.code != "" && code != c.code) {
				t.Errorf("error code %q (want %q), body %s", code, c.code, a.body)
			}
			if !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
				t.Errorf("Content-Type %q", a.header.Get("Content-Type"))
			}
			if a.header.Get("X-Request-ID") == "" {
				t.Error("no X-Request-ID on the denial")
			}
			if s := a.header.Get("Server"); s != "" && !strings.HasPrefix(strings.ToLower(s), "kong") {
				t.Errorf("Server %q reached the client", s)
			}
		})
	}
}

// reserved are identity headers a client must never get to a service
// (docs/architecture.md "Upstream identity"), as attackers send them.
var spoofed = http.Header{
	"X-Auth-Method":           {"apikey"},
	"X-User-Subject":          {"victim-subject"},
	"X-User-ID":               {"victim-subject"},
	"x_user_id":               {"victim-subject"},
	"X-User-Roles":            {"admin"},
	"X-User-Guest":            {"false"},
	"X-API-Key-ID":            {"victimkid"},
	"X-Consumer-ID":           {"victim"},
	"X-Edge-Identity":         {"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ2aWN0aW0ifQ.c2ln"},
	"X-Userinfo":              {"eyJzdWIiOiJ2aWN0aW0ifQ"},
	"X-Credential-Identifier": {"victim"},
	// any case, and _ for - (sent as written: the map keys are not canonicalised)
	"x-uSeR-rOlEs":    {"admin"},
	"X_EDGE_IDENTITY": {"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ2aWN0aW0ifQ.c2ln"},
	"x_auth_method":   {"apikey"},
	// Connection: names the identity headers as hop-by-hop, so that a proxy
	// honouring it would drop the edge's own copies after the plugins ran
	"Connection": {"keep-alive, X-Edge-Identity, X-User-ID, X-User-Roles"},
}

// TestSpoofedIdentityHeadersNeverReachAService: jan-server's attack
// (X-Auth-Method: apikey + X-User-Subject: <victim>) and every other reserved
// header: without a credential → 401; with a credential the request acts as
// its holder only; the upstream never sees them.
func TestSpoofedIdentityHeadersNeverReachAService(t *testing.T) {
	s, e := requireEdge(t)
	for _, p := range []string{"/auth/api-keys", "/v1/models", "/v1/admin/audit/events"} {
		if a := e.do(t, http.MethodGet, p, "", nil, spoofed); a.status != http.StatusUnauthorized {
			t.Errorf("GET %s with spoofed identity headers and no credential: %d %s, want 401", p, a.status, a.body)
		}
	}
	if a := e.do(t, http.MethodPost, "/v1/chat/completions", "", map[string]any{"model": "stub-model",
		"messages": []map[string]string{{"role": "user", "content": "hi"}}}, spoofed); a.status != http.StatusUnauthorized {
		t.Errorf("POST /v1/chat/completions with spoofed headers and no credential: %d, want 401", a.status)
	}

	userID, jwt := e.userToken(t, s)
	a := e.do(t, http.MethodGet, "/auth/api-keys", jwt, nil, spoofed)
	if a.status != http.StatusOK {
		t.Fatalf("GET /auth/api-keys as a user with spoofed headers: %d %s", a.status, a.body)
	}
	if bytes.Contains(a.body, []byte("victim")) {
		t.Errorf("the listing mentions the victim: %s", a.body)
	}
	if a := e.do(t, http.MethodGet, "/v1/admin/audit/events", jwt, nil, spoofed); a.status != http.StatusForbidden {
		t.Errorf("a user claiming X-User-Roles: admin on /v1/admin/: %d, want 403", a.status)
	}

	// What reached the upstream model server: none of it.
	marker := "spoof-" + randHex(6)
	h := spoofed.Clone()
	h.Set("X-Request-ID", marker)
	if a := e.do(t, http.MethodPost, "/v1/chat/completions", jwt, map[string]any{"model": "stub-model",
		"messages": []map[string]string{{"role": "user", "content": "hi"}}}, h); a.status != http.StatusOK {
		t.Fatalf("chat completion as a user with spoofed headers: %d %s", a.status, a.body)
	}
	resp, err := http.Get(e.Env["STUB_UPSTREAM_URL"] + "/_stub/requests")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var recs []struct {
		Path   string      `json:"path"`
		Header http.Header `json:"header"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&recs); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range recs {
		if r.Header.Get("X-Request-ID") != marker {
			continue
		}
		found = true
		for name := range r.Header {
			n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
			if strings.HasPrefix(n, "x-user") || strings.HasPrefix(n, "x-auth") || strings.HasPrefix(n, "x-api-key") ||
				strings.HasPrefix(n, "x-consumer") || n == "x-edge-identity" || n == "x-userinfo" ||
				n == "x-credential-identifier" || n == "authorization" {
				t.Errorf("the upstream received %s", name)
			}
		}
	}
	if !found {
		t.Fatalf("the stub recorded no request with X-Request-ID %s (user %s)", marker, userID)
	}
}
