// Package guests is llm-api's guest sessions: guest login (a throw-away
// Keycloak user guest-<uuid> in group guests, attribute guest=true, role
// guest and never role user, with a random password, whose tokens are minted
// with the password grant of the guest-login client), refresh and logout of
// those sessions, the per-client-IP and global limits on guest creation, and
// the cleanup of expired guests.
//
// It consumes two small interfaces, Directory (the admin API, through the
// llm-api service account) and Issuer (the token endpoint of the guest-login
// client), implemented by package keycloak; it knows nothing of HTTP. It
// never logs or returns a password or token: Secret prints as [secret].
package guests

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/edgeguard/edgeguard/pkg/clientip"
	"github.com/edgeguard/edgeguard/pkg/ratelimit"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
	"github.com/rs/zerolog"
)

// Secret is a password or token. It never prints.
type Secret string

func (Secret) String() string { return "[secret]" }

// GoString keeps %#v from printing the value.
func (Secret) GoString() string { return "guests.Secret([secret])" }

// MarshalJSON never encodes the value (answers copy it into plain strings).
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"[secret]"`), nil }

// Tokens is a token endpoint answer for a guest session.
type Tokens struct {
	AccessToken      Secret
	RefreshToken     Secret
	ExpiresIn        int // seconds
	RefreshExpiresIn int // seconds
	TokenType        string
	// UserID is the guest's Keycloak user id, set by Service.Login (not a
	// secret: it is the guest's subject).
	UserID string
}

// MarshalZerologObject logs which tokens are present, never the tokens.
func (t *Tokens) MarshalZerologObject(e *zerolog.Event) {
	e.Bool("access_token", t.AccessToken != "").Bool("refresh_token", t.RefreshToken != "").
		Int("expires_in", t.ExpiresIn).Str("token_type", t.TokenType)
}

// User is a guest as the directory lists it.
type User struct {
	ID        string
	Username  string
	CreatedAt time.Time
	// Guest reports the attribute guest=true (the listing's filter; checked
	// again before anything is deleted).
	Guest bool
}

// Directory is what guests need of Keycloak's admin API (the llm-api
// service account).
type Directory interface {
	// CreateGuest creates an enabled user username in group guests with
	// attribute guest=true and password, and removes the realm's default
	// roles from it (so it has role guest, from the group, and not user).
	// On any failure after the user exists it returns the user's id with
	// the error, so the caller can delete it.
	CreateGuest(ctx context.Context, username string, password Secret) (id string, err error)
	// DeleteUser deletes a user; ErrUserNotFound when it does not exist.
	DeleteUser(ctx context.Context, id string) error
	// ListGuests returns up to max users with attribute guest=true from
	// offset first, in the directory's stable order.
	ListGuests(ctx context.Context, first, max int) ([]User, error)
}

// Issuer is what guests need of the token endpoint, as the guest-login
// client.
type Issuer interface {
	PasswordGrant(ctx context.Context, username string, password Secret) (*Tokens, error)
	// Refresh answers ErrInvalidGrant for a refresh token Keycloak refuses.
	Refresh(ctx context.Context, refreshToken Secret) (*Tokens, error)
	// Revoke revokes a refresh token (and with it the session's tokens of
	// the guest-login client). Unknown tokens are not an error (RFC 7009).
	Revoke(ctx context.Context, refreshToken Secret) error
}

// Limiter decides rate limits: *ratelimit.Limiter (Redis) or
// *ratelimit.Local.
type Limiter interface {
	Allow(ctx context.Context, subject string, p *ratelimit.Policy) (ratelimit.Result, error)
}

var (
	_ Limiter = (*ratelimit.Limiter)(nil)
	_ Limiter = (*ratelimit.Local)(nil)
)

// Errors.
var (
	// ErrIdP: Keycloak failed or refused a call it should have accepted
	// (answered 502 idp_error; the details are in the log only).
	ErrIdP = errors.New("identity provider error")
	// ErrInvalidGrant: Keycloak refused a refresh token (invalid, expired,
	// revoked, another client's).
	ErrInvalidGrant = errors.New("refresh token refused")
	// ErrUserNotFound: the user does not exist (any more).
	ErrUserNotFound = errors.New("user not found")
	// ErrInvalidConfig is wrapped by New's errors.
	ErrInvalidConfig = errors.New("invalid guests config")
)

// LimitedError is a denial by a rate limit.
type LimitedError struct {
	// Scope is "client_ip" or "global".
	Scope  string
	Result ratelimit.Result
}

func (e *LimitedError) Error() string { return "guest rate limit exceeded: " + e.Scope }

// Config configures a Service.
type Config struct {
	Directory Directory
	Issuer    Issuer
	Limiter   Limiter
	// PerIP limits guest logins per client address (IPv6 per /64);
	// default 5/h.
	PerIP []ratelimit.Limit
	// MaxPerHour is the ceiling of guest logins across all addresses;
	// default 1000.
	MaxPerHour int
	// SessionPerIP limits refresh and logout calls per client address;
	// default 60/min.
	SessionPerIP []ratelimit.Limit
	// Timeout bounds one login (creation, role removal, token, and the
	// deletion after a failure); default 20 s. A login runs to the end even
	// when the client goes away, so no half-made guest is left behind.
	Timeout time.Duration
	Logger  zerolog.Logger
}

// Service runs guest logins and guest sessions.
type Service struct {
	cfg                     Config
	perIP, global, sessions *ratelimit.Policy
	log                     zerolog.Logger
}

// Subjects of the limits (kept apart from the edge's own subjects).
const (
	subjectLoginIP   = "llm-api:guest-login:ip:"
	subjectLoginAll  = "llm-api:guest-login:all"
	subjectSessionIP = "llm-api:guest-session:ip:"
)

// New validates cfg and compiles the limit policies.
func New(cfg Config) (*Service, error) {
	if cfg.Directory == nil || cfg.Issuer == nil || cfg.Limiter == nil {
		return nil, fmt.Errorf("%w: directory, issuer and limiter are required", ErrInvalidConfig)
	}
	if len(cfg.PerIP) == 0 {
		cfg.PerIP = []ratelimit.Limit{{Rate: 5, Period: time.Hour}}
	}
	if cfg.MaxPerHour == 0 {
		cfg.MaxPerHour = 1000
	}
	if len(cfg.SessionPerIP) == 0 {
		cfg.SessionPerIP = []ratelimit.Limit{{Rate: 60, Period: time.Minute}}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 20 * time.Second
	}
	s := &Service{cfg: cfg, log: cfg.Logger.With().Str("component", "guests").Logger()}
	var err error
	if s.perIP, err = ratelimit.NewPolicy(cfg.PerIP...); err != nil {
		return nil, fmt.Errorf("%w: per-ip limit: %w", ErrInvalidConfig, err)
	}
	if s.global, err = ratelimit.NewPolicy(ratelimit.Limit{Name: "hour", Rate: cfg.MaxPerHour, Period: time.Hour}); err != nil {
		return nil, fmt.Errorf("%w: global ceiling: %w", ErrInvalidConfig, err)
	}
	if s.sessions, err = ratelimit.NewPolicy(cfg.SessionPerIP...); err != nil {
		return nil, fmt.Errorf("%w: session limit: %w", ErrInvalidConfig, err)
	}
	return s, nil
}

// clientKey is the limit key of a client address: IPv4 as is, IPv6 per /64.
func clientKey(addr netip.Addr) string {
	if k := clientip.Key(addr); k != "" {
		return k
	}
	return "unknown"
}

// AdmitLogin charges a guest login to the client address (per-IP limit
// first, so one address cannot use up the global ceiling, then the global
// ceiling). It returns the per-IP result (for RateLimit-* headers), or a
// *LimitedError. Other errors are the limiter's failures.
func (s *Service) AdmitLogin(ctx context.Context, client netip.Addr) (ratelimit.Result, error) {
	res, err := s.cfg.Limiter.Allow(ctx, subjectLoginIP+clientKey(client), s.perIP)
	if err != nil {
		return res, err
	}
	if !res.Allowed {
		return res, &LimitedError{Scope: "client_ip", Result: res}
	}
	all, err := s.cfg.Limiter.Allow(ctx, subjectLoginAll, s.global)
	if err != nil {
		return res, err
	}
	if !all.Allowed {
		s.log.Warn().Str("reason", "guest_ceiling").Int("max_per_hour", s.cfg.MaxPerHour).Msg("guest login ceiling reached")
		return all, &LimitedError{Scope: "global", Result: all}
	}
	return res, nil
}

// AdmitSession charges a refresh or logout call to the client address.
func (s *Service) AdmitSession(ctx context.Context, client netip.Addr) (ratelimit.Result, error) {
	res, err := s.cfg.Limiter.Allow(ctx, subjectSessionIP+clientKey(client), s.sessions)
	if err != nil {
		return res, err
	}
	if !res.Allowed {
		return res, &LimitedError{Scope: "client_ip", Result: res}
	}
	return res, nil
}

// PasswordBytes is the entropy of a guest's password (base64url: 43
// characters, within the realm's policy of 12..128).
const PasswordBytes = 32

// UsernamePrefix starts every guest's username.
const UsernamePrefix = "guest-"

// Login creates a guest and mints its tokens. It does not apply the limits
// (AdmitLogin does). Every Keycloak failure is ErrIdP; a guest created before
// a failure is deleted again.
func (s *Service) Login(ctx context.Context) (*Tokens, error) {
	// Detached from the client: a disconnect must not leave a half-made
	// guest behind; bounded by Timeout instead.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
	defer cancel()
	uuid, err := keys.NewUUID()
	if err != nil {
		return nil, err
	}
	username := UsernamePrefix + uuid
	password, err := newPassword()
	if err != nil {
		return nil, err
	}
	log := s.log.With().Str("guest", username).Logger()
	id, err := s.cfg.Directory.CreateGuest(ctx, username, password)
	if err != nil {
		log.Error().Err(err).Msg("guest creation failed")
		if id != "" {
			s.discard(ctx, log, id)
		}
		return nil, fmt.Errorf("%w: create guest", ErrIdP)
	}
	toks, err := s.cfg.Issuer.PasswordGrant(ctx, username, password)
	if err == nil && (toks == nil || toks.AccessToken == "" || toks.RefreshToken == "") {
		err = errors.New("token answer without access or refresh token")
	}
	if err != nil {
		log.Error().Err(err).Str("user_id", id).Msg("guest token failed")
		s.discard(ctx, log, id)
		return nil, fmt.Errorf("%w: guest token", ErrIdP)
	}
	log.Info().Str("user_id", id).Msg("guest created")
	toks.UserID = id
	return toks, nil
}

// discard deletes a guest whose login failed (no orphans).
func (s *Service) discard(ctx context.Context, log zerolog.Logger, id string) {
	if err := s.cfg.Directory.DeleteUser(ctx, id); err != nil && !errors.Is(err, ErrUserNotFound) {
		log.Error().Err(err).Str("user_id", id).Msg("deleting the failed guest failed; the cleanup will remove it")
		return
	}
	log.Info().Str("user_id", id).Msg("failed guest deleted")
}

func newPassword() (Secret, error) {
	var b [PasswordBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("guest password: %w", err)
	}
	return Secret(base64.RawURLEncoding.EncodeToString(b[:])), nil
}

// Refresh runs the refresh grant for a guest session. ErrInvalidGrant for a
// refused token, ErrIdP when Keycloak fails.
func (s *Service) Refresh(ctx context.Context, refreshToken Secret) (*Tokens, error) {
	toks, err := s.cfg.Issuer.Refresh(ctx, refreshToken)
	switch {
	case errors.Is(err, ErrInvalidGrant):
		s.log.Debug().Str("reason", "invalid_grant").Msg("refresh refused")
		return nil, err
	case err != nil:
		s.log.Error().Err(err).Msg("refresh failed")
		return nil, fmt.Errorf("%w: refresh", ErrIdP)
	case toks == nil || toks.AccessToken == "":
		s.log.Error().Msg("refresh answer without an access token")
		return nil, fmt.Errorf("%w: refresh", ErrIdP)
	}
	return toks, nil
}

// Logout revokes a guest session's refresh token. ErrIdP when Keycloak
// fails; an unknown or expired token is not an error.
func (s *Service) Logout(ctx context.Context, refreshToken Secret) error {
	if err := s.cfg.Issuer.Revoke(ctx, refreshToken); err != nil {
		s.log.Error().Err(err).Msg("revocation failed")
		return fmt.Errorf("%w: revoke", ErrIdP)
	}
	return nil
}
