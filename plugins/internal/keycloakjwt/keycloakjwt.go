// Package keycloakjwt is the keycloak-jwt plugin (priority 1455): its Kong
// configuration and its pipeline — the JWT authenticator (a Keycloak access
// token, verified with pkg/jwtauth against the issuer's cached JWKS), then
// package auth's authorize (the route's roles, scopes, auth methods) and
// admit stages (strip client identity headers, the edge assertion, the
// upstream identity headers, the identity recorded in kong.ctx.shared for
// later plugins).
//
// A token that is present but invalid is always 401 — never a fall-through
// to anonymous. credential_optional only lets a request WITHOUT a token pass
// (to keycloak-apikey). "Authorization: Bearer sk_…" is an API key and is
// left to keycloak-apikey.
//
// DPoP (RFC 9449): a token bound to a key (cnf.jkt) is accepted only as
// "Authorization: DPoP <token>" with one valid DPoP proof of that key for
// this request (pkg/dpop: the proof's htu is dpop_public_base_url plus the
// request's path, since TLS ends before Kong), checked on every request —
// the verified-token cache holds the token's identity, never a proof's
// verdict. A bound token sent as a bearer token is refused
// (dpop_downgrade), and with require_dpop so is every unbound one.
package keycloakjwt

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/dpop"
	"github.com/edgeguard/edgeguard/pkg/headername"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
	"github.com/edgeguard/edgeguard/plugins/internal/auditconf"
	"github.com/edgeguard/edgeguard/plugins/internal/auth"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/kongjson"
	"github.com/edgeguard/edgeguard/plugins/internal/pipeline"
	"github.com/edgeguard/edgeguard/plugins/internal/redisconf"
)

// Name is the plugin's Kong name; Priority its Kong priority.
const (
	Name     = "keycloak-jwt"
	Priority = 1455
)

// ErrInvalidConfig is wrapped by every configuration error.
var ErrInvalidConfig = errors.New("invalid keycloak-jwt configuration")

// IssuerConfig is one trusted issuer.
type IssuerConfig struct {
	// Issuer is compared exactly with the token's iss (Keycloak: the public
	// realm URL, https://<host>/realms/jan).
	Issuer string `json:"issuer"`
	// JWKSURL is where the edge fetches the realm's keys (Keycloak: the
	// internal .../protocol/openid-connect/certs); empty: OIDC discovery.
	JWKSURL string `json:"jwks_url"`
}

