package app_test

import (
	"context"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/app"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/config"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keystest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/llmstub"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/pgtest"
	"github.com/rs/zerolog"
)

// TestModelAPIThroughTheService: the wired service forwards the model API
// with the configured key, accepts a guest's JWT, and never logs the key.
func TestModelAPIThroughTheService(t *testing.T) {
	stub := &llmstub.Stub{}
	up := httptest.NewServer(stub)
	t.Cleanup(up.Close)
	idp := jwttest.New(t)
	cfg := testConfig(t, idp, pgtest.Schema(t), "")
	const key = "vllm-service-key-0123456789"
	cfg.LLMUpstreamURL, cfg.LLMUpstreamAPIKey = up.URL+"/v1", config.Secret(key)
	cfg.LLMUpstreamTimeout, cfg.LLMUpstreamHeaderTimeout, cfg.LLMMaxBodyBytes = time.Minute, time.Minute, 1<<20
	logs := &testenv.Buffer{}
	a, err := app.New(context.Background(), cfg, zerolog.New(logs).Level(zerolog.DebugLevel), app.Deps{Roles: keystest.NewRoles()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	pub := httptest.NewServer(a.Public)
	t.Cleanup(pub.Close)

	guest := idp.Token(t, "guest-1", map[string]any{"azp": "jan-cli", "realm_access": map[string]any{"roles": []string{"guest"}}})
	st, b := call(t, http.MethodPost, pub.URL+"/v1/chat/completions", map[string]string{"Authorization": "Bearer " + guest},
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	if st != 200 || !strings.Contains(string(b), `"content":"tok0 tok1 tok2`) {
		t.Fatalf("%d %s", st, b)
	}
	if got := stub.Last().Header.Get("Authorization"); got != "Bearer "+key {
		t.Fatalf("upstream Authorization %q", got)
	}
	if st, _ := call(t, http.MethodGet, pub.URL+"/v1/models", nil, ""); st != 401 {
		t.Fatalf("no credential: %d", st)
	}
	if strings.Contains(logs.String(), key) || strings.Contains(logs.String(), guest) {
		t.Fatal("key or token in the log")
	}

	// without LLM_UPSTREAM_URL the routes exist and say so
	cfg2 := testConfig(t, idp, pgtest.Schema(t), "")
	a2, err := app.New(context.Background(), cfg2, zerolog.Nop(), app.Deps{Roles: keystest.NewRoles()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a2.Close)
	w := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/v1/models", nil)
	req.Header.Set("Authorization", "Bearer "+idp.Token(t, "alice", nil))
	a2.Public.ServeHTTP(w, req)
	if w.Code != 503 || !strings.Contains(w.Body.String(), "llm_not_configured") {
		t.Fatalf("unconfigured: %d %s", w.Code, w.Body)
	}
}
