package keycloak_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/keycloak"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
)

const secret = "s3cret-client-secret-value-0123456789"

// fakeKeycloak serves the token endpoint and the two admin endpoints the
// Source uses, the way Keycloak 26 answers them.
type fakeKeycloak struct {
	mu           sync.Mutex
	traceparents []string // Traceparent of each call
	logins       int
	token        int
	expires      int
	paths        []string
	users        map[string]map[string]any
	roles        map[string][]string
	revoke       bool // answer the next admin call 401
	failWith     int
}

func (f *fakeKeycloak) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paths = append(f.paths, r.URL.EscapedPath())
	f.traceparents = append(f.traceparents, r.Header.Get("Traceparent"))
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/realms/jan/protocol/openid-connect/token" {
		_ = r.ParseForm()
		id, sec, basic := r.BasicAuth() // client_secret_basic, or client_secret_post
		if !basic {
			id, sec = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if r.Method != http.MethodPost || r.PostForm.Get("grant_type") != "client_credentials" ||
			id != "llm-api" || sec != secret {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"unauthorized_client","error_description":"Invalid client or Invalid client credentials"}`))
			return
		}
		f.logins++
		f.token++
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "tok-" + string(rune('0'+f.token)), "expires_in": f.expires, "token_type": "Bearer"})
		return
	}
	if r.Header.Get("Authorization") != "Bearer tok-"+string(rune('0'+f.token)) || f.revoke {
		f.revoke = false
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"HTTP 401 Unauthorized"}`))
		return
	}
	if f.failWith != 0 {
		w.WriteHeader(f.failWith)
		return
	}
	const prefix = "/admin/realms/jan/users/"
	p := r.URL.EscapedPath()
	if !strings.HasPrefix(p, prefix) {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	rest := strings.TrimPrefix(p, prefix)
	id, sub, _ := strings.Cut(rest, "/")
	u, ok := f.users[id]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":"User not found"}`))
		return
	}
	switch sub {
	case "":
		_ = json.NewEncoder(w).Encode(u)
	case "role-mappings/realm/composite":
		var out []map[string]any
		for _, name := range f.roles[id] {
			out = append(out, map[string]any{"id": "r-" + name, "name": name, "composite": false})
		}
		_ = json.NewEncoder(w).Encode(out)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func setup(t *testing.T) (*fakeKeycloak, *keycloak.Source, *time.Time) {
	t.Helper()
	f := &fakeKeycloak{expires: 300,
		users: map[string]map[string]any{
			"u-alice": {"id": "u-alice", "username": "alice", "email": "alice@example.com", "enabled": true},
			"u-off":   {"id": "u-off", "username": "off", "enabled": false},
		},
		roles: map[string][]string{"u-alice": {"user", "offline_access", "default-roles-jan"}},
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	src, err := keycloak.New(keycloak.Config{URL: srv.URL + "/", Realm: "jan", ClientID: "llm-api", ClientSecret: secret,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return f, src, &now
}

func TestOwnerReadsUserAndEffectiveRealmRoles(t *testing.T) {
	_, src, _ := setup(t)
	o, err := src.Owner(context.Background(), "u-alice")
	if err != nil {
		t.Fatal(err)
	}
	if !o.Enabled || o.Username != "alice" || o.Email != "alice@example.com" || strings.Join(o.RealmRoles, ",") != "user,offline_access,default-roles-jan" {
		t.Fatalf("owner %+v", o)
	}
}

func TestDisabledAndDeletedOwners(t *testing.T) {
	_, src, _ := setup(t)
	o, err := src.Owner(context.Background(), "u-off")
	if err != nil || o.Enabled {
		t.Fatalf("disabled: %+v %v", o, err)
	}
	if _, err := src.Owner(context.Background(), "u-gone"); !errors.Is(err, keys.ErrOwnerNotFound) {
		t.Fatalf("deleted: %v", err)
	}
}

func TestServiceAccountTokenIsReusedUntilNearExpiry(t *testing.T) {
	f, src, now := setup(t)
	ctx := context.Background()
	for range 3 {
		if _, err := src.Owner(ctx, "u-alice"); err != nil {
			t.Fatal(err)
		}
	}
	if f.logins != 1 {
		t.Fatalf("%d logins for 3 lookups", f.logins)
	}
	*now = now.Add(269 * time.Second) // 300 s token, 30 s margin
	_, _ = src.Owner(ctx, "u-alice")
	if f.logins != 1 {
		t.Fatalf("logged in again before the margin: %d", f.logins)
	}
	*now = now.Add(2 * time.Second)
	_, _ = src.Owner(ctx, "u-alice")
	if f.logins != 2 {
		t.Fatalf("no new login near expiry: %d", f.logins)
	}
}

func TestRevokedServiceTokenLogsInAgainOnce(t *testing.T) {
	f, src, _ := setup(t)
	ctx := context.Background()
	if _, err := src.Owner(ctx, "u-alice"); err != nil {
		t.Fatal(err)
	}
	f.revoke = true
	if _, err := src.Owner(ctx, "u-alice"); err != nil {
		t.Fatalf("after a 401: %v", err)
	}
	if f.logins != 2 {
		t.Fatalf("logins %d, want 2", f.logins)
	}
}

func TestFailuresAreErrorsWithoutSecrets(t *testing.T) {
	f, _, _ := setup(t)
	srv := httptest.NewServer(f)
	defer srv.Close()
	bad, err := keycloak.New(keycloak.Config{URL: srv.URL, Realm: "jan", ClientID: "llm-api", ClientSecret: "wrong-secret-value"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Owner(context.Background(), "u-alice")
	if err == nil || errors.Is(err, keys.ErrOwnerNotFound) || strings.Contains(err.Error(), "wrong-secret-value") {
		t.Fatalf("bad client secret: %v", err)
	}
}

func TestServerErrorIsNotNotFound(t *testing.T) {
	f, src, _ := setup(t)
	if _, err := src.Owner(context.Background(), "u-alice"); err != nil {
		t.Fatal(err)
	}
	f.failWith = http.StatusInternalServerError
	_, err := src.Owner(context.Background(), "u-alice")
	if err == nil || errors.Is(err, keys.ErrOwnerNotFound) {
		t.Fatalf("500: %v", err)
	}
}

func TestSubjectIsPathEscaped(t *testing.T) {
	f, src, _ := setup(t)
	_, err := src.Owner(context.Background(), "../../../realms/master")
	if !errors.Is(err, keys.ErrOwnerNotFound) {
		t.Fatalf("traversal subject: %v", err)
	}
	for _, p := range f.paths {
		if strings.Contains(p, "/master") && !strings.Contains(p, "%2F") {
			t.Fatalf("subject escaped the users path: %s", p)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []keycloak.Config{
		{URL: "keycloak:8080", Realm: "jan", ClientID: "llm-api", ClientSecret: "x"},
		{URL: "http://u:p@keycloak", Realm: "jan", ClientID: "llm-api", ClientSecret: "x"},
		{URL: "http://keycloak", Realm: "jan/../master", ClientID: "llm-api", ClientSecret: "x"},
		{URL: "http://keycloak", Realm: "jan", ClientID: "llm-api"},
	} {
		if _, err := keycloak.New(c); !errors.Is(err, keycloak.ErrInvalidConfig) {
			t.Errorf("%+v: %v", c.URL, err)
		}
	}
}
