// Package edgehttp authenticates requests in the services behind the edge:
// net/http middleware that asks an Authenticator for the request's identity,
// applies an identity.Policy, puts the *identity.Identity in the request
// context (IdentityFrom) and answers refusals as JSON
// {"error":{"code","message"}} — 401 with WWW-Authenticate, 403 with the
// denial code, 503 when the identity provider is unavailable.
//
// Identity never comes from the X-User-* headers the edge sets for logs: an
// Authenticator verifies a credential (a Keycloak JWT through
// pkg/jwtauth; the edge-signed X-Edge-Identity assertion through
// pkg/edgeid; Chain combines them). The gin adapter lives in the subpackage
// ginedge, so this package does not import gin.
//
// It is not an edge: it does not strip headers, rate-limit or validate API
// keys (the Kong plugins do), and it never logs a credential.
package edgehttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/rs/zerolog"
)

// Authenticator finds and verifies the credential of a request. It returns
// the identity, or an error: ErrNoCredential when the request carries none of
// the credentials it understands, a *Rejection when a credential is present
// but refused (401 or 503 with a stable code), or any other error for a
// technical failure (answered 503 unavailable). It must not read identity
// from request headers set by clients (X-User-*).
type Authenticator interface {
	Authenticate(r *http.Request) (*identity.Identity, error)
}

// ErrNoCredential is returned by an Authenticator for a request that carries
// no credential it understands.
var ErrNoCredential = errors.New("edgehttp: no credential")

// ErrInvalidConfig is wrapped by Config.Validate errors.
var ErrInvalidConfig = errors.New("invalid edgehttp config")

// Error codes of the answers this package writes (besides jwtauth reasons
// and identity denials, which are passed through as codes).
const (
	CodeCredentialMissing    = identity.CodeCredentialMissing
	CodeDuplicateCredentials = identity.CodeDuplicateCredentials
	CodeUnsupportedCred      = "credential_not_accepted"
	CodeUnavailable          = "unavailable"
)

// Rejection is a refused credential: HTTP status (401 or 503), stable code,
// and the WWW-Authenticate error attribute for 401 ("invalid_token",
// "invalid_request"). It carries no part of the credential.
type Rejection struct {
	Status    int
	Code      string
	Message   string
	Challenge string // RFC 6750 error attribute; empty: none
	// Detail says which check failed, for the log only (never sent to the
	// client). It must not contain any part of the credential.
	Detail string
}

func (r *Rejection) Error() string { return "credential rejected: " + r.Code }

// Problem is a refusal the middleware answers: status, code, message and
// headers (WWW-Authenticate, Retry-After).
type Problem struct {
	Status  int
	Code    string
	Message string
	Header  map[string]string
}

// Config configures a Middleware. Realm defaults to "edgeguard".
type Config struct {
	Authenticator Authenticator
	Policy        identity.Policy
	// Optional lets requests without a credential through with no identity
	// in the context (a present but invalid credential is still 401).
	Optional bool
	Realm    string
	// Logger is used when the request context carries no zerolog logger
	// (zerolog.Ctx); with one (a request id), that one is used.
	Logger zerolog.Logger
}

// Validate checks the configuration without side effects.
func (c *Config) Validate() error {
	if c.Authenticator == nil {
		return fmt.Errorf("%w: an authenticator is required", ErrInvalidConfig)
	}
	if err := c.Policy.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	for i := 0; i < len(c.Realm); i++ {
		if ch := c.Realm[i]; ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\' {
			return fmt.Errorf("%w: realm must be printable ASCII without quotes", ErrInvalidConfig)
		}
	}
	return nil
}

// Middleware authenticates and authorizes requests for one route policy.
type Middleware struct {
	cfg Config
	log zerolog.Logger
}

