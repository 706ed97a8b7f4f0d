package keycloakapikey

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Kong/go-pdk/test"

	"github.com/edgeguard/edgeguard/pkg/devpki"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/pkg/mtls/mtlstest"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter/kongtest"
)

func secretFile(t *testing.T, dir, name string) (path, value string) {
	t.Helper()
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	value = hex.EncodeToString(b)
	testenv.RecordSecret(value)
	path = filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(value), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, value
}

// fakeKeycloak serves the two admin calls llm-api's role source makes
// (client-credentials token; user and composite realm roles). Every user is
// enabled with the realm role "user". The real Keycloak is exercised by the
// Keycloak e2e suite.
func fakeKeycloak(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/protocol/openid-connect/token"):
			io.WriteString(w, `{"access_token":"svc","expires_in":300,"token_type":"Bearer"}`)
		case strings.HasSuffix(r.URL.Path, "/role-mappings/realm/composite"):
			io.WriteString(w, `[{"name":"user"},{"name":"default-roles-jan"}]`)
		case strings.Contains(r.URL.Path, "/users/"):
			id := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
			fmt.Fprintf(w, `{"id":%q,"username":"user-%s","enabled":true}`, id, id)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// syncBuf collects a child process's output.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type llmAPI struct {
	public, internal string
	tokenFile        string
	secrets          []string
	logs             *syncBuf
	// client reaches the public listener as Kong does (mTLS with the
	// edge's client certificate).
	client *http.Client
}

