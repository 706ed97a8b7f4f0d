// Package keycloakapikey is the logic of the keycloak-apikey plugin
// (priority 1255, after keycloak-jwt): it authenticates a request by an
// `sk_…` API key — format and checksum checked with no I/O, then validated
// by llm-api's internal endpoint through pkg/apikey's bounded cache (with a
// failure limit per client address, a cap on lookups in flight, an optional
// shared Redis layer and revocations over Redis pub/sub) — applies the route
// policy, and records the identity for later plugins.
//
// Keys come from "X-API-Key: sk_…", "Authorization: Bearer sk_…" (what
// OpenAI SDKs send) or configured headers. A key that is present but invalid
// is always 401. When keycloak-jwt already authenticated the request (read
// from kong.ctx.shared, never from headers), a key in the same request must
// be valid too and belong to the same subject.
package keycloakapikey

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Kong/go-pdk"
	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/apikey"
	"github.com/edgeguard/edgeguard/pkg/headername"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/ratelimit"
	"github.com/edgeguard/edgeguard/plugins/internal/auditconf"
	"github.com/edgeguard/edgeguard/plugins/internal/bearer"
	"github.com/edgeguard/edgeguard/plugins/internal/edgeassert"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter"
	"github.com/edgeguard/edgeguard/plugins/internal/kongjson"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginmetrics"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginrt"
	"github.com/edgeguard/edgeguard/plugins/internal/redisconf"
)

// Name is the plugin's Kong name; Priority its Kong priority.
const (
	Name     = "keycloak-apikey"
	Priority = 1255
)

// Client error codes besides pkg/apikey's reasons and identity's denials.
const (
	CodeCredentialMissing    = "credential_missing"
	CodeDuplicateCredentials = "duplicate_credentials"
	CodeSubjectMismatch      = "credential_subject_mismatch"
	CodeTooManyHeaders       = "too_many_headers"
)

// ErrInvalidConfig is wrapped by every configuration error.
var ErrInvalidConfig = errors.New("invalid keycloak-apikey configuration")

// headerAPIKey is the dedicated API-key header (lower case).
const headerAPIKey = "x-api-key"