// Config is keycloak-jwt's Kong configuration, decoded by go-pdk from the
// JSON Kong sends (every field present, unset ones null). Zero values mean
// "default" (see README.md). Kong serves many requests on one Config
// concurrently; the validated form is built once, on the first request.
type Config struct {
	Issuers    []IssuerConfig `json:"issuers"`
	Audiences  []string       `json:"audiences"`
	AllowedAZP []string       `json:"allowed_azp"`
	Algorithms []string       `json:"algorithms"`
	// LeewaySeconds is a pointer so that an explicit 0 differs from unset.
	LeewaySeconds             *int `json:"leeway_seconds"`
	MaxTokenBytes             int  `json:"max_token_bytes"`
	RefreshIntervalSeconds    int  `json:"refresh_interval_seconds"`
	MinRefreshIntervalSeconds int  `json:"min_refresh_interval_seconds"`
	MaxStaleSeconds           int  `json:"max_stale_seconds"`
	JWKSTimeoutMS             int  `json:"jwks_timeout_ms"`
	CacheEntries              int  `json:"cache_entries"`

	// HeaderNames are extra headers that may carry the token ("Bearer x"
	// or the bare token); CookieNames likewise for cookies.
	HeaderNames []string `json:"header_names"`
	CookieNames []string `json:"cookie_names"`
	// CredentialOptional lets a request without any token through
	// (identity headers still stripped), for keycloak-apikey to decide.
	CredentialOptional bool `json:"credential_optional"`
	// HideCredentials removes the token from the upstream request.
	HideCredentials bool `json:"hide_credentials"`

	RequiredRoles  []string `json:"required_roles"`
	RolesMode      string   `json:"roles_mode"`
	ForbiddenRoles []string `json:"forbidden_roles"`
	RequiredScopes []string `json:"required_scopes"`
	AuthMethods    []string `json:"auth_methods"`

	// MaxHeaders bounds the header lines read (default 100, 1..999); more is
	// answered 431, since Kong would silently drop the rest.
	MaxHeaders int `json:"max_headers"`

	// UpstreamName and EdgeSigningKeyFile (together) add X-Edge-Identity,
	// the edge-signed assertion services trust, for the upstream named.
	UpstreamName       string `json:"upstream_name"`
	EdgeSigningKeyFile string `json:"edge_signing_key_file"`

	// RequireDPoP refuses tokens that are not DPoP-bound (dpop_required):
	// only "Authorization: DPoP" with a proof passes. Needs
	// DPoPPublicBaseURL.
	RequireDPoP bool `json:"require_dpop"`
	// DPoPPublicBaseURL is the public scheme, host (and port) clients use —
	// the URL before the TLS-terminating balancer — and any path prefix the
	// balancer removes: a proof's htu must be it plus the request's path.
	// Unset: DPoP-bound tokens are refused (dpop_not_configured).
	DPoPPublicBaseURL string `json:"dpop_public_base_url"`
	// DPoPAlgorithms is the proof algorithm allowlist (default ES256,
	// PS256, RS256, EdDSA; none and HS* never).
	DPoPAlgorithms []string `json:"dpop_algorithms"`
	// DPoPWindowSeconds is how old a proof's iat may be (default 60,
	// 1..300; up to 5 s ahead for clock skew). A proof's jti is remembered
	// as long.
	DPoPWindowSeconds int `json:"dpop_window_seconds"`
	// DPoPRequireNonce requires a server nonce in every proof (RFC 9449
	// §9): a proof without one, or with an expired one, is answered 401
	// use_dpop_nonce with a fresh DPoP-Nonce; accepted requests get a fresh
	// one too. Needs DPoPNonceKeyFile.
	DPoPRequireNonce bool `json:"dpop_require_nonce"`
	// DPoPNonceKeyFile holds the nonce key (at least 32 bytes), the same on
	// every edge node so any node accepts another's nonces.
	DPoPNonceKeyFile string `json:"dpop_nonce_key_file"`
	// DPoPNonceLifetimeSeconds is how long a nonce is valid (default 300,
	// 10..3600).
	DPoPNonceLifetimeSeconds int `json:"dpop_nonce_lifetime_seconds"`
	// DPoPRedis is the replay store shared by every edge node (SET NX PX,
	// one key per proof); unset: this process's memory only (one node).
	DPoPRedis redisconf.Options `json:"dpop_redis"`
	// DPoPRedisTimeoutMS bounds one replay-store call (default 100).
	DPoPRedisTimeoutMS int `json:"dpop_redis_timeout_ms"`
	// DPoPOnRedisError is what happens when DPoPRedis cannot answer:
	// "local" (default: this node's memory decides — replays to the same
	// node are refused, to another node accepted until Redis is back) or
	// "deny" (503 dpop_replay_unavailable).
	DPoPOnRedisError string `json:"dpop_on_redis_error"`

	// Audit sends auth.denied / auth.rate_limited / config.rejected events
	// to the audit stream (package auditconf); absent: audit off.
	Audit *auditconf.Options `json:"audit"`

	rt pipeline.Instance
}

// New returns an empty Config, as go-pdk's constructor wants it.
func New() interface{} { return &Config{} }

// UnmarshalJSON decodes Kong's config JSON through kongjson: a null field
// and a record whose fields are all null (how Kong sends an unset record)
// are unset, as if absent; unknown members such as "__seq__" are ignored.
func (c *Config) UnmarshalJSON(data []byte) error {
	type plain Config // no methods: no recursion
	return kongjson.Unmarshal(data, (*plain)(c))
}

// Authenticator is the JWT authenticator of a provisioned configuration
// (auth.Authenticator).
type Authenticator struct {
	verifier    *jwtauth.Verifier
	headers     []string // lower case
	cookies     []string
	waitTimeout time.Duration

	dpop        *dpopCheck // nil: no dpop_public_base_url
	dpopAlgs    []string   // the challenge's algs
	requireDPoP bool
}

var _ auth.Authenticator = (*Authenticator)(nil)

// Plugin is a provisioned keycloak-jwt configuration: its authenticate and
// authorize stages (the all-in-one plugin composes them too).
type Plugin struct {
	auth.Stages
	authn *Authenticator
}

