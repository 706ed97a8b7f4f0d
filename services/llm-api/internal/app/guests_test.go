package app_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/pkg/ratelimit"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/app"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/config"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/kctest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keystest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/pgtest"
	"github.com/rs/zerolog"
)

// randomClient is a fresh client address per run (an IPv6 /64 of the
// documentation prefix), so per-address limits on the shared test Redis
// never carry over between runs.
func randomClient() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("2001:db8:%x:%x::1", binary.BigEndian.Uint16(b[:2]), binary.BigEndian.Uint16(b[2:]))
}

type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
	TokenType    string `json:"token_type"`
}

func guestCall(t testing.TB, url, client, body string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if client != "" {
		req.Header.Set("X-Forwarded-For", client)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func refreshBody(tok string) string {
	b, _ := json.Marshal(map[string]string{"refresh_token": tok})
	return string(b)
}

// TestGuestSessionsThroughTheService runs the wired service (PostgreSQL,
// the guest limits on the real Redis, gocloak against the fake Keycloak,
// TRUSTED_PROXIES = loopback) and checks the limits, the session routes, the
// edge identity chain and that no secret reaches the log.
func TestGuestSessionsThroughTheService(t *testing.T) {
	kc := kctest.New(t)
	logs := &testenv.Buffer{}
	idp := jwttest.New(t)
	cfg := testConfig(t, idp, pgtest.Schema(t), redisAddr(t))
	cfg.KeycloakURL, cfg.KeycloakClientSecret = kc.URL, config.Secret(kctest.ServiceSecret)
	cfg.GuestLoginEnabled, cfg.GuestLoginClientID, cfg.GuestLoginClientSecret = true, kctest.GuestClient, config.Secret(kctest.GuestClientSecret)
	cfg.GuestLimitPerIP = []ratelimit.Limit{{Rate: 3, Period: time.Hour}}
	cfg.GuestMaxPerHour = 1_000_000
	cfg.GuestSessionLimitPerIP = []ratelimit.Limit{{Rate: 100, Period: time.Minute}}
	cfg.TrustedProxies = []string{"127.0.0.1"}
	// edge identity on, JWTs too
	dir := t.TempDir()
	if err := edgeid.WriteKeyFiles(filepath.Join(dir, "k"), filepath.Join(dir, "j")); err != nil {
		t.Fatal(err)
	}
	cfg.Auth.EdgeIdentityJWKS, _ = os.ReadFile(filepath.Join(dir, "j"))
	signer, err := edgeid.LoadSigner(filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}

	roles := keystest.NewRoles()
	roles.Set(keys.Owner{Subject: "alice", Username: "alice", Enabled: true, RealmRoles: []string{"user"}})
	a, err := app.New(context.Background(), cfg, zerolog.New(logs).Level(zerolog.DebugLevel), app.Deps{Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	srv := httptest.NewServer(a.Public)
	t.Cleanup(srv.Close)

	client := randomClient()
	var answers []tokenAnswer
	for i := range 3 {
		st, h, b := guestCall(t, srv.URL+"/auth/guest-login", client, "")
		if st != 200 {
			t.Fatalf("login %d: %d %s", i, st, b)
		}
		if h.Get("RateLimit-Remaining") != fmt.Sprint(2-i) {
			t.Fatalf("login %d: RateLimit-Remaining %q", i, h.Get("RateLimit-Remaining"))
		}
		var ta tokenAnswer
		_ = json.Unmarshal(b, &ta)
		answers = append(answers, ta)
	}
	// the same /64 behind the trusted proxy is limited (Redis)
	st, h, b := guestCall(t, srv.URL+"/auth/guest-login", strings.TrimSuffix(client, "1")+"beef", "")
	if st != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Fatalf("fourth login from the /64: %d %s", st, b)
	}
	if n := len(kc.Users()); n != 3 {
		t.Fatalf("%d guests in Keycloak", n)
	}

	st, _, b = guestCall(t, srv.URL+"/auth/refresh", client, refreshBody(answers[0].RefreshToken))
	var next tokenAnswer
	_ = json.Unmarshal(b, &next)
	if st != 200 || next.AccessToken == "" {
		t.Fatalf("refresh: %d %s", st, b)
	}
	if st, _, b := guestCall(t, srv.URL+"/auth/logout", client, refreshBody(next.RefreshToken)); st != 204 {
		t.Fatalf("logout: %d %s", st, b)
	}
	if st, _, _ := guestCall(t, srv.URL+"/auth/refresh", client, refreshBody(next.RefreshToken)); st != 401 {
		t.Fatalf("refresh after logout: %d", st)
	}

	// the key routes: the edge's assertion, or a JWT; forged headers never
	aliceAssert, _ := signer.Sign(&identity.Identity{Subject: "alice", RealmRoles: []string{"user"}, AuthMethod: identity.MethodJWT},
		"llm-api", http.MethodGet, "/auth/api-keys", time.Now())
	if st, _ := call(t, http.MethodGet, srv.URL+"/auth/api-keys", map[string]string{identity.HeaderEdgeIdentity: aliceAssert, "X-User-ID": "bob"}, ""); st != 200 {
		t.Fatalf("assertion: %d", st)
	}
	if st, _ := call(t, http.MethodGet, srv.URL+"/auth/api-keys", map[string]string{"X-User-ID": "alice", "X-Auth-Method": "jwt"}, ""); st != 401 {
		t.Fatalf("forged headers: %d", st)
	}
	if st, _ := call(t, http.MethodGet, srv.URL+"/auth/api-keys", map[string]string{"Authorization": "Bearer " + idp.Token(t, "alice", nil)}, ""); st != 200 {
		t.Fatalf("JWT: %d", st)
	}

	secrets := append(kc.Secrets(), next.AccessToken, next.RefreshToken, aliceAssert)
	for _, ta := range answers {
		secrets = append(secrets, ta.AccessToken, ta.RefreshToken)
	}

	// expired guests go
	if a.Cleaner == nil {
		t.Fatal("no cleaner")
	}
	a.Cleaner.Now = func() time.Time { return time.Now().Add(25 * time.Hour) }
	if res, err := a.Cleaner.Sweep(context.Background()); err != nil || res.Deleted != 3 || len(kc.Users()) != 0 {
		t.Fatalf("cleanup: %+v %v (%d left)", res, err, len(kc.Users()))
	}

	out := logs.String()
	if !strings.Contains(out, "guest created") {
		t.Fatal("no guest logs captured")
	}
	for i, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("secret #%d (%d chars) in the service log", i, len(s))
		}
	}
}
