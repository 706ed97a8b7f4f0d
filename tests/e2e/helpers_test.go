package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/dpop"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
	"github.com/edgeguard/edgeguard/tests/e2e/internal/keycloak"
)

// The realm's contract (docs/architecture.md "Clients and flows" and "Token
// classes").
const (
	audience       = "jan-api"
	clientGuest    = "guest-login"
	clientCLI      = "jan-cli"
	clientAgent    = "jan-agent" // DPoP-bound tokens only
	clientWeb      = "jan-web"
	clientLLMAPI   = "llm-api"
	webRedirectURI = "http://localhost:3000/auth/callback"
)

var allowedAZP = []string{clientCLI, clientAgent, clientWeb, clientGuest}

// suite is one test's view of the running Keycloak. The tests are not
// parallel: the key-rotation test changes the realm's active key, which other
// tests' verifiers would meet as an unknown kid inside their refresh limit.
type suite struct {
	env *keycloak.Env
	kc  *keycloak.Client
	ctx context.Context
}

func newSuite(t *testing.T) *suite {
	t.Helper()
	env := keycloak.Require(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	t.Cleanup(cancel)
	kc := keycloak.NewClient(env)
	kc.Record = used.add
	used.add(string(env.AdminPassword))
	used.add(string(env.LLMAPISecret))
	used.add(string(env.GuestLoginSecret))
	return &suite{env: env, kc: kc, ctx: ctx}
}

// used collects every secret the suites handle (passwords, client secrets,
// tokens); TestMain then checks that none of them is in Keycloak's log.
var used secretSet

type secretSet struct {
	mu sync.Mutex
	s  []string
}

func (u *secretSet) add(s string) {
	if s == "" {
		return
	}
	testenv.RecordSecret(s) // also the whole run's sweep (scripts/test.sh)
	u.mu.Lock()
	u.s = append(u.s, s)
	u.mu.Unlock()
}

func (u *secretSet) all() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.s)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newPassword satisfies the realm's password policy (≥ 12, not the username).
func newPassword() keycloak.Secret {
	pw := "Pw-" + randHex(16)
	used.add(pw)
	return keycloak.Secret(pw)
}

func password(pw keycloak.Secret) []keycloak.Credential {
	return []keycloak.Credential{{Type: "password", Value: pw}}
}

// expectedIssuer is the public realm URL: KEYCLOAK_PUBLIC_URL (Keycloak's
// --hostname) when set, else Keycloak's own loopback URL.
func (s *suite) expectedIssuer() string {
	base := strings.TrimSuffix(os.Getenv("KEYCLOAK_PUBLIC_URL"), "/")
	if base == "" {
		base = s.env.URL
	}
	return base + "/realms/" + s.env.Realm
}

// serviceAccount returns an access token of llm-api's service account.
func (s *suite) serviceAccount(t *testing.T) keycloak.Secret {
	t.Helper()
	tok, err := s.kc.ClientCredentials(s.ctx, clientLLMAPI, s.env.LLMAPISecret)
	if err != nil {
		t.Fatalf("llm-api client credentials: %v", err)
	}
	return keycloak.Secret(tok.AccessToken)
}

// createGuest provisions a guest the way llm-api's guest login will, with
// llm-api's service account: user guest-<random> in group guests (which
// carries role guest) with attribute guest=true, without default-roles-jan
// (and so without role user), with a random password.
func (s *suite) createGuest(t *testing.T) (id, username string, pw keycloak.Secret) {
	t.Helper()
	sa := s.serviceAccount(t)
	username, pw = "guest-"+randHex(8), newPassword()
	id, err := s.kc.CreateUser(s.ctx, sa, keycloak.User{
		Username:    username,
		Enabled:     true,
		Groups:      []string{"/guests"},
		Attributes:  map[string][]string{"guest": {"true"}},
		Credentials: password(pw),
	})
	if err != nil {
		t.Fatalf("service account creates a guest: %v", err)
	}
	t.Cleanup(func() { _ = s.kc.DeleteUser(context.WithoutCancel(s.ctx), id) })
	var mapped []keycloak.Role
	if _, err := s.kc.AdminAs(s.ctx, sa, http.MethodGet, "/users/"+id+"/role-mappings/realm", nil, &mapped); err != nil {
		t.Fatalf("service account reads the guest's roles: %v", err)
	}
	mapped = slices.DeleteFunc(mapped, func(r keycloak.Role) bool { return r.Name != "default-roles-"+s.env.Realm })
	if len(mapped) != 1 {
		t.Fatalf("a new guest should have default-roles-%s mapped, got %v", s.env.Realm, mapped)
	}
	if _, err := s.kc.AdminAs(s.ctx, sa, http.MethodDelete, "/users/"+id+"/role-mappings/realm", mapped, nil); err != nil {
		t.Fatalf("service account removes the default roles: %v", err)
	}
	return id, username, pw
}

