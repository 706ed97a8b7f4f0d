package app_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/identity"
)

func randomHex(t *testing.T) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestNoSecretInTheLogs runs every path with credentials and secrets and
// then greps the service's whole log for each of them.
func TestNoSecretInTheLogs(t *testing.T) {
	sandboxToken := "sbx-" + randomHex(t)
	tokenFile := filepath.Join(t.TempDir(), "sandbox.token")
	if err := os.WriteFile(tokenFile, []byte(sandboxToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, withEnv("SANDBOX_TOKEN_FILE", tokenFile))
	h.sandbox.mu.Lock()
	h.sandbox.token = sandboxToken
	h.sandbox.mu.Unlock()

	var mu sync.Mutex
	var assertions []string
	edge := func(id identity.Identity) *http.Client {
		return &http.Client{Transport: roundTripper(func(r *http.Request) error {
			a, err := h.signer.Sign(&id, "mcp-tools", r.Method, r.URL.Path, h.clock.Now())
			if err != nil {
				return err
			}
			mu.Lock()
			assertions = append(assertions, a)
			mu.Unlock()
			r.Header.Set(identity.HeaderEdgeIdentity, a)
			return nil
		})}
	}
	aliceJWT := h.userToken("alice", "user")
	adminJWT := h.userToken("carol", "admin")
	codeMarker := "code-" + randomHex(t)
	queryToken := randomHex(t)
	expired := h.idp.Token(t, "x", map[string]any{"exp": 1})

	alice := h.mustConnect(h.jwtClient(aliceJWT))
	_, m := call(t, alice, "run_python", map[string]any{"code": "print('" + codeMarker + "')"})
	id, _ := m["approval_id"].(string)
	h.do(h.jwtClient(adminJWT), http.MethodGet, "/v1/approvals", "")
	h.do(h.jwtClient(adminJWT), http.MethodPost, "/v1/approvals/"+id, "")
	if res, m := call(t, alice, "run_python", map[string]any{"code": "print('" + codeMarker + "')", "approval_id": id}); res.IsError {
		t.Fatalf("approved run failed: %v", m)
	}
	call(t, alice, "fetch_url", map[string]any{"url": "http://10.0.0.1/x?token=" + queryToken + "&access_token=" + queryToken})
	call(t, alice, "fetch_url", map[string]any{"url": "http://no-such-host.test/x?api_key=" + queryToken})
	viaEdge := h.mustConnect(edge(user("bob", "user")))
	call(t, viaEdge, "time_now", nil)
	h.do(h.jwtClient(expired), http.MethodPost, "/v1/mcp", `{}`)
	h.do(h.jwtClient(aliceJWT+"x"), http.MethodPost, "/v1/mcp", `{}`)

	logs := h.logs.String()
	if !strings.Contains(logs, `"request_id"`) || !strings.Contains(logs, `"tool call"`) || !strings.Contains(logs, `"approval decided"`) {
		t.Fatalf("the log lacks the expected lines:\n%s", logs)
	}
	secrets := map[string]string{"alice's JWT": aliceJWT, "admin JWT": adminJWT, "expired JWT": expired,
		"sandbox token": sandboxToken, "code": codeMarker, "query token": queryToken}
	mu.Lock()
	for i, a := range assertions {
		secrets[fmt.Sprintf("assertion %d", i)] = a
	}
	mu.Unlock()
	for name, secret := range secrets {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains the %s", name)
		}
		// the signature part alone (a JWT's last segment) must not leak either
		if i := strings.LastIndexByte(secret, '.'); i > 0 && strings.Contains(logs, secret[i+1:]) {
			t.Errorf("the log contains the signature of the %s", name)
		}
	}
}
