// Package keycloakjwt is the logic of the keycloak-jwt plugin (priority
// 1455): it authenticates a request by its Keycloak access token, verified
// with pkg/jwtauth against the issuer's cached JWKS, applies the route's
// policy (roles, scopes, auth methods), strips every client copy of the
// identity headers, sets the edge's identity headers and records the
// identity in kong.ctx.shared for later plugins.
//
// A token that is present but invalid is always 401 — never a fall-through
// to anonymous. credential_optional only lets a request WITHOUT a token pass
// (to keycloak-apikey). "Authorization: Bearer sk_…" is an API key and is
// left to keycloak-apikey.
//
// It is written against exchange.Exchange: the Kong plugin (Access), the
// all-in-one plugin and tests (Handle) run the same code.
package keycloakjwt

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/Kong/go-pdk"
	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/headername"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
	"github.com/edgeguard/edgeguard/plugins/internal/auditconf"
	"github.com/edgeguard/edgeguard/plugins/internal/edgeassert"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter"
	"github.com/edgeguard/edgeguard/plugins/internal/kongjson"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginrt"
)

// Name is the plugin's Kong name; Priority its Kong priority.
const (
	Name     = "keycloak-jwt"
	Priority = 1455
)

// Client error codes besides jwtauth's reasons and identity's denials.
const (
	CodeCredentialMissing    = "credential_missing"
	CodeDuplicateCredentials = "duplicate_credentials"
	CodeTooManyHeaders       = "too_many_headers"
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

	// Audit sends auth.denied / auth.rate_limited / config.rejected events
	// to the audit stream (package auditconf); absent: audit off.
	Audit *auditconf.Options `json:"audit"`

	rt pluginrt.Instance[*Plugin]
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

// Plugin is a provisioned keycloak-jwt configuration.
type Plugin struct {
	verifier    *jwtauth.Verifier
	assert      *edgeassert.Asserter
	policy      identity.Policy
	headers     []string // lower case
	cookies     []string
	optional    bool
	hide        bool
	maxHeaders  int
	waitTimeout time.Duration
}

// Provision validates c and builds its Plugin. The verifier is process-wide
// (jwtauth.Shared, keyed by configuration), so a config change on another
// route or a new instance reuses JWKS caches.
func (c *Config) Provision() (*Plugin, error) {
	if err := c.Audit.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
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
	p := &Plugin{
		verifier:   v,
		optional:   c.CredentialOptional,
		hide:       c.HideCredentials,
		maxHeaders: c.MaxHeaders,
		policy: identity.Policy{
			RequiredRoles:  c.RequiredRoles,
			RolesMode:      c.RolesMode,
			ForbiddenRoles: c.ForbiddenRoles,
			RequiredScopes: c.RequiredScopes,
			AuthMethods:    c.AuthMethods,
		},
		waitTimeout: jwtauth.DefaultFetchTimeout,
	}
	if c.JWKSTimeoutMS > 0 {
		p.waitTimeout = time.Duration(c.JWKSTimeoutMS) * time.Millisecond
	}
	if err := p.policy.Validate(); err != nil {
		return bad("%v", err)
	}
	if p.assert, err = edgeassert.New(c.UpstreamName, c.EdgeSigningKeyFile); err != nil {
		return bad("%v", err)
	}
	if p.maxHeaders == 0 {
		p.maxHeaders = kongadapter.DefaultMaxHeaders
	}
	if p.maxHeaders < 1 || p.maxHeaders > kongadapter.MaxMaxHeaders {
		return bad("max_headers %d is outside 1..%d", p.maxHeaders, kongadapter.MaxMaxHeaders)
	}
	for _, h := range c.HeaderNames {
		if !headername.IsToken(h) || strings.EqualFold(h, "authorization") {
			return bad("header_names: %q is not a header name other than Authorization", h)
		}
		p.headers = append(p.headers, strings.ToLower(h))
	}
	for _, ck := range c.CookieNames {
		if !headername.IsToken(ck) {
			return bad("cookie_names: %q is not a cookie name", ck)
		}
		p.cookies = append(p.cookies, ck)
	}
	return p, nil
}

func seconds(n int) time.Duration { return time.Duration(n) * time.Second }

func (c *Config) logger() zerolog.Logger { return c.rt.Logger(Name) }

// Handle runs the plugin on one request (the all-in-one plugin, tests).
func (c *Config) Handle(ex exchange.Exchange) { c.rt.Handle(Name, ex, c.Provision, c.Auditor()) }

// Access is the Kong access-phase handler (no Response handler: it would make
// Kong buffer upstream bodies and break streaming).
func (c *Config) Access(kong *pdk.PDK) { c.rt.Access(Name, kong, c.Provision, c.Auditor()) }

// MaxHeaders is the header-line limit the Kong adapter reads with.
func (p *Plugin) MaxHeaders() int { return p.maxHeaders }

// wwwAuthenticate values (RFC 6750 §3).
const (
	challengeMissing = `Bearer realm="edgeguard"`
	challengeInvalid = `Bearer realm="edgeguard", error="invalid_token"`
	challengeRequest = `Bearer realm="edgeguard", error="invalid_request"`
	challengeScope   = `Bearer realm="edgeguard", error="insufficient_scope"`
)

// Handle authenticates one request.
func (p *Plugin) Handle(ex exchange.Exchange) {
	if ex.TooManyHeaders() {
		exchange.Deny(ex, http.StatusRequestHeaderFieldsTooLarge, CodeTooManyHeaders, "request has too many headers", nil)
		return
	}
	headers := ex.Headers()
	cred, status := p.credential(headers)
	switch status {
	case credDuplicate:
		exchange.Deny(ex, http.StatusUnauthorized, CodeDuplicateCredentials, "more than one credential",
			map[string]string{"WWW-Authenticate": challengeRequest})
		return
	case credAbsent:
		if p.optional {
			stripIdentity(ex, headers)
			return
		}
		exchange.Deny(ex, http.StatusUnauthorized, CodeCredentialMissing, "authentication required",
			map[string]string{"WWW-Authenticate": challengeMissing})
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), p.waitTimeout)
	id, err := p.verifier.Verify(ctx, cred.token)
	cancel()
	if err != nil {
		r := jwtauth.ReasonOf(err)
		if r == jwtauth.ReasonIdPUnavailable {
			exchange.Deny(ex, http.StatusServiceUnavailable, string(r), "identity provider unavailable",
				map[string]string{"Retry-After": "5"})
			return
		}
		if r == "" { // a context error while waiting for keys
			exchange.Deny(ex, http.StatusServiceUnavailable, string(jwtauth.ReasonIdPUnavailable), "identity provider unavailable",
				map[string]string{"Retry-After": "5"})
			return
		}
		exchange.Deny(ex, http.StatusUnauthorized, string(r), "invalid token",
			map[string]string{"WWW-Authenticate": challengeInvalid})
		return
	}
	if d := p.policy.Authorize(id); d != identity.Allowed {
		var h map[string]string
		if d == identity.DenyInsufficientScope {
			h = map[string]string{"WWW-Authenticate": challengeScope}
		}
		exchange.Forbid(ex, id, string(d), "access denied", h)
		return
	}
	stripIdentity(ex, headers) // before any set: a later clear would cancel it
	if !p.assert.Add(ex, id) {
		return
	}
	id.UpstreamHeaders(ex.SetUpstreamHeader)
	if p.hide {
		p.hideCredential(ex, headers, cred)
	}
	ex.SetAuthenticated(id)
}

// stripIdentity clears every client copy of a reserved identity header (and
// headers named in Connection) from the upstream request.
func stripIdentity(ex exchange.Exchange, headers map[string][]string) {
	for _, name := range identity.StripList(headers) {
		ex.ClearUpstreamHeader(name)
	}
}

// Auditor is the instance's audit emitter source (nil: audit off).
func (c *Config) Auditor() pluginrt.Auditor {
	return auditconf.Auditor(c.Audit, func() zerolog.Logger { return c.rt.Logger(Name) })
}
