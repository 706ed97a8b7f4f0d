// Package keycloak is the end-to-end suites' client for the real Keycloak
// that scripts/keycloak.sh starts: its settings from the environment, the
// token endpoint, the device and browser (HTML form) logins, and the few admin
// REST calls the suites need, on plain net/http.
//
// It is not for services: llm-api talks to Keycloak with gocloak. Secrets
// (passwords, client secrets, tokens) never appear in its errors or in the
// String forms of its types.
package keycloak

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment variables scripts/keycloak.sh prints and scripts/test.sh exports.
const (
	EnvURL              = "KEYCLOAK_URL"
	EnvIssuer           = "KEYCLOAK_ISSUER"
	EnvJWKSURL          = "KEYCLOAK_JWKS_URL"
	EnvRealm            = "KEYCLOAK_REALM"
	EnvAdminUser        = "KEYCLOAK_ADMIN_USERNAME"
	EnvAdminPassword    = "KEYCLOAK_ADMIN_PASSWORD_FILE"
	EnvGuestLoginSecret = "KEYCLOAK_GUEST_LOGIN_CLIENT_SECRET_FILE"
	EnvLLMAPISecret     = "KEYCLOAK_LLM_API_CLIENT_SECRET_FILE"
	EnvLogFile          = "KEYCLOAK_LOG_FILE"
)

// ErrNotConfigured means KEYCLOAK_URL is unset: no Keycloak was started.
var ErrNotConfigured = errors.New("KEYCLOAK_URL is unset (scripts/test.sh starts Keycloak with scripts/keycloak.sh)")

// Secret is a string that prints as [redacted].
type Secret string

// String implements fmt.Stringer without revealing the value.
func (Secret) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer without revealing the value.
func (Secret) GoString() string { return "[redacted]" }

// Env is a running Keycloak as scripts/keycloak.sh describes it.
type Env struct {
	URL       string // loopback base URL (admin API, internal OIDC)
	LogFile   string // Keycloak's log (may be empty)
	Issuer    string // the realm's public issuer
	JWKSURL   string // the realm's JWKS on loopback
	Realm     string
	AdminUser string

	AdminPassword    Secret
	GuestLoginSecret Secret
	LLMAPISecret     Secret
}

// FromEnv reads the Keycloak settings from the environment; ErrNotConfigured
// when KEYCLOAK_URL is unset, another error when the rest is incomplete.
func FromEnv() (*Env, error) {
	e := &Env{
		URL:       strings.TrimSuffix(os.Getenv(EnvURL), "/"),
		Issuer:    os.Getenv(EnvIssuer),
		JWKSURL:   os.Getenv(EnvJWKSURL),
		Realm:     os.Getenv(EnvRealm),
		AdminUser: os.Getenv(EnvAdminUser),
		LogFile:   os.Getenv(EnvLogFile),
	}
	if e.URL == "" {
		return nil, ErrNotConfigured
	}
	if e.Realm == "" {
		e.Realm = "jan"
	}
	var missing []string
	for name, v := range map[string]string{EnvIssuer: e.Issuer, EnvJWKSURL: e.JWKSURL, EnvAdminUser: e.AdminUser} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("keycloak env incomplete: %s unset", strings.Join(missing, ", "))
	}
	for _, f := range []struct {
		env string
		dst *Secret
	}{{EnvAdminPassword, &e.AdminPassword}, {EnvGuestLoginSecret, &e.GuestLoginSecret}, {EnvLLMAPISecret, &e.LLMAPISecret}} {
		p := os.Getenv(f.env)
		if p == "" {
			return nil, fmt.Errorf("keycloak env incomplete: %s unset", f.env)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.env, err)
		}
		*f.dst = Secret(strings.TrimSpace(string(b)))
	}
	return e, nil
}

// Require returns the Keycloak of this test run. Without one the test is
// skipped locally and fails under CI=true: CI must never pass by skipping.
func Require(t testing.TB) *Env {
	t.Helper()
	e, err := FromEnv()
	switch {
	case err == nil:
		return e
	case !errors.Is(err, ErrNotConfigured):
		t.Fatalf("Keycloak: %v", err)
	case os.Getenv("CI") == "true":
		t.Fatalf("no Keycloak under CI=true: %v", err)
	default:
		t.Skipf("no Keycloak: %v", err)
	}
	return nil
}

// Tokens is a token endpoint answer.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
	ExpiresIn    int    `json:"expires_in"`
}