// Provision validates c and builds its Plugin. The verifier is process-wide
// (jwtauth.Shared, keyed by configuration), so a config change on another
// route or a new instance reuses JWKS caches.
func (c *Config) Provision() (*Plugin, error) {
	bad := func(format string, args ...any) (*Plugin, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	jc := jwtauth.Config{
		Audiences:          c.Audiences,
		AllowedAZP:         c.AllowedAZP,
		Algorithms:         c.Algorithms,
		MaxTokenBytes:      c.MaxTokenBytes,
		RefreshInterval:    seconds(c.RefreshIntervalSeconds),
		MinRefreshInterval: seconds(c.MinRefreshIntervalSeconds),
		MaxStale:           seconds(c.MaxStaleSeconds),
		FetchTimeout:       time.Duration(c.JWKSTimeoutMS) * time.Millisecond,
		CacheEntries:       c.CacheEntries,
		Logger:             c.logger(),
	}
	if c.LeewaySeconds != nil {
		if *c.LeewaySeconds < 0 {
			return bad("leeway_seconds must not be negative")
		}
		jc.Leeway = seconds(*c.LeewaySeconds)
		if jc.Leeway == 0 {
			jc.Leeway = -1 // explicit zero: no leeway
		}
	}
	for _, n := range []int{c.MaxTokenBytes, c.RefreshIntervalSeconds, c.MinRefreshIntervalSeconds, c.MaxStaleSeconds, c.JWKSTimeoutMS} {
		if n < 0 {
			return bad("durations and sizes must not be negative")
		}
	}
	if c.CacheEntries < -1 {
		return bad("cache_entries must be -1 (off), 0 (default) or positive")
	}
	for _, is := range c.Issuers {
		jc.Issuers = append(jc.Issuers, jwtauth.Issuer{Issuer: is.Issuer, JWKSURL: is.JWKSURL})
	}
	v, err := jwtauth.Shared(jc)
	if err != nil {
		return bad("%v", err)
	}
	a := &Authenticator{verifier: v, waitTimeout: jwtauth.DefaultFetchTimeout, requireDPoP: c.RequireDPoP}
	if a.dpop, a.dpopAlgs, err = c.provisionDPoP(jc.Logger); err != nil {
		return bad("%v", err)
	}
	if c.JWKSTimeoutMS > 0 {
		a.waitTimeout = time.Duration(c.JWKSTimeoutMS) * time.Millisecond
	}
	for _, h := range c.HeaderNames {
		if !headername.IsToken(h) || strings.EqualFold(h, "authorization") {
			return bad("header_names: %q is not a header name other than Authorization", h)
		}
		a.headers = append(a.headers, strings.ToLower(h))
	}
	for _, ck := range c.CookieNames {
		if !headername.IsToken(ck) {
			return bad("cookie_names: %q is not a cookie name", ck)
		}
		a.cookies = append(a.cookies, ck)
	}
	authn := auth.Authenticate{
		Authenticator:  a,
		Optional:       c.CredentialOptional,
		HideCredential: c.HideCredentials,
		ScopeChallenge: true,
	}
	if a.requireDPoP {
		authn.MissingChallenge = dpop.Challenge(auth.Realm, "", a.dpopAlgs)
	}
	st, err := auth.NewStages(authn, auth.Options{
		Policy: auth.PolicyOptions{RequiredRoles: c.RequiredRoles, RolesMode: c.RolesMode,
			ForbiddenRoles: c.ForbiddenRoles, RequiredScopes: c.RequiredScopes, AuthMethods: c.AuthMethods},
		UpstreamName: c.UpstreamName, EdgeSigningKeyFile: c.EdgeSigningKeyFile, MaxHeaders: c.MaxHeaders,
	})
	if err != nil {
		return bad("%v", err)
	}
	return &Plugin{Stages: *st, authn: a}, nil
}

func seconds(n int) time.Duration { return time.Duration(n) * time.Second }

func (c *Config) logger() zerolog.Logger { return c.rt.Logger(Name) }

// PluginName is the plugin's Kong name.
func (c *Config) PluginName() string { return Name }

// Pipeline is the plugin's pipeline — authenticate, authorize, admit —
// provisioned once per configuration (pipeline.Instance).
func (c *Config) Pipeline() (*pipeline.Pipeline, error) {
	return c.rt.Get(Name, c.Audit, pipeline.Build(c.Provision, (*Plugin).pipeline))
}

// pipeline is the stand-alone plugin's pipeline of p.
func (p *Plugin) pipeline() *pipeline.Pipeline { return p.Pipeline(Name) }

// Handle runs the plugin on one request of host (tests; Kong runs the same
// pipeline through kongadapter.Access).
func (c *Config) Handle(host exchange.Exchange) pipeline.Outcome { return pipeline.Handle(host, c) }

// Verify verifies the token, then its binding: a DPoP-bound token's proof
// on every request (the token's identity may come from the verified-token
// cache; the proof never does) (auth.Authenticator).
func (a *Authenticator) Verify(r *pipeline.Request, c auth.Credential) (*identity.Identity, pipeline.Result) {
	cred := c.(credential)
	ctx, cancel := context.WithTimeout(context.Background(), a.waitTimeout)
	id, err := a.verifier.Verify(ctx, cred.token)
	cancel()
	if err == nil {
		if res := a.checkBinding(r, cred, id); res.Ends() {
			return nil, res
		}
		return id, pipeline.Next
	}
	reason := jwtauth.ReasonOf(err)
	if reason == jwtauth.ReasonIdPUnavailable || reason == "" { // "": a context error while waiting for keys
		return nil, pipeline.Deny(http.StatusServiceUnavailable, string(jwtauth.ReasonIdPUnavailable), "identity provider unavailable",
			map[string]string{"Retry-After": "5"})
	}
	challenge := auth.ChallengeInvalid
	if cred.dpop {
		challenge = dpop.Challenge(auth.Realm, dpop.ErrorInvalidToken, a.dpopAlgs)
	}
	return nil, pipeline.Deny(http.StatusUnauthorized, string(reason), "invalid token",
		map[string]string{"WWW-Authenticate": challenge})
}