// Config is keycloak-apikey's Kong configuration (every field present in
// Kong's JSON, unset ones null; zero means the default, see README.md).
type Config struct {
	// ValidateURL is llm-api's internal validate endpoint, e.g.
	// http://llm-api:8081/internal/api-keys/validate. Required.
	ValidateURL string `json:"validate_url"`
	// InternalTokenFile holds the X-Internal-Token secret. Required.
	InternalTokenFile string `json:"internal_token_file"`
	// HeaderNames are extra headers that may carry the key.
	HeaderNames []string `json:"header_names"`
	// CredentialOptional lets a request with no credential at all through.
	CredentialOptional bool `json:"credential_optional"`
	// HideCredentials removes the key from the upstream request (default
	// true: services never need it). A pointer: null means the default.
	HideCredentials *bool `json:"hide_credentials"`
	// AuthenticateConsumer tells Kong the consumer (id = subject, credential
	// = key id) so Kong's own plugins and logs see it (default true).
	AuthenticateConsumer *bool `json:"authenticate_consumer"`

	TimeoutMS          int `json:"timeout_ms"`
	PositiveTTLSeconds int `json:"positive_ttl_seconds"`
	NegativeTTLSeconds int `json:"negative_ttl_seconds"`
	MaxStaleSeconds    int `json:"max_stale_seconds"`
	CacheEntries       int `json:"cache_entries"`
	MaxInFlight        int `json:"max_in_flight"`
	FailuresPerMinute  int `json:"failures_per_minute"`

	// Redis, when set, is the shared cache layer and the revocation channel.
	Redis redisconf.Options `json:"redis"`

	RequiredRoles  []string `json:"required_roles"`
	RolesMode      string   `json:"roles_mode"`
	ForbiddenRoles []string `json:"forbidden_roles"`
	RequiredScopes []string `json:"required_scopes"`
	AuthMethods    []string `json:"auth_methods"`

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

// keyValidator is what the plugin needs of pkg/apikey's Validator.
type keyValidator interface {
	Cached(apikey.Key) (*identity.Identity, bool)
	Validate(ctx context.Context, clientIP string, k apikey.Key) (*identity.Identity, error)
}

// Plugin is a provisioned configuration.
type Plugin struct {
	validator    keyValidator
	assert       *edgeassert.Asserter
	policy       identity.Policy
	headers      []string // lower case, besides x-api-key and authorization
	optional     bool
	hide         bool
	authenticate bool
	waitTimeout  time.Duration
	maxHeaders   int
}

func (c *Config) logger() zerolog.Logger { return c.rt.Logger(Name) }

func orTrue(b *bool) bool { return b == nil || *b }

// compile validates everything but the validator connection.
func (c *Config) compile() (*Plugin, error) {
	bad := func(format string, args ...any) (*Plugin, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	p := &Plugin{
		optional:     c.CredentialOptional,
		hide:         orTrue(c.HideCredentials),
		authenticate: orTrue(c.AuthenticateConsumer),
		maxHeaders:   c.MaxHeaders,
		policy: identity.Policy{
			RequiredRoles:  c.RequiredRoles,
			RolesMode:      c.RolesMode,
			ForbiddenRoles: c.ForbiddenRoles,
			RequiredScopes: c.RequiredScopes,
			AuthMethods:    c.AuthMethods,
		},
	}
	if err := p.policy.Validate(); err != nil {
		return bad("%v", err)
	}
	var err error
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
		lh := strings.ToLower(h)
		if !headername.IsToken(h) || lh == "authorization" || lh == headerAPIKey || identity.IsReserved(h) {
			return bad("header_names: %q is not an extra credential header", h)
		}
		p.headers = append(p.headers, lh)
	}
	for _, n := range []int{c.TimeoutMS, c.PositiveTTLSeconds, c.NegativeTTLSeconds, c.MaxStaleSeconds, c.CacheEntries, c.MaxInFlight, c.FailuresPerMinute} {
		if n < 0 {
			return bad("timeouts, TTLs and sizes must not be negative")
		}
	}
	p.waitTimeout = 2 * time.Second
	if c.TimeoutMS > 0 {
		p.waitTimeout = time.Duration(c.TimeoutMS) * time.Millisecond
	}
	return p, nil
}

// validatorConfig builds pkg/apikey's configuration (reads the secrets).
func (c *Config) validatorConfig() (apikey.Config, error) {
	if c.ValidateURL == "" || c.InternalTokenFile == "" {
		return apikey.Config{}, fmt.Errorf("%w: validate_url and internal_token_file are required", ErrInvalidConfig)
	}
	// followed across rotations: a new token file applies within
	// pluginrt.SecretCheckInterval, without restarting the plugin server
	token, err := pluginrt.SecretFileValue("internal_token_file", c.InternalTokenFile, pluginrt.MinInternalToken)
	if err != nil {
		return apikey.Config{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	log := c.logger()
	vc := apikey.Config{
		URL:                 c.ValidateURL,
		InternalTokenSource: token,
		Timeout:             time.Duration(c.TimeoutMS) * time.Millisecond,
		PositiveTTL:         time.Duration(c.PositiveTTLSeconds) * time.Second,
		NegativeTTL:         time.Duration(c.NegativeTTLSeconds) * time.Second,
		MaxStale:            time.Duration(c.MaxStaleSeconds) * time.Second,
		MaxEntries:          c.CacheEntries,
		MaxInFlight:         c.MaxInFlight,
		Logger:              &log,
	}
	if c.FailuresPerMinute > 0 {
		vc.FailureLimit = ratelimit.Limit{Rate: c.FailuresPerMinute, Period: time.Minute}
	}
	if c.Redis.Set() {
		if vc.Redis, err = redisconf.Client(c.Redis); err != nil {
			return apikey.Config{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	return vc, nil
}

// Provision validates c and builds its Plugin on the process-wide validator
// of its configuration (apikey.Shared): caches and the revocation
// subscription outlive Kong's per-config-change instances.
func (c *Config) Provision() (*Plugin, error) {
	if err := c.Audit.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	p, err := c.compile()
	if err != nil {
		return nil, err
	}
	vc, err := c.validatorConfig()
	if err != nil {
		return nil, err
	}
	v, err := apikey.Shared(vc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	p.validator = v
	return p, nil
}

// Handle runs the plugin on one request (the all-in-one plugin, tests).
func (c *Config) Handle(ex exchange.Exchange) { c.rt.Handle(Name, ex, c.Provision, c.Auditor()) }

// Access is the Kong access-phase handler (no Response handler: it would make
// Kong buffer upstream bodies and break streaming).
func (c *Config) Access(kong *pdk.PDK) { c.rt.Access(Name, kong, c.Provision, c.Auditor()) }

// MaxHeaders is the header-line limit the Kong adapter reads with.
func (p *Plugin) MaxHeaders() int { return p.maxHeaders }

// WWW-Authenticate values (RFC 6750 §3).
const (
	challengeMissing = `Bearer realm="edgeguard"`
	challengeInvalid = `Bearer realm="edgeguard", error="invalid_token"`
	challengeRequest = `Bearer realm="edgeguard", error="invalid_request"`
)

// found is a key and the header it came in.
type found struct {
	raw    string
	header string // lower case
}

type credStatus uint8

const (
	credAbsent credStatus = iota
	credFound
	credDuplicate
)

// credential finds the API key of a request. Two different keys, or a
// repeated key header, are a duplicate: never a guess at which counts.
func (p *Plugin) credential(h map[string][]string) (found, credStatus) {
	var f found
	st := credAbsent
	consider := func(header string, values []string, bearerOnly bool) bool {
		if len(values) > 1 {
			return false
		}
		if len(values) == 0 {
			return true
		}
		v := strings.TrimSpace(values[0])
		if t, ok := bearer.Token(v); ok {
			v = t
		} else if bearerOnly {
			return true
		}
		if !bearer.IsAPIKey(v) {
			return true // a JWT or another scheme: not this plugin's
		}
		if st == credFound && f.raw != v {
			return false
		}
		f, st = found{raw: v, header: header}, credFound
		return true
	}
	if !consider(headerAPIKey, h[headerAPIKey], false) || !consider("authorization", h["authorization"], true) {
		return found{}, credDuplicate
	}
	for _, name := range p.headers {
		if !consider(name, h[name], false) {
			return found{}, credDuplicate
		}
	}
	return f, st
}

// Handle authenticates one request.
func (p *Plugin) Handle(ex exchange.Exchange) {
	if ex.TooManyHeaders() {
		exchange.Deny(ex, http.StatusRequestHeaderFieldsTooLarge, CodeTooManyHeaders, "request has too many headers", nil)
		return
	}
	headers := ex.Headers()
	cred, status := p.credential(headers)
	if status == credDuplicate {
		exchange.Deny(ex, http.StatusUnauthorized, CodeDuplicateCredentials, "more than one credential",
			map[string]string{"WWW-Authenticate": challengeRequest})
		return
	}
	jwtID, jwtAuthed := ex.Authenticated()
	if status == credAbsent {
		switch {
		case jwtAuthed: // keycloak-jwt authenticated the request
		case p.optional:
			stripIdentity(ex, headers)
		default:
			exchange.Deny(ex, http.StatusUnauthorized, CodeCredentialMissing, "authentication required",
				map[string]string{"WWW-Authenticate": challengeMissing})
		}
		return
	}
	key, err := apikey.Parse(cred.raw) // no I/O: garbage never reaches a cache or the database
	if err != nil {
		exchange.Deny(ex, http.StatusUnauthorized, string(apikey.ReasonOf(err)), "invalid api key",
			map[string]string{"WWW-Authenticate": challengeInvalid})
		return
	}
	pluginmetrics.APIKeyLookup()
	id, ok := p.validator.Cached(key)
	if !ok {
		ctx, cancel := context.WithTimeout(context.Background(), p.waitTimeout)
		id, err = p.validator.Validate(ctx, ex.ClientIP(), key)
		cancel()
		if err != nil {
			p.refuse(ex, err)
			return
		}
	}
	if jwtAuthed && jwtID.Subject != id.Subject {
		exchange.Deny(ex, http.StatusUnauthorized, CodeSubjectMismatch, "credentials of different users",
			map[string]string{"WWW-Authenticate": challengeRequest})
		return
	}
	if d := p.policy.Authorize(id); d != identity.Allowed {
		exchange.Forbid(ex, id, string(d), "access denied", nil)
		return
	}
	if p.hide {
		ex.ClearUpstreamHeader(cred.header)
	}
	if jwtAuthed {
		return // the JWT's identity (same subject) stays the request's identity
	}
	stripIdentity(ex, headers) // before any set: a later clear would cancel it
	if !p.assert.Add(ex, id) {
		return
	}
	id.UpstreamHeaders(ex.SetUpstreamHeader)
	ex.SetAuthenticated(id)
	if p.authenticate {
		ex.AuthenticateConsumer(id.Subject, id.Username, id.APIKeyID)
	}
}

// refuse answers a failed validation: 401 with the reason for a rejected
// key, 429 with Retry-After for too many failures, 503 when the validator is
// unavailable or busy.
func (p *Plugin) refuse(ex exchange.Exchange, err error) {
	status, code := apikey.HTTPStatus(err)
	h := map[string]string{}
	switch status {
	case http.StatusUnauthorized:
		h["WWW-Authenticate"] = challengeInvalid
	case http.StatusTooManyRequests:
		var tm *apikey.TooManyFailuresError
		retry := 60
		if errors.As(err, &tm) {
			retry = max(1, int((tm.RetryAfter+time.Second-1)/time.Second))
		}
		h["Retry-After"] = strconv.Itoa(retry)
	case http.StatusServiceUnavailable:
		h["Retry-After"] = "1"
	default:
		status, code = http.StatusServiceUnavailable, "key_validation_unavailable"
	}
	exchange.Deny(ex, status, code, http.StatusText(status), h)
}

// stripIdentity clears every client copy of a reserved identity header.
func stripIdentity(ex exchange.Exchange, headers map[string][]string) {
	for _, name := range identity.StripList(headers) {
		ex.ClearUpstreamHeader(name)
	}
}

// Auditor is the instance's audit emitter source (nil: audit off).
func (c *Config) Auditor() pluginrt.Auditor {
	return auditconf.Auditor(c.Audit, func() zerolog.Logger { return c.rt.Logger(Name) })
}