// String reports which tokens are present, never the tokens.
func (t Tokens) String() string {
	return fmt.Sprintf("tokens{access:%t id:%t refresh:%t type:%q expires_in:%d}",
		t.AccessToken != "", t.IDToken != "", t.RefreshToken != "", t.TokenType, t.ExpiresIn)
}

// GoString is String: %#v must not print tokens either.
func (t Tokens) GoString() string { return t.String() }

// OAuthError is a non-2xx answer of an OIDC endpoint: its status, OAuth
// error code and Keycloak's error_description (never the rest of the body,
// which may echo input).
type OAuthError struct {
	Status      int
	Code        string
	Description string
}

func (e *OAuthError) Error() string {
	return fmt.Sprintf("keycloak answered %d (error %q: %q)", e.Status, e.Code, e.Description)
}

// StatusError is a non-2xx answer of the admin API.
type StatusError struct {
	Method, Path string
	Status       int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("admin API %s %s: status %d", e.Method, e.Path, e.Status)
}

// Client calls one Keycloak.
type Client struct {
	Env  *Env
	HTTP *http.Client
	// Record, when set, is called with every token the Client receives, so
	// a suite can check that none of them reaches a log.
	Record func(secret string)

	mu       sync.Mutex
	adminTok string
	adminExp time.Time
}

// NewClient returns a Client with a 15 s request timeout.
func NewClient(e *Env) *Client {
	return &Client{Env: e, HTTP: &http.Client{Timeout: 15 * time.Second}}
}

// RealmURL is the realm's base on loopback: <URL>/realms/<realm>.
func (c *Client) RealmURL() string { return c.Env.URL + "/realms/" + c.Env.Realm }

// TokenURL is the realm's token endpoint on loopback.
func (c *Client) TokenURL() string { return c.RealmURL() + "/protocol/openid-connect/token" }

// Token posts form to the realm's token endpoint.
func (c *Client) Token(ctx context.Context, form url.Values) (*Tokens, error) {
	return c.TokenAt(ctx, c.TokenURL(), form)
}

// TokenAt posts form to a token endpoint at another address (the realm
// through the gateway).
func (c *Client) TokenAt(ctx context.Context, endpoint string, form url.Values) (*Tokens, error) {
	return c.TokenWith(ctx, endpoint, form, nil)
}

// TokenWith is TokenAt with extra request headers (a DPoP proof).
func (c *Client) TokenWith(ctx context.Context, endpoint string, form url.Values, header http.Header) (*Tokens, error) {
	var t Tokens
	if err := c.postForm(ctx, endpoint, form, header, &t); err != nil {
		return nil, err
	}
	if c.Record != nil {
		for _, s := range []string{t.AccessToken, t.IDToken, t.RefreshToken} {
			if s != "" {
				c.Record(s)
			}
		}
	}
	return &t, nil
}

// postForm posts a form and decodes a JSON answer into out; non-2xx answers
// become an *OAuthError.
func (c *Client) postForm(ctx context.Context, endpoint string, form url.Values, header http.Header, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(body, &e) // HTML error pages have no code
		return &OAuthError{Status: resp.StatusCode, Code: e.Error, Description: e.Description}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("POST %s: decoding answer: %w", endpoint, err)
	}
	return nil
}

// PasswordGrant logs username in through a client's password grant
// (clientSecret empty for public clients). scope "openid" adds an ID token.
func (c *Client) PasswordGrant(ctx context.Context, clientID string, clientSecret Secret, username string, password Secret, scope string) (*Tokens, error) {
	form := url.Values{
		"grant_type": {"password"},
		"client_id":  {clientID},
		"username":   {username},
		"password":   {string(password)},
	}
	if clientSecret != "" {
		form.Set("client_secret", string(clientSecret))
	}
	if scope != "" {
		form.Set("scope", scope)
	}
	return c.Token(ctx, form)
}

// ClientCredentials gets a service-account token of a confidential client.
func (c *Client) ClientCredentials(ctx context.Context, clientID string, secret Secret) (*Tokens, error) {
	return c.Token(ctx, url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {clientID},
		"client_secret": {string(secret)},
	})
}

