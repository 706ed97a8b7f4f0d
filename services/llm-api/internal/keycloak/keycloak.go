// Package keycloak is llm-api's client of Keycloak (gocloak). Source is the
// keys.RoleSource and the guests.Directory on the admin API: the llm-api
// confidential client logs in with client credentials (its service account
// has manage-users, view-users and query-groups on the realm, never
// master-realm admin), keeps the token until shortly before it expires,
// reads a user and the user's effective realm roles (composite role
// mappings, so default-roles-<realm> expands to user, offline_access…), and
// creates, lists and deletes guests. GuestTokens is the guests.Issuer on the
// token endpoint, as the confidential guest-login client.
//
// It does not cache users: wrap the Source in keys.CachedRoles. Errors carry
// HTTP statuses, never Keycloak's response bodies, tokens or secrets.
package keycloak

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/edgeguard/edgeguard/pkg/tracing"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
)

// Config configures a Source.
type Config struct {
	URL          string // Keycloak base URL, e.g. http://keycloak:8080
	Realm        string
	ClientID     string
	ClientSecret string // never logged or put in an error
	Timeout      time.Duration
	Now          func() time.Time
	// GuestGroup is the group guests are created in (default "guests"; it
	// carries the realm role guest).
	GuestGroup string
}

// Source implements keys.RoleSource.
type Source struct {
	cfg Config
	gc  *gocloak.GoCloak

	mu      sync.Mutex
	token   string
	expires time.Time
}

var _ keys.RoleSource = (*Source)(nil)

// ErrInvalidConfig is wrapped by New's errors.
var ErrInvalidConfig = errors.New("invalid keycloak config")

// New checks cfg and returns a Source. No I/O: the first lookup logs in.
func New(cfg Config) (*Source, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return nil, fmt.Errorf("%w: KEYCLOAK_URL must be an absolute http(s) URL without credentials or query", ErrInvalidConfig)
	}
	if !safeName(cfg.Realm) || !safeName(cfg.ClientID) || cfg.ClientSecret == "" {
		return nil, fmt.Errorf("%w: realm and client id ([A-Za-z0-9._-]) and the client secret are required", ErrInvalidConfig)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.GuestGroup == "" {
		cfg.GuestGroup = "guests"
	}
	return &Source{cfg: cfg, gc: newGoCloak(cfg)}, nil
}

// newGoCloak returns a gocloak client that never follows redirects (a
// redirect would carry the bearer token or client secret elsewhere), never
// retries, and never writes to stderr itself: resty's own log lines (the
// "Basic Auth over HTTP" warning, transport errors, which we get back as
// errors anyway) are dropped.
func newGoCloak(cfg Config) *gocloak.GoCloak {
	gc := gocloak.NewClient(strings.TrimRight(cfg.URL, "/"))
	rc := gc.RestyClient()
	rc.SetTimeout(cfg.Timeout)
	rc.SetRedirectPolicy(noRedirects{})
	rc.SetDebug(false)
	rc.SetDisableWarn(true)
	rc.SetLogger(quietLogger{})
	rc.SetRetryCount(0)
	// client spans (pkg/tracing) on calls made for a traced request
	rc.SetTransport(tracing.Transport(http.DefaultTransport.(*http.Transport).Clone()))
	return gc
}

type quietLogger struct{}

func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Debugf(string, ...any) {}

func safeName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

type noRedirects struct{}

func (noRedirects) Apply(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// accessToken returns the service account's token, logging in again when
// it is within 30 s (or a tenth of its lifetime) of expiry.
func (s *Source) accessToken(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	if s.token != "" && now.Before(s.expires) {
		return s.token, nil
	}
	jwt, err := s.gc.LoginClient(ctx, s.cfg.ClientID, s.cfg.ClientSecret, s.cfg.Realm)
	if err != nil {
		return "", fmt.Errorf("keycloak: client login: %s", status(err))
	}
	if jwt == nil || jwt.AccessToken == "" {
		return "", errors.New("keycloak: client login returned no access token")
	}
	life := time.Duration(jwt.ExpiresIn) * time.Second
	margin := min(30*time.Second, life/10)
	s.token, s.expires = jwt.AccessToken, now.Add(life-margin)
	return s.token, nil
}

func (s *Source) dropToken(token string) {
	s.mu.Lock()
	if s.token == token {
		s.token = ""
	}
	s.mu.Unlock()
}

// status reduces a gocloak error to its HTTP status (its messages can carry
// response bodies).
func status(err error) string {
	var ae *gocloak.APIError
	if errors.As(err, &ae) {
		if ae.Code == 0 {
			return "request failed: " + ae.Message
		}
		return fmt.Sprintf("HTTP %d", ae.Code)
	}
	return err.Error()
}

func code(err error) int {
	var ae *gocloak.APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return 0
}

// Owner implements keys.RoleSource: a deleted user (404) is
// keys.ErrOwnerNotFound; a 401 from the admin API drops the cached token
// and retries once.
func (s *Source) Owner(ctx context.Context, subject string) (keys.Owner, error) {
	if subject == "" || len(subject) > 255 {
		return keys.Owner{}, keys.ErrOwnerNotFound
	}
	o, err := s.owner(ctx, subject)
	if code(err) == http.StatusUnauthorized {
		o, err = s.owner(ctx, subject)
	}
	return o, err
}

func (s *Source) owner(ctx context.Context, subject string) (keys.Owner, error) {
	token, err := s.accessToken(ctx)
	if err != nil {
		return keys.Owner{}, err
	}
	id := url.PathEscape(subject)
	u, err := s.gc.GetUserByID(ctx, token, s.cfg.Realm, id)
	if err != nil {
		switch code(err) {
		case http.StatusNotFound:
			return keys.Owner{}, keys.ErrOwnerNotFound
		case http.StatusUnauthorized:
			s.dropToken(token)
		}
		return keys.Owner{}, &lookupError{op: "get user", err: err}
	}
	o := keys.Owner{Subject: subject, Enabled: u.Enabled != nil && *u.Enabled}
	if u.Username != nil {
		o.Username = *u.Username
	}
	if u.Email != nil {
		o.Email = *u.Email
	}
	if !o.Enabled {
		return o, nil // roles do not matter
	}
	roles, err := s.gc.GetCompositeRealmRolesByUserID(ctx, token, s.cfg.Realm, id)
	if err != nil {
		switch code(err) {
		case http.StatusNotFound:
			return keys.Owner{}, keys.ErrOwnerNotFound
		case http.StatusUnauthorized:
			s.dropToken(token)
		}
		return keys.Owner{}, &lookupError{op: "get realm roles", err: err}
	}
	for _, r := range roles {
		if r != nil && r.Name != nil {
			o.RealmRoles = append(o.RealmRoles, *r.Name)
		}
	}
	return o, nil
}

type lookupError struct {
	op  string
	err error
}

func (e *lookupError) Error() string { return "keycloak: " + e.op + ": " + status(e.err) }
func (e *lookupError) Unwrap() error { return e.err }
