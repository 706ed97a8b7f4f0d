package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/edgeguard/edgeguard/pkg/envconf"
	"github.com/edgeguard/edgeguard/pkg/secrets"
	"github.com/edgeguard/edgeguard/pkg/svcauth"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/jwtauth"
	"github.com/edgeguard/edgeguard/pkg/ratelimit"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/app"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/config"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/guests"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keycloak"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/pgtest"
	"github.com/rs/zerolog"
)

// liveKeycloak is the Keycloak scripts/keycloak.sh started (make test).
type liveKeycloak struct {
	url, realm, jwksURL, issuer string
	llmSecret, guestSecret      string
	logFile                     string
}

func requireKeycloak(t *testing.T) *liveKeycloak {
	t.Helper()
	k := &liveKeycloak{url: strings.TrimSuffix(testenv.Require(t, "KEYCLOAK_URL"), "/"), realm: os.Getenv("KEYCLOAK_REALM"),
		jwksURL: os.Getenv("KEYCLOAK_JWKS_URL"), logFile: os.Getenv("KEYCLOAK_LOG_FILE")}
	if k.realm == "" {
		k.realm = "jan"
	}
	if k.jwksURL == "" {
		k.jwksURL = k.url + "/realms/" + k.realm + "/protocol/openid-connect/certs"
	}
	for _, f := range []struct {
		env string
		dst *string
	}{{"KEYCLOAK_LLM_API_CLIENT_SECRET_FILE", &k.llmSecret}, {"KEYCLOAK_GUEST_LOGIN_CLIENT_SECRET_FILE", &k.guestSecret}} {
		b, err := os.ReadFile(testenv.Require(t, f.env))
		if err != nil {
			t.Fatalf("%s: %v", f.env, err)
		}
		*f.dst = strings.TrimSpace(string(b))
	}
	// the realm's public issuer, from discovery on the back channel
	resp, err := http.Get(k.url + "/realms/" + k.realm + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatalf("Keycloak discovery: %v", err)
	}
	defer resp.Body.Close()
	var d struct {
		Issuer string `json:"issuer"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || d.Issuer == "" {
		t.Fatalf("Keycloak discovery: %d %v", resp.StatusCode, err)
	}
	k.issuer = d.Issuer
	return k
}

// ownGuests passes the real directory through, but deletes only guests this
// test created: the realm is shared with other suites, whose guests an
// aged-clock sweep would otherwise take.
type ownGuests struct {
	*keycloak.Source
	mu        sync.Mutex
	mine      map[string]bool
	passwords []string
	skipped   int
}

func (o *ownGuests) CreateGuest(ctx context.Context, username string, pw guests.Secret) (string, error) {
	id, err := o.Source.CreateGuest(ctx, username, pw)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.passwords = append(o.passwords, string(pw))
	if id != "" {
		o.mine[id] = true
	}
	return id, err
}

func (o *ownGuests) DeleteUser(ctx context.Context, id string) error {
	o.mu.Lock()
	mine := o.mine[id]
	if !mine {
		o.skipped++
	}
	o.mu.Unlock()
	if !mine {
		return nil
	}
	return o.Source.DeleteUser(ctx, id)
}

func (o *ownGuests) ids() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for id := range o.mine {
		out = append(out, id)
	}
	return out
}

// TestGuestSessionsOnRealKeycloak runs guest login, refresh, logout and
// cleanup through the wired service against the real Keycloak, PostgreSQL
// and Redis of make test.
func TestGuestSessionsOnRealKeycloak(t *testing.T) {
	kc := requireKeycloak(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	src, err := keycloak.New(keycloak.Config{URL: kc.url, Realm: kc.realm, ClientID: "llm-api", ClientSecret: kc.llmSecret})
	if err != nil {
		t.Fatal(err)
	}
	dir := &ownGuests{Source: src, mine: map[string]bool{}}
	t.Cleanup(func() { // whatever the test left behind
		for _, id := range dir.ids() {
			_ = src.DeleteUser(context.Background(), id)
		}
	})

	logs := &testenv.Buffer{}
	cfg := &config.Config{
		Service: envconf.Service{Strict: true, ListenAddr: "127.0.0.1:0", InternalListenAddr: "127.0.0.1:0", LogLevel: zerolog.DebugLevel,
			TrustedProxies: []string{"127.0.0.1"}},
		DatabaseURL: config.Secret(pgtest.Schema(t)), RedisAddr: redisAddr(t),
		KeycloakURL: kc.url, KeycloakRealm: kc.realm, KeycloakClientID: "llm-api", KeycloakClientSecret: config.Secret(kc.llmSecret),
		KeycloakCacheTTL: time.Second,
		Auth: svcauth.Config{Enabled: true, AcceptJWT: true, Issuer: kc.issuer, JWKSURL: kc.jwksURL, Audience: []string{"jan-api"},
			AllowedAZP: []string{"jan-cli", "jan-web", "guest-login"}, ServiceName: "llm-api"},
		Pepper: config.Secret("live-test-pepper-0123456789abcdef0123456789"), InternalToken: secrets.Static([]byte(internalToken)),
		MaxKeysPerUser: 10, DefaultExpiresDays: 90, MaxExpiresDays: 365, KeyEnv: "live",
		GuestLoginEnabled: true, GuestLoginClientID: "guest-login", GuestLoginClientSecret: config.Secret(kc.guestSecret),
		GuestLimitPerIP: []ratelimit.Limit{{Rate: 5, Period: time.Hour}}, GuestMaxPerHour: 1_000_000,
		GuestSessionLimitPerIP: []ratelimit.Limit{{Rate: 60, Period: time.Minute}},
		GuestTTL:               24 * time.Hour, GuestCleanupInterval: time.Hour,
	}
	a, err := app.New(ctx, cfg, zerolog.New(logs).Level(zerolog.DebugLevel), app.Deps{GuestDirectory: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	srv := httptest.NewServer(a.Public)
	t.Cleanup(srv.Close)
	client := randomClient()

	// guest login
	st, _, b := guestCall(t, srv.URL+"/auth/guest-login", client, "")
	if st != 200 {
		t.Fatalf("guest login: %d %s", st, b)
	}
	var login tokenAnswer
	if err := json.Unmarshal(b, &login); err != nil || login.AccessToken == "" || login.RefreshToken == "" || login.TokenType != "Bearer" || login.ExpiresIn <= 0 {
		t.Fatalf("guest login answer: %v", err)
	}
	ids := dir.ids()
	if len(ids) != 1 {
		t.Fatalf("%d guests created", len(ids))
	}
	guestID := ids[0]

	// the access token verifies against the live JWKS: public issuer,
	// audience jan-api, azp guest-login, role guest and not user
	v, err := jwtauth.New(jwtauth.Config{Issuers: []jwtauth.Issuer{{Issuer: kc.issuer, JWKSURL: kc.jwksURL}},
		Audiences: []string{"jan-api"}, AllowedAZP: []string{"guest-login"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	id, err := v.Verify(ctx, login.AccessToken)
	if err != nil {
		t.Fatalf("guest access token refused: %v", err)
	}
	if id.Subject != guestID || id.ClientID != "guest-login" || id.Issuer != kc.issuer || !strings.HasPrefix(id.Username, "guest-") {
		t.Fatalf("identity: sub %q (want %q) azp %q iss %q user %q", id.Subject, guestID, id.ClientID, id.Issuer, id.Username)
	}
	if !id.HasRole("guest") || id.HasRole("user") || !id.Guest {
		t.Fatalf("guest token roles %v (guest flag %t): want guest and not user", id.RealmRoles, id.Guest)
	}
	// Keycloak agrees: effective roles without user
	owner, err := src.Owner(ctx, guestID)
	if err != nil || !slices.Contains(owner.RealmRoles, "guest") || slices.Contains(owner.RealmRoles, "user") {
		t.Fatalf("guest's effective roles in Keycloak: %v %v", owner.RealmRoles, err)
	}

	// guests cannot manage API keys (forbidden_roles guest)
	if st, b := call(t, http.MethodPost, srv.URL+"/auth/api-keys", map[string]string{"Authorization": "Bearer " + login.AccessToken}, `{"name":"x"}`); st != 403 || !strings.Contains(string(b), `"forbidden_role"`) {
		t.Fatalf("guest on POST /auth/api-keys: %d %s", st, b)
	}

	// refresh works, and rotates
	st, _, b = guestCall(t, srv.URL+"/auth/refresh", client, refreshBody(login.RefreshToken))
	var next tokenAnswer
	_ = json.Unmarshal(b, &next)
	if st != 200 || next.AccessToken == "" || next.RefreshToken == "" {
		t.Fatalf("refresh: %d %s", st, b)
	}
	if id2, err := v.Verify(ctx, next.AccessToken); err != nil || id2.Subject != guestID {
		t.Fatalf("refreshed token: %v", err)
	}
	// logout revokes: refresh after it fails
	if st, _, b := guestCall(t, srv.URL+"/auth/logout", client, refreshBody(next.RefreshToken)); st != 204 {
		t.Fatalf("logout: %d %s", st, b)
	}
	if st, _, b := guestCall(t, srv.URL+"/auth/refresh", client, refreshBody(next.RefreshToken)); st != 401 || !strings.Contains(string(b), "invalid_grant") {
		t.Fatalf("refresh after logout: %d %s", st, b)
	}
	if st, _, _ := guestCall(t, srv.URL+"/auth/refresh", client, refreshBody("eyJhbGciOiJub25lIn0.e30.x")); st != 401 {
		t.Fatalf("garbage refresh token: %d", st)
	}

	// a failed mint leaves no guest behind: a wrong guest-login secret
	bad, err := keycloak.NewGuestTokens(keycloak.Config{URL: kc.url, Realm: kc.realm, ClientID: "guest-login", ClientSecret: "not-the-guest-login-secret"})
	if err != nil {
		t.Fatal(err)
	}
	lim, _ := ratelimit.NewLocal(ratelimit.LocalConfig{})
	failing, err := guests.New(guests.Config{Directory: dir, Issuer: bad, Limiter: lim, Logger: zerolog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := failing.Login(ctx); !errors.Is(err, guests.ErrIdP) {
		t.Fatalf("login with a wrong client secret: %v", err)
	}
	for _, gid := range dir.ids() {
		if gid == guestID {
			continue
		}
		if _, err := src.Owner(ctx, gid); !errors.Is(err, keys.ErrOwnerNotFound) {
			t.Fatalf("the failed guest %s was not deleted: %v", gid, err)
		}
	}

	// cleanup deletes the expired guest (the clock a day and more ahead)
	a.Cleaner.Now = func() time.Time { return time.Now().Add(25 * time.Hour) }
	res, err := a.Cleaner.Sweep(ctx)
	if err != nil || res.Deleted < 1 {
		t.Fatalf("cleanup: %+v %v", res, err)
	}
	if _, err := src.Owner(ctx, guestID); !errors.Is(err, keys.ErrOwnerNotFound) {
		t.Fatalf("expired guest still there: %v", err)
	}
	// and keeps a young one
	a.Cleaner.Now = time.Now
	known := map[string]bool{}
	for _, gid := range dir.ids() {
		known[gid] = true
	}
	st, _, b = guestCall(t, srv.URL+"/auth/guest-login", client, "")
	if st != 200 {
		t.Fatalf("second guest: %d %s", st, b)
	}
	var young tokenAnswer
	_ = json.Unmarshal(b, &young)
	var youngID string
	for _, gid := range dir.ids() {
		if !known[gid] {
			youngID = gid
		}
	}
	if res, err := a.Cleaner.Sweep(ctx); err != nil || res.Listed < 1 {
		t.Fatalf("cleanup of young guests: %+v %v", res, err)
	}
	if _, err := src.Owner(ctx, youngID); err != nil {
		t.Fatalf("a young guest was deleted: %v", err)
	}

	// no secret in our log, nor in Keycloak's
	secrets := append([]string{kc.llmSecret, kc.guestSecret, login.AccessToken, login.RefreshToken, next.AccessToken,
		next.RefreshToken, young.AccessToken, young.RefreshToken}, dir.passwords...)
	out := logs.String()
	var kclog []byte
	if kc.logFile != "" {
		kclog, _ = os.ReadFile(kc.logFile)
	}
	for i, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("secret #%d in llm-api's log", i)
		}
		if kclog != nil && strings.Contains(string(kclog), s) {
			t.Errorf("secret #%d in Keycloak's log", i)
		}
	}
	t.Logf("guest sessions against the live Keycloak in %s", time.Since(start).Round(time.Millisecond))
}