// createUser creates a user as the bootstrap admin, with extra realm roles
// mapped on top of the default ones.
func (s *suite) createUser(t *testing.T, roles ...string) (id, username string, pw keycloak.Secret) {
	t.Helper()
	return s.createUserUntil(t, t.Cleanup, roles...)
}

// createUserUntil is createUser with the user's deletion handed to cleanup
// (t.Cleanup, or the end of the run for users shared by several tests).
func (s *suite) createUserUntil(t *testing.T, cleanup func(func()), roles ...string) (id, username string, pw keycloak.Secret) {
	t.Helper()
	tok, err := s.kc.AdminToken(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	username, pw = "user-"+randHex(8), newPassword()
	id, err = s.kc.CreateUser(s.ctx, tok, keycloak.User{Username: username, Enabled: true, Credentials: password(pw)})
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	kc := s.kc
	cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = kc.DeleteUser(ctx, id)
	})
	for _, name := range roles {
		var r keycloak.Role
		if _, err := s.kc.Admin(s.ctx, http.MethodGet, "/roles/"+name, nil, &r); err != nil {
			t.Fatalf("role %s: %v", name, err)
		}
		if _, err := s.kc.Admin(s.ctx, http.MethodPost, "/users/"+id+"/role-mappings/realm", []keycloak.Role{r}, nil); err != nil {
			t.Fatalf("map role %s: %v", name, err)
		}
	}
	return id, username, pw
}

// createTestClient registers a confidential client for this test only (a
// shipped client is never weakened for a test): password grant on, the
// realm's default direct grant flow, full scope, and only the given default
// client scopes — without jan-api-audience unless asked.
func (s *suite) createTestClient(t *testing.T, scopes ...string) (clientID string, secret keycloak.Secret) {
	t.Helper()
	clientID, secret = "e2e-"+randHex(6), keycloak.Secret(randHex(32))
	used.add(string(secret))
	h, err := s.kc.Admin(s.ctx, http.MethodPost, "/clients", map[string]any{
		"clientId":                  clientID,
		"enabled":                   true,
		"publicClient":              false,
		"secret":                    secret,
		"standardFlowEnabled":       false,
		"directAccessGrantsEnabled": true,
		"serviceAccountsEnabled":    false,
		"fullScopeAllowed":          true,
		"defaultClientScopes":       scopes,
		"optionalClientScopes":      []string{},
	}, nil)
	if err != nil {
		t.Fatalf("create test client: %v", err)
	}
	loc := h.Get("Location")
	uuid := loc[strings.LastIndexByte(loc, '/')+1:]
	t.Cleanup(func() {
		_, _ = s.kc.Admin(context.WithoutCancel(s.ctx), http.MethodDelete, "/clients/"+uuid, nil, nil)
	})
	return clientID, secret
}

// countingTransport counts JWKS fetches (requests to .../certs).
type countingTransport struct {
	jwks atomic.Int64
	base http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/protocol/openid-connect/certs") {
		c.jwks.Add(1)
	}
	return c.base.RoundTrip(r)
}

// verifier returns a pkg/jwtauth verifier for the live realm: issuer = the
// public realm URL, keys from the live JWKS on loopback, audience jan-api,
// azp allowlist jan-cli/jan-web/guest-login; edit adjusts the config.
func (s *suite) verifier(t *testing.T, edit func(*jwtauth.Config)) (*jwtauth.Verifier, *countingTransport) {
	t.Helper()
	ct := &countingTransport{base: http.DefaultTransport}
	cfg := jwtauth.Config{
		Issuers:    []jwtauth.Issuer{{Issuer: s.env.Issuer, JWKSURL: s.env.JWKSURL}},
		Audiences:  []string{audience},
		AllowedAZP: allowedAZP,
		HTTPClient: &http.Client{Transport: ct, Timeout: 10 * time.Second},
	}
	if edit != nil {
		edit(&cfg)
	}
	v, err := jwtauth.New(cfg)
	if err != nil {
		t.Fatalf("verifier: %v", err)
	}
	t.Cleanup(v.Close)
	return v, ct
}

// segment decodes one part of a compact JWT without verifying anything: for
// looking at kid and claims the test already verified (or expects refused).
func segment(t *testing.T, token string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS (%d parts)", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatalf("JWT part %d: %v", i, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("JWT part %d: %v", i, err)
	}
	return m
}

func realmRoles(t *testing.T, token string) []string {
	t.Helper()
	var roles []string
	if ra, ok := segment(t, token, 1)["realm_access"].(map[string]any); ok {
		if rs, ok := ra["roles"].([]any); ok {
			for _, r := range rs {
				if s, ok := r.(string); ok {
					roles = append(roles, s)
				}
			}
		}
	}
	return roles
}

