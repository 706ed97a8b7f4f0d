package e2e

import (
	"net/http"
	"testing"
	"time"
)

// TestOutages takes Keycloak, Redis and llm-api's validate endpoint away in
// turn (through the fault proxies every process of the stack uses) and
// checks what the edge promises: known tokens and cached keys keep working,
// Redis failing falls back to the configured policy (kong.yml:
// on_redis_error: local), nothing answers 500, and everything works again
// once the component is back. The validate endpoint goes before Redis: when
// Redis comes back, every edge's revocation subscriber resubscribes and drops
// its whole API-key cache (revocations may have been missed meanwhile,
// pkg/apikey), so a cached key needs the validate endpoint once more.
func TestOutages(t *testing.T) {
	s, e := requireEdge(t)
	_, jwt := e.userToken(t, s)
	chat := map[string]any{"model": "stub-model", "messages": []map[string]string{{"role": "user", "content": "hi"}}}

	t.Run("keycloak down", func(t *testing.T) {
		seen, _ := e.guest(t)   // used before the outage: cached at the edge
		unseen, _ := e.guest(t) // never shown to the edge before the outage
		if a := e.do(t, http.MethodGet, "/v1/models", seen, nil, nil); a.status != http.StatusOK {
			t.Fatalf("before: %d", a.status)
		}
		e.keycloak.Stop()
		restarted := false
		defer func() {
			if !restarted {
				_ = e.keycloak.Start()
			}
		}()
		for name, tok := range map[string]string{"a cached token": seen, "a token signed by a known key": unseen, "the user's token": jwt} {
			if a := e.do(t, http.MethodGet, "/v1/models", tok, nil, nil); a.status != http.StatusOK {
				t.Errorf("Keycloak down, %s: %d %s", name, a.status, a.body)
			}
		}
		a := e.do(t, http.MethodPost, "/auth/guest-login", "", nil, http.Header{"X-Forwarded-For": {clientAddr()}})
		if a.status == http.StatusOK || a.status == http.StatusInternalServerError {
			t.Errorf("guest login with Keycloak down: %d %s (want an unavailable answer, not 200/500)", a.status, a.body)
		}
		t.Logf("guest login with Keycloak down: %d %s", a.status, a.code())

		if err := e.keycloak.Start(); err != nil {
			t.Fatal(err)
		}
		restarted = true
		if !eventually(20*time.Second, func() bool {
			return e.do(t, http.MethodGet, "/realms/jan/.well-known/openid-configuration", "", nil,
				http.Header{"Host": {e.publicHost()}}).status == http.StatusOK
		}) {
			t.Fatal("Keycloak not reachable through the gateway within 20 s of coming back")
		}
		fresh, _ := e.guest(t)
		if a := e.do(t, http.MethodGet, "/v1/models", fresh, nil, nil); a.status != http.StatusOK {
			t.Errorf("a token minted after Keycloak came back: %d %s", a.status, a.body)
		}
	})

	t.Run("validate endpoint down", func(t *testing.T) {
		_, cached := e.apiKey(t, jwt, "outage-validate-cached")
		_, unseen := e.apiKey(t, jwt, "outage-validate-unseen")
		if a := e.do(t, http.MethodPost, "/v1/chat/completions", cached, chat, nil); a.status != http.StatusOK {
			t.Fatalf("before: %d %s", a.status, a.body)
		}
		e.validate.Stop()
		defer func() { _ = e.validate.Start() }()
		if a := e.do(t, http.MethodPost, "/v1/chat/completions", cached, chat, nil); a.status != http.StatusOK {
			t.Errorf("validate down, a cached key: %d %s", a.status, a.body)
		}
		a := e.do(t, http.MethodPost, "/v1/chat/completions", unseen, chat, nil)
		if a.status != http.StatusServiceUnavailable || a.code() != "key_validation_unavailable" {
			t.Errorf("validate down, a key never seen: %d %q, want 503 key_validation_unavailable", a.status, a.code())
		}
		if err := e.validate.Start(); err != nil {
			t.Fatal(err)
		}
		if !eventually(10*time.Second, func() bool {
			return e.do(t, http.MethodPost, "/v1/chat/completions", unseen, chat, nil).status == http.StatusOK
		}) {
			t.Error("the unseen key did not work after the validate endpoint came back")
		}
	})
	t.Run("redis down", func(t *testing.T) {
		_, key := e.apiKey(t, jwt, "outage-redis")
		if a := e.do(t, http.MethodPost, "/v1/chat/completions", key, chat, nil); a.status != http.StatusOK {
			t.Fatalf("before: %d %s", a.status, a.body)
		}
		e.redis.Stop()
		defer func() { _ = e.redis.Start() }()
		for name, cred := range map[string]string{"a JWT": jwt, "a cached API key": key} {
			for i := 0; i < 3; i++ {
				// the edge lets the credential through under its local
				// limiter (on_redis_error local); llm-api, whose token
				// budgets live in Redis, then refuses by its default
				// (LLM_BUDGET_ON_REDIS_ERROR=deny): never a free pass,
				// never a 401, 429 or 500
				a := e.do(t, http.MethodPost, "/v1/chat/completions", cred, chat, nil)
				if a.status != http.StatusServiceUnavailable || a.code() != "budget_unavailable" {
					t.Errorf("Redis down, %s, request %d: %d %s (want the edge to pass it and llm-api's 503 budget_unavailable)", name, i, a.status, a.body)
				}
				if a.header.Get("RateLimit-Limit") == "" {
					t.Errorf("Redis down, %s: no rate-limit headers (the local limiter decides)", name)
				}
			}
		}
		if err := e.redis.Start(); err != nil {
			t.Fatal(err)
		}
		if !eventually(10*time.Second, func() bool {
			return e.do(t, http.MethodPost, "/v1/chat/completions", key, chat, nil).status == http.StatusOK
		}) {
			t.Error("requests did not succeed again after Redis came back")
		}
	})

}