// startLLMAPI runs bin/llm-api against the test PostgreSQL and Redis.
func startLLMAPI(t *testing.T, idp *jwttest.IdP) *llmAPI {
	bin := testenv.Binary(t, "llm-api")
	dsn := testenv.PostgresDSN(t)
	redisAddr := testenv.RedisAddr(t)
	dir := t.TempDir()
	pepperFile, pepper := secretFile(t, dir, "pepper")
	tokenFile, token := secretFile(t, dir, "internal-token")
	kcFile, kc := secretFile(t, dir, "kc-secret")
	api := &llmAPI{public: testenv.FreeAddr(t), internal: testenv.FreeAddr(t), tokenFile: tokenFile, secrets: []string{pepper, token, kc}, logs: &syncBuf{}}
	// the public listener serves mTLS (pkg/mtls); the validate endpoint
	// stays on the plain internal listener
	pki := mtlstest.New(t, "test CA")
	api.client = &http.Client{Transport: &http.Transport{TLSClientConfig: mtlstest.ClientTLS(t, pki, "llm-api", pki.Client(t, devpki.Options{}))}}
	cmd := exec.Command(bin)
	for k, v := range mtlstest.ServiceEnv(t, pki, pki, "llm-api") {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(append(os.Environ(), cmd.Env...),
		"STRICT=false", // the test DSN has no password; every secret still comes from a file
		"LOG_LEVEL=debug",
		"LISTEN_ADDR="+api.public, "INTERNAL_LISTEN_ADDR="+api.internal,
		"DATABASE_URL="+dsn, "REDIS_ADDR="+redisAddr,
		"API_KEY_PEPPER_FILE="+pepperFile, "INTERNAL_TOKEN_FILE="+tokenFile,
		"KEYCLOAK_URL="+fakeKeycloak(t), "KEYCLOAK_REALM=jan", "KEYCLOAK_CLIENT_ID=llm-api", "KEYCLOAK_CLIENT_SECRET_FILE="+kcFile,
		"AUTH_ISSUER="+idp.Issuer, "AUTH_JWKS_URL="+idp.JWKSURL(), "AUTH_AUDIENCE=jan-api",
	)
	cmd.Stdout, cmd.Stderr = api.logs, api.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + api.internal + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return api
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("llm-api not ready: %v\n%s", err, api.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (a *llmAPI) call(t *testing.T, method, path, jwt string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "https://"+a.public+path, rd)
	req.Header.Set("Authorization", "Bearer "+jwt)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// edgeInstance is one keycloak-apikey plugin configuration (its own
// validator, cache and revocation subscription).
func edgeInstance(t *testing.T, a *llmAPI, entries int) *Config {
	return decode(t, kongJSON(t, map[string]any{
		"validate_url":        "http://" + a.internal + "/internal/api-keys/validate",
		"internal_token_file": a.tokenFile,
		"cache_entries":       entries, // distinct configurations: distinct validators
		"redis":               map[string]any{"addresses": []string{testenv.RedisAddr(t)}},
	}))
}

// verdict runs the plugin on a request carrying key: "" when allowed, else
// the error code.
func verdict(t *testing.T, c *Config, key string) string {
	t.Helper()
	f := exchange.NewFake("POST", "/v1/chat/completions", map[string][]string{"Authorization": {"Bearer " + key}})
	c.Handle(f)
	if f.ExitStatus == 0 {
		if f.Identity == nil || f.Identity.AuthMethod != "apikey" {
			t.Fatalf("allowed without an api-key identity: %+v", f.Identity)
		}
		return ""
	}
	return code(t, f.ExitBody)
}

// TestKeyLifecycleAgainstTheRealService: a JWT user creates a key on llm-api
// (PostgreSQL), the plugin accepts it — through the fake Exchange and through
// go-pdk's test package — it is revoked and refused within 1 s on a second
// plugin instance (Redis pub/sub), and rotation retires the old key.
func TestKeyLifecycleAgainstTheRealService(t *testing.T) {
	idp := jwttest.New(t)
	api := startLLMAPI(t, idp)
	sub := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	jwt := idp.Token(t, sub, nil)

	status, created := api.call(t, "POST", "/auth/api-keys", jwt, map[string]any{"name": "ci", "expires_in_days": 7})
	if status != 201 {
		t.Fatalf("create: %d %v\n%s", status, created, api.logs.String())
	}
	key, _ := created["key"].(string)
	id, _ := created["id"].(string)
	if !strings.HasPrefix(key, "sk_") || id == "" {
		t.Fatalf("create answer %v", created)
	}

	a, b := edgeInstance(t, api, 1000), edgeInstance(t, api, 1001)
	for name, c := range map[string]*Config{"a": a, "b": b} {
		if v := verdict(t, c, key); v != "" {
			t.Fatalf("instance %s refused a fresh key: %s", name, v)
		}
	}
	// The Kong adapter path, on instance a (now cached).
	env := kongtest.New(t, test.Request{Method: "GET", Url: "http://gw/v1/models", Headers: http.Header{"X-Api-Key": {key}}})
	env.Access(kongadapter.Handler(a))
	if env.ClientRes.Status == 401 || env.ServiceReq.Headers.Get("X-User-ID") != sub {
		t.Fatalf("go-pdk path: %d, upstream %v", env.ClientRes.Status, env.ServiceReq.Headers)
	}

	// Revoke: both instances refuse within 1 s.
	if status, body := api.call(t, "DELETE", "/auth/api-keys/"+id, jwt, nil); status != 200 && status != 204 {
		t.Fatalf("revoke: %d %v", status, body)
	}
	start := time.Now()
	for _, c := range []*Config{a, b} {
		for verdict(t, c, key) == "" {
			if time.Since(start) > time.Second {
				t.Fatalf("revoked key still accepted after %s", time.Since(start))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("revocation reached both instances in %s", time.Since(start))
	if v := verdict(t, b, key); v != "key_revoked" && v != "key_unknown" {
		t.Fatalf("revoked key: %s", v)
	}

	// Rotate: the old key is refused, the new one accepted.
	_, created = api.call(t, "POST", "/auth/api-keys", jwt, map[string]any{"name": "svc"})
	oldKey, _ := created["key"].(string)
	oldID, _ := created["id"].(string)
	if verdict(t, a, oldKey) != "" {
		t.Fatal("second key refused")
	}
	status, rotated := api.call(t, "POST", "/auth/api-keys/"+oldID+"/rotate", jwt, map[string]any{})
	newKey, _ := rotated["key"].(string)
	if status != 201 && status != 200 || newKey == "" || newKey == oldKey {
		t.Fatalf("rotate: %d %v", status, rotated)
	}
	deadline := time.Now().Add(time.Second)
	for verdict(t, a, oldKey) == "" {
		if time.Now().After(deadline) {
			t.Fatal("rotated-away key still accepted after 1 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := verdict(t, b, newKey); v != "" {
		t.Fatalf("rotated key refused: %s", v)
	}

	// Nothing secret in llm-api's debug logs.
	logs := api.logs.String()
	for _, s := range append([]string{key, oldKey, newKey, jwt}, api.secrets...) {
		if strings.Contains(logs, s) {
			t.Fatalf("a secret reached llm-api's logs")
		}
	}
}
