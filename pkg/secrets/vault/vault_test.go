package vault

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/envconf"
	"github.com/edgeguard/edgeguard/pkg/secrets"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/rs/zerolog"
)

// The tests run against an in-process fake of Vault's HTTP API (KV v2 reads
// and AppRole login): no Vault-compatible server can be built here (see
// README.md). The fake answers like Vault: 404 with {"errors":[]} for a
// missing secret, 403 {"errors":["permission denied"]} for a bad token,
// 503 when sealed.

const (
	pepper   = "k3H9qvXz0pL2mN8rT5wY7aB4cD6eF1gJ"
	rootTok  = "hvs.CAESIJ2l0vQk7mN3pR8sT1uV4wX6yZ9aB2cD5eF8gH1jK4L"
	roleID   = "3c0b8e7e-1f2a-4b5c-9d8e-7f6a5b4c3d2e"
	secretID = "9f8e7d6c-5b4a-3c2d-1e0f-a9b8c7d6e5f4"
)

type fakeVault struct {
	mu      sync.Mutex
	data    map[string]map[string]any // path under the mount -> data
	tokens  map[string]bool
	sealed  bool
	logins  atomic.Int32
	reads   atomic.Int32
	lastTok string
}

func newFake(t *testing.T) (*fakeVault, *httptest.Server) {
	testenv.RecordSecret(pepper, rootTok, roleID, secretID)
	f := &fakeVault{data: map[string]map[string]any{}, tokens: map[string]bool{rootTok: true}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func vaultErr(w http.ResponseWriter, code int, msgs ...string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": append([]string{}, msgs...)})
}

func (f *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sealed {
		vaultErr(w, 503, "Vault is sealed")
		return
	}
	switch {
	case r.Method == http.MethodPut || r.Method == http.MethodPost:
		if r.URL.Path != "/v1/auth/approle/login" {
			vaultErr(w, 405)
			return
		}
		f.logins.Add(1)
		var body struct{ RoleID, SecretID string }
		var raw map[string]string
		if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
			vaultErr(w, 400, "bad body")
			return
		}
		body.RoleID, body.SecretID = raw["role_id"], raw["secret_id"]
		if body.RoleID != roleID || body.SecretID != secretID {
			vaultErr(w, 400, "invalid role or secret ID")
			return
		}
		tok := "hvs.approle-" + time.Now().Format("150405.000000000")
		f.tokens[tok] = true
		_ = json.NewEncoder(w).Encode(map[string]any{"auth": map[string]any{"client_token": tok, "lease_duration": 60, "renewable": true}})
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/secret/data/"):
		f.reads.Add(1)
		f.lastTok = r.Header.Get("X-Vault-Token")
		if !f.tokens[f.lastTok] {
			vaultErr(w, 403, "permission denied")
			return
		}
		d, ok := f.data[strings.TrimPrefix(r.URL.Path, "/v1/secret/data/")]
		if !ok {
			vaultErr(w, 404)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"data": d, "metadata": map[string]any{"version": 1}}})
	default:
		vaultErr(w, 404)
	}
}

func (f *fakeVault) put(path string, d map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data[path] = d
}