// AdminToken returns a master-realm token of the bootstrap admin (cached
// until shortly before it expires).
func (c *Client) AdminToken(ctx context.Context) (Secret, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.adminTok != "" && time.Now().Before(c.adminExp) {
		return Secret(c.adminTok), nil
	}
	t, err := c.TokenAt(ctx, c.Env.URL+"/realms/master/protocol/openid-connect/token", url.Values{
		"grant_type": {"password"},
		"client_id":  {"admin-cli"},
		"username":   {c.Env.AdminUser},
		"password":   {string(c.Env.AdminPassword)},
	})
	if err != nil {
		return "", fmt.Errorf("admin login: %w", err)
	}
	c.adminTok = t.AccessToken
	c.adminExp = time.Now().Add(time.Duration(t.ExpiresIn)*time.Second - 10*time.Second)
	return Secret(c.adminTok), nil
}

// Admin calls the realm's admin API (<URL>/admin/realms/<realm><p>) as the
// bootstrap admin; see AdminAs.
func (c *Client) Admin(ctx context.Context, method, p string, in, out any) (http.Header, error) {
	tok, err := c.AdminToken(ctx)
	if err != nil {
		return nil, err
	}
	return c.AdminAs(ctx, tok, method, p, in, out)
}

// AdminAs calls the realm's admin API with bearer: in (if not nil) is sent as
// JSON, a JSON answer is decoded into out (if not nil). A non-2xx status is a
// *StatusError. p may start with "/../master" style segments only through
// AdminURL; it is relative to the realm.
func (c *Client) AdminAs(ctx context.Context, bearer Secret, method, p string, in, out any) (http.Header, error) {
	return c.AdminURL(ctx, bearer, method, c.Env.URL+"/admin/realms/"+c.Env.Realm+p, in, out)
}

// AdminURL is AdminAs with an absolute URL.
func (c *Client) AdminURL(ctx context.Context, bearer Secret, method, u string, in, out any) (http.Header, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+string(bearer))
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return resp.Header, &StatusError{Method: method, Path: strings.TrimPrefix(u, c.Env.URL), Status: resp.StatusCode}
	}
	if out != nil {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(out); err != nil {
			return resp.Header, fmt.Errorf("%s %s: decoding answer: %w", method, u, err)
		}
	}
	return resp.Header, nil
}

// StatusOf returns the status of a *StatusError or *OAuthError (0 otherwise).
func StatusOf(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	var oe *OAuthError
	if errors.As(err, &oe) {
		return oe.Status
	}
	return 0
}

// User is the part of Keycloak's UserRepresentation the suites use.
type User struct {
	ID          string              `json:"id,omitempty"`
	Username    string              `json:"username"`
	Enabled     bool                `json:"enabled"`
	Email       string              `json:"email,omitempty"`
	Groups      []string            `json:"groups,omitempty"`
	Attributes  map[string][]string `json:"attributes,omitempty"`
	Credentials []Credential        `json:"credentials,omitempty"`
}

// Credential is a password credential of a new user.
type Credential struct {
	Type      string `json:"type"`
	Value     Secret `json:"value"`
	Temporary bool   `json:"temporary"`
}

// Role is the part of a RoleRepresentation the suites use.
type Role struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// CreateUser creates u with bearer's rights and returns its id (from the
// Location header).
func (c *Client) CreateUser(ctx context.Context, bearer Secret, u User) (string, error) {
	h, err := c.AdminAs(ctx, bearer, http.MethodPost, "/users", u, nil)
	if err != nil {
		return "", err
	}
	loc := h.Get("Location")
	if loc == "" {
		return "", errors.New("create user: no Location header")
	}
	return path.Base(loc), nil
}

// DeleteUser deletes a user as the bootstrap admin (a missing user is fine).
func (c *Client) DeleteUser(ctx context.Context, id string) error {
	_, err := c.Admin(ctx, http.MethodDelete, "/users/"+id, nil, nil)
	if StatusOf(err) == http.StatusNotFound {
		return nil
	}
	return err
}

// EffectiveRealmRoles lists the realm roles a user has, composites expanded.
func (c *Client) EffectiveRealmRoles(ctx context.Context, bearer Secret, userID string) ([]string, error) {
	var roles []Role
	if _, err := c.AdminAs(ctx, bearer, http.MethodGet, "/users/"+userID+"/role-mappings/realm/composite", nil, &roles); err != nil {
		return nil, err
	}
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = r.Name
	}
	return names, nil
}

// RealmID returns the realm's internal id (the parent of its components).
func (c *Client) RealmID(ctx context.Context) (string, error) {
	var r struct {
		ID string `json:"id"`
	}
	_, err := c.Admin(ctx, http.MethodGet, "", nil, &r)
	return r.ID, err
}