// pkce returns a random code verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	verifier = randHex(32)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// deviceLogin runs jan-cli's device flow for username: the device
// authorization and the token polls go to realm (the realm's base URL:
// Keycloak on loopback, or the gateway), the person's browser logs in on
// Keycloak and grants the device.
func (s *suite) deviceLogin(t *testing.T, realm, username string, pw keycloak.Secret) *keycloak.Tokens {
	t.Helper()
	return s.deviceLoginAs(t, realm, clientCLI, username, pw, nil)
}

// deviceLoginAs is deviceLogin for client, every token poll carrying a
// fresh DPoP proof of key for the token endpoint when key is not nil (the
// tokens are then bound to it).
func (s *suite) deviceLoginAs(t *testing.T, realm, client, username string, pw keycloak.Secret, key *dpop.Key) *keycloak.Tokens {
	t.Helper()
	dev := s.deviceStart(t, realm, client)
	firstPoll := time.Now()
	var oe *keycloak.OAuthError
	if _, err := s.devicePoll(t, realm, client, dev.DeviceCode, key); !errors.As(err, &oe) || oe.Code != "authorization_pending" {
		t.Fatalf("poll before approval: %v, want authorization_pending", err)
	}
	s.deviceApprove(t, dev, username, pw)
	// Poll no faster than the server's interval (else slow_down).
	time.Sleep(time.Until(firstPoll.Add(time.Duration(dev.Interval)*time.Second + 200*time.Millisecond)))
	tok, err := s.devicePoll(t, realm, client, dev.DeviceCode, key)
	if err != nil {
		t.Fatalf("poll after approval: %v", err)
	}
	return tok
}

// device is a device authorization answer.
type device struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	Interval                int    `json:"interval"`
}

// deviceStart is the device authorization request of client at realm.
func (s *suite) deviceStart(t *testing.T, realm, client string) device {
	t.Helper()
	var dev device
	resp, err := s.kc.HTTP.PostForm(realm+"/protocol/openid-connect/auth/device", url.Values{"client_id": {client}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("device authorization: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&dev); err != nil {
		t.Fatal(err)
	}
	if dev.VerificationURI != s.env.Issuer+"/device" || dev.UserCode == "" || dev.Interval <= 0 {
		t.Fatalf("device answer: verification_uri %q, user code %t, interval %d", dev.VerificationURI, dev.UserCode != "", dev.Interval)
	}
	if want := dev.VerificationURI + "?user_code=" + url.QueryEscape(dev.UserCode); dev.VerificationURIComplete != want {
		t.Fatalf("verification_uri_complete %q, want %q", dev.VerificationURIComplete, want)
	}
	return dev
}

// devicePoll polls realm's token endpoint once for the device code, with a
// DPoP proof of key for that endpoint when key is not nil.
func (s *suite) devicePoll(t *testing.T, realm, client, deviceCode string, key *dpop.Key) (*keycloak.Tokens, error) {
	t.Helper()
	endpoint := realm + "/protocol/openid-connect/token"
	return s.kc.TokenWith(s.ctx, endpoint, url.Values{
		"grant_type":  {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {deviceCode},
		"client_id":   {client},
	}, proofHeader(t, key, http.MethodPost, endpoint, ""))
}

// proofHeader is a DPoP header with a fresh proof of key (nil: none).
func proofHeader(t *testing.T, key *dpop.Key, method, u, token string) http.Header {
	t.Helper()
	if key == nil {
		return nil
	}
	p, err := key.Proof(method, u, dpop.ProofOptions{AccessToken: token})
	if err != nil {
		t.Fatal(err)
	}
	return http.Header{"DPoP": {p}}
}

// deviceApprove is the person: they open verification_uri_complete (here
// on loopback), log in and grant the device access (Keycloak always asks).
func (s *suite) deviceApprove(t *testing.T, dev device, username string, pw keycloak.Secret) {
	t.Helper()
	b := s.kc.NewBrowser("")
	p, err := b.Get(s.ctx, s.kc.RealmURL()+"/device?user_code="+url.QueryEscape(dev.UserCode))
	if err != nil {
		t.Fatal(err)
	}
	if p, err = b.Login(s.ctx, p, username, pw); err != nil {
		t.Fatal(err)
	}
	if p.Status != http.StatusOK {
		t.Fatalf("device approval: status %d", p.Status)
	}
	if p, err = b.Submit(s.ctx, p, "/login-actions/consent", url.Values{"accept": {"Yes"}}); err != nil {
		t.Fatal(err)
	}
	if p.Status != http.StatusOK {
		t.Fatalf("device consent: status %d", p.Status)
	}
}