// New validates cfg and returns the middleware.
func New(cfg Config) (*Middleware, error) {
	if cfg.Realm == "" {
		cfg.Realm = "edgeguard"
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Middleware{cfg: cfg, log: cfg.Logger.With().Str("component", "edgehttp").Logger()}, nil
}

func (m *Middleware) challenge(errAttr string) string {
	return identity.Challenge(m.cfg.Realm, errAttr)
}

// Check authenticates r and applies the policy. It returns the identity
// (nil for an optional route without a credential) or the Problem to answer.
func (m *Middleware) Check(r *http.Request) (*identity.Identity, *Problem) {
	id, _, p := m.CheckClient(r)
	return id, p
}

// CheckClient is Check that also returns the client address the credential
// names (the edge assertion's cip claim; the zero Addr otherwise, and with
// a Problem). Adapters for other routers (ginedge) build on it.
func (m *Middleware) CheckClient(r *http.Request) (*identity.Identity, netip.Addr, *Problem) {
	log := &m.log
	if l := zerolog.Ctx(r.Context()); l.GetLevel() != zerolog.Disabled {
		log = l // the request's logger (request id)
	}
	id, addr, err := authenticate(m.cfg.Authenticator, r)
	if err != nil {
		var rej *Rejection
		switch {
		case errors.Is(err, ErrNoCredential):
			if m.cfg.Optional {
				return nil, netip.Addr{}, nil
			}
			return nil, netip.Addr{}, &Problem{Status: http.StatusUnauthorized, Code: CodeCredentialMissing,
				Message: "authentication required",
				Header:  map[string]string{"WWW-Authenticate": m.challenge("")}}
		case errors.As(err, &rej):
			ev := log.Debug().Str("reason", rej.Code).Int("status", rej.Status)
			if rej.Detail != "" {
				ev = ev.Str("detail", rej.Detail)
			}
			ev.Msg("credential rejected")
			p := &Problem{Status: rej.Status, Code: rej.Code, Message: rej.Message}
			if p.Message == "" {
				p.Message = http.StatusText(rej.Status)
			}
			switch rej.Status {
			case http.StatusUnauthorized:
				p.Header = map[string]string{"WWW-Authenticate": m.challenge(rej.Challenge)}
			case http.StatusServiceUnavailable:
				p.Header = map[string]string{"Retry-After": "5"}
			}
			return nil, netip.Addr{}, p
		default:
			log.Warn().Err(err).Msg("authentication failed")
			return nil, netip.Addr{}, &Problem{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
				Message: "authentication unavailable", Header: map[string]string{"Retry-After": "5"}}
		}
	}
	if d := m.cfg.Policy.Authorize(id); d != identity.Allowed {
		log.Debug().Str("reason", string(d)).Msg("access denied")
		p := &Problem{Status: http.StatusForbidden, Code: string(d), Message: "access denied"}
		if d == identity.DenyInsufficientScope {
			p.Header = map[string]string{"WWW-Authenticate": m.challenge(identity.ChallengeInsufficientScope)}
		}
		return nil, netip.Addr{}, p
	}
	return id, addr, nil
}

// Handler wraps next: it runs only for allowed requests, with the identity
// and the credential's client address in the request context.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, addr, p := m.CheckClient(r)
		if p != nil {
			WriteProblem(w, p)
			return
		}
		if id != nil {
			r = r.WithContext(WithIdentity(r.Context(), id))
		}
		if addr.IsValid() {
			r = r.WithContext(WithClientIP(r.Context(), addr))
		}
		next.ServeHTTP(w, r)
	})
}

type ctxKey struct{}

type clientIPKey struct{}

// WithClientIP returns ctx carrying the client address the edge decided
// (the verified assertion's cip claim).
func WithClientIP(ctx context.Context, addr netip.Addr) context.Context {
	return context.WithValue(ctx, clientIPKey{}, addr)
}

// ClientIPFrom returns the client address the middleware put in ctx: the
// edge's, from the verified assertion. It is absent on routes without
// credentials and for credentials that name none (a Keycloak JWT the
// service verified itself); callers then fall back to the peer /
// X-Forwarded-For from TRUSTED_PROXIES (ginedge.ClientIP).
func ClientIPFrom(ctx context.Context) (netip.Addr, bool) {
	a, ok := ctx.Value(clientIPKey{}).(netip.Addr)
	return a, ok && a.IsValid()
}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id *identity.Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// IdentityFrom returns the identity the middleware put in ctx. Treat it as
// immutable: it may be shared with a verified-token cache.
func IdentityFrom(ctx context.Context) (*identity.Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(*identity.Identity)
	return id, ok && id != nil
}

// ErrorBody is the JSON shape of every error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inner object of ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WriteProblem answers p as JSON.
func WriteProblem(w http.ResponseWriter, p *Problem) {
	for k, v := range p.Header {
		w.Header().Set(k, v)
	}
	WriteError(w, p.Status, p.Code, p.Message)
}

// WriteError answers {"error":{"code","message"}} with status.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(ErrorBody{Error: ErrorDetail{Code: code, Message: message}})
}