func tokenBackend(t *testing.T, addr string, tok *string) *Backend {
	t.Helper()
	b, err := New(Config{Addr: addr, Token: func() ([]byte, error) { return []byte(*tok), nil }, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKVv2ReadWithToken(t *testing.T) {
	f, srv := newFake(t)
	f.put("edgeguard/API_KEY_PEPPER", map[string]any{"value": pepper})
	f.put("edgeguard/NO_FIELD", map[string]any{"other": "x"})
	f.put("edgeguard/NOT_STRING", map[string]any{"value": 42})
	tok := rootTok
	b := tokenBackend(t, srv.URL, &tok)
	ctx := context.Background()
	v, err := b.Lookup(ctx, "API_KEY_PEPPER")
	if err != nil || string(v) != pepper || f.lastTok != rootTok {
		t.Fatalf("%q %v (token sent %q)", v, err, f.lastTok)
	}
	tests := []struct {
		name    string
		want    error
		message string
	}{
		{"MISSING", secrets.ErrNotFound, "MISSING: secret not found"},
		{"NO_FIELD", nil, `NO_FIELD: vault secret secret/data/edgeguard/NO_FIELD has no string field "value"`},
		{"NOT_STRING", nil, `NOT_STRING: vault secret secret/data/edgeguard/NOT_STRING has no string field "value"`},
	}
	for _, tc := range tests {
		_, err := b.Lookup(ctx, tc.name)
		if err == nil || err.Error() != tc.message || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if errors.Is(err, secrets.ErrUnavailable) {
			t.Errorf("%s: classified unavailable", tc.name)
		}
	}
}

func TestForbiddenAfterAFreshTokenIsARefusal(t *testing.T) {
	f, srv := newFake(t)
	f.put("edgeguard/S", map[string]any{"value": pepper})
	tok := "hvs.revoked-token-0123456789abcdef"
	b := tokenBackend(t, srv.URL, &tok)
	_, err := b.Lookup(context.Background(), "S")
	if err == nil || errors.Is(err, secrets.ErrUnavailable) || errors.Is(err, secrets.ErrNotFound) ||
		err.Error() != "S: vault denied reading secret/data/edgeguard/S (403); check the token's policy" {
		t.Fatalf("err %v", err)
	}
	if strings.Contains(err.Error(), tok) {
		t.Fatal("the error carries the token")
	}
	if f.reads.Load() != 2 {
		t.Fatalf("%d reads: want one retry with the token read again", f.reads.Load())
	}
	// the agent renewed the token file: the next lookup reads it again
	tok = rootTok
	if v, err := b.Lookup(context.Background(), "S"); err != nil || string(v) != pepper {
		t.Fatal(err)
	}
}

func TestAppRoleLoginAndRelogin(t *testing.T) {
	f, srv := newFake(t)
	f.put("edgeguard/S", map[string]any{"value": pepper})
	b, err := New(Config{Addr: srv.URL, RoleID: []byte(roleID), SecretID: []byte(secretID), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if v, err := b.Lookup(ctx, "S"); err != nil || string(v) != pepper || f.logins.Load() != 1 {
		t.Fatal(v, err, f.logins.Load())
	}
	if _, err := b.Lookup(ctx, "S"); err != nil || f.logins.Load() != 1 {
		t.Fatal("logged in again without need", err)
	}
	// the token expired: one fresh login, then the read succeeds
	f.mu.Lock()
	f.tokens = map[string]bool{}
	f.mu.Unlock()
	if v, err := b.Lookup(ctx, "S"); err != nil || string(v) != pepper || f.logins.Load() != 2 {
		t.Fatal(v, err, f.logins.Load())
	}
	bad, _ := New(Config{Addr: srv.URL, RoleID: []byte(roleID), SecretID: []byte("wrong-secret-id-0123456789"), Timeout: time.Second})
	_, err = bad.Lookup(ctx, "S")
	if err == nil || errors.Is(err, secrets.ErrUnavailable) || !strings.Contains(err.Error(), "S: vault AppRole login refused (400)") ||
		strings.Contains(err.Error(), "wrong-secret-id") {
		t.Fatalf("err %v", err)
	}
}

func TestUnavailableIsMarkedDownAndFallsBackToTheFile(t *testing.T) {
	f, srv := newFake(t)
	f.put("edgeguard/S", map[string]any{"value": "from-vault-" + pepper})
	now := time.Unix(1_700_000_000, 0)
	tok := rootTok
	b, err := New(Config{Addr: srv.URL, Token: func() ([]byte, error) { return []byte(tok), nil }, Timeout: time.Second, DownFor: 30 * time.Second, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	file := secrets.File{Getenv: func(k string) string {
		if k == "S_FILE" {
			return "/s"
		}
		return ""
	}, ReadFile: func(string) ([]byte, error) { return []byte(pepper), nil }}
	r := secrets.NewResolver(b, file)
	var buf testenv.Buffer
	r.Attach(zerolog.New(&buf).Level(zerolog.DebugLevel))
	ctx := context.Background()

	f.mu.Lock()
	f.sealed = true // 503
	f.mu.Unlock()
	v, from, err := r.Lookup(ctx, "S")
	if err != nil || string(v) != pepper || from != "file" {
		t.Fatalf("sealed vault: %q from %s, %v", v, from, err)
	}
	reads := f.reads.Load()
	f.mu.Lock()
	f.sealed = false
	f.mu.Unlock()
	if _, from, _ := r.Lookup(ctx, "S"); from != "file" || f.reads.Load() != reads {
		t.Fatal("vault asked again within DownFor")
	}
	now = now.Add(31 * time.Second)
	if v, from, err := r.Lookup(ctx, "S"); err != nil || from != "vault" || string(v) != "from-vault-"+pepper {
		t.Fatal("vault not asked again after DownFor", from, err)
	}
	// unreachable: connection refused
	srv.Close()
	now = now.Add(time.Hour)
	if _, from, err := r.Lookup(ctx, "S"); err != nil || from != "file" {
		t.Fatal("unreachable vault:", from, err)
	}
	out := buf.String()
	if !strings.Contains(out, `"backend":"vault","outcome":"unavailable"`) || !strings.Contains(out, `"backend":"vault","outcome":"found"`) {
		t.Fatalf("access records:\n%s", out)
	}
	for _, s := range []string{pepper, rootTok} {
		if strings.Contains(out, s) {
			t.Fatalf("the log carries a secret:\n%s", out)
		}
	}
}

func TestTimeoutIsUnavailable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer srv.Close()
	tok := rootTok
	b, err := New(Config{Addr: srv.URL, Token: func() ([]byte, error) { return []byte(tok), nil }, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Lookup(context.Background(), "S")
	if !errors.Is(err, secrets.ErrUnavailable) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err %v", err)
	}
}

func TestFromEnv(t *testing.T) {
	files := map[string]string{"/tok": rootTok + "\n", "/role": roleID, "/sid": secretID, "/ph": "changeme"}
	tests := []struct {
		name string
		env  map[string]string
		want string // error prefix; "" = ok
	}{
		{"token", map[string]string{"VAULT_ADDR": "https://vault:8200", "VAULT_TOKEN_FILE": "/tok"}, ""},
		{"approle", map[string]string{"VAULT_ADDR": "https://vault:8200", "VAULT_ROLE_ID_FILE": "/role", "VAULT_SECRET_ID_FILE": "/sid", "VAULT_MOUNT": "kv", "VAULT_PREFIX": "edgeguard/llm-api"}, ""},
		{"no addr", map[string]string{"VAULT_TOKEN_FILE": "/tok"}, "VAULT_ADDR: required"},
		{"addr with credentials", map[string]string{"VAULT_ADDR": "https://u:p@vault", "VAULT_TOKEN_FILE": "/tok"}, "VAULT_ADDR: "},
		{"no auth", map[string]string{"VAULT_ADDR": "https://vault:8200"}, "VAULT_TOKEN_FILE: "},
		{"inline token ignored", map[string]string{"VAULT_ADDR": "https://vault:8200", "VAULT_TOKEN": rootTok}, "VAULT_TOKEN_FILE: "},
		{"both methods", map[string]string{"VAULT_ADDR": "https://vault:8200", "VAULT_TOKEN_FILE": "/tok", "VAULT_ROLE_ID_FILE": "/role", "VAULT_SECRET_ID_FILE": "/sid"}, "VAULT_TOKEN_FILE: "},
		{"role without secret id", map[string]string{"VAULT_ADDR": "https://vault:8200", "VAULT_ROLE_ID_FILE": "/role"}, "VAULT_ROLE_ID_FILE: "},
		{"unreadable token", map[string]string{"VAULT_ADDR": "https://vault:8200", "VAULT_TOKEN_FILE": "/nope"}, "VAULT_TOKEN_FILE: cannot read /nope"},
		{"placeholder token", map[string]string{"VAULT_ADDR": "https://vault:8200", "VAULT_TOKEN_FILE": "/ph"}, "VAULT_TOKEN_FILE: a placeholder"},
		{"bad mount", map[string]string{"VAULT_ADDR": "https://vault:8200", "VAULT_TOKEN_FILE": "/tok", "VAULT_MOUNT": "../sys"}, "VAULT_MOUNT/VAULT_PREFIX: "},
		{"bad timeout", map[string]string{"VAULT_ADDR": "https://vault:8200", "VAULT_TOKEN_FILE": "/tok", "VAULT_TIMEOUT": "1h"}, "VAULT_TIMEOUT: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := &envconf.Loader{Strict: true, Getenv: func(k string) string { return tc.env[k] }, ReadFile: func(p string) ([]byte, error) {
				if v, ok := files[p]; ok {
					return []byte(v), nil
				}
				return nil, errors.New("no such file")
			}}
			b, err := FromEnv(l)
			if tc.want == "" {
				if err != nil || b.Name() != "vault" {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err %v, want prefix %q", err, tc.want)
			}
			for _, s := range []string{rootTok, secretID} {
				if strings.Contains(err.Error(), s) {
					t.Fatal("the error carries a secret")
				}
			}
		})
	}
}

// Through envconf: SECRETS_SOURCES=vault,file with the vault factory.
func TestEnvconfReadsThroughVault(t *testing.T) {
	f, srv := newFake(t)
	f.put("edgeguard/llm-api/API_KEY_PEPPER", map[string]any{"value": pepper})
	env := map[string]string{"SECRETS_SOURCES": "vault,file", "VAULT_ADDR": srv.URL, "VAULT_TOKEN_FILE": "/tok", "VAULT_PREFIX": "edgeguard/llm-api"}
	l := &envconf.Loader{Getenv: func(k string) string { return env[k] }, ReadFile: func(p string) ([]byte, error) {
		if p == "/tok" {
			return []byte(rootTok), nil
		}
		return nil, errors.New("no such file")
	}, Backends: map[string]func(*envconf.Loader) (secrets.Backend, error){"vault": FromEnv}}
	s, err := l.Service()
	if err != nil {
		t.Fatal(err)
	}
	v, err := l.Secret("API_KEY_PEPPER", envconf.SecretOpts{MinLen: 32, Required: true})
	if err != nil || string(v) != pepper || strings.Join(s.Secrets.Backends(), ",") != "vault,file" {
		t.Fatal(err)
	}
	_, err = l.Secret("INTERNAL_TOKEN", envconf.SecretOpts{Required: true})
	if err == nil || err.Error() != "INTERNAL_TOKEN_FILE: required (not in vault at secret/data/edgeguard/llm-api/INTERNAL_TOKEN, no INTERNAL_TOKEN_FILE set)" {
		t.Fatal(err)
	}
}
