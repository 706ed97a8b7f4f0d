// Package keycloakapikey is the keycloak-apikey plugin (priority 1255, after
// keycloak-jwt): its Kong configuration and its pipeline — the API-key
// authenticator (an `sk_…` key: format and checksum checked with no I/O,
// then validated by llm-api's internal endpoint through pkg/apikey's bounded
// cache, with a failure limit per client address, a cap on lookups in
// flight, an optional shared Redis layer and revocations over Redis
// pub/sub), then package auth's authorize and admit stages.
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

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/apikey"
	"github.com/edgeguard/edgeguard/pkg/headername"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/ratelimit"
	"github.com/edgeguard/edgeguard/plugins/internal/auditconf"
	"github.com/edgeguard/edgeguard/plugins/internal/auth"
	"github.com/edgeguard/edgeguard/plugins/internal/bearer"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/kongjson"
	"github.com/edgeguard/edgeguard/plugins/internal/pipeline"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginmetrics"
	"github.com/edgeguard/edgeguard/plugins/internal/redisconf"
	"github.com/edgeguard/edgeguard/plugins/internal/secretfile"
)

// Name is the plugin's Kong name; Priority its Kong priority.
const (
	Name     = "keycloak-apikey"
	Priority = 1255
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

// keyValidator is what the plugin needs of pkg/apikey's Validator.
type keyValidator interface {
	Cached(apikey.Key) (*identity.Identity, bool)
	Validate(ctx context.Context, clientIP string, k apikey.Key) (*identity.Identity, error)
}

// Authenticator is the API-key authenticator of a provisioned
// configuration (auth.Authenticator).
type Authenticator struct {
	validator   keyValidator
	headers     []string // lower case, besides x-api-key and authorization
	waitTimeout time.Duration
}

var _ auth.Authenticator = (*Authenticator)(nil)

// Plugin is a provisioned configuration: its authenticate and authorize
// stages (the all-in-one plugin composes them too).
type Plugin struct {
	auth.Stages
	authn *Authenticator
}

func (c *Config) logger() zerolog.Logger { return c.rt.Logger(Name) }

func orTrue(b *bool) bool { return b == nil || *b }

// compile validates everything but the validator connection.
func (c *Config) compile() (*Plugin, error) {
	bad := func(format string, args ...any) (*Plugin, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	a := &Authenticator{waitTimeout: 2 * time.Second}
	for _, h := range c.HeaderNames {
		lh := strings.ToLower(h)
		if !headername.IsToken(h) || lh == "authorization" || lh == headerAPIKey || identity.IsReserved(h) {
			return bad("header_names: %q is not an extra credential header", h)
		}
		a.headers = append(a.headers, lh)
	}
	for _, n := range []int{c.TimeoutMS, c.PositiveTTLSeconds, c.NegativeTTLSeconds, c.MaxStaleSeconds, c.CacheEntries, c.MaxInFlight, c.FailuresPerMinute} {
		if n < 0 {
			return bad("timeouts, TTLs and sizes must not be negative")
		}
	}
	if c.TimeoutMS > 0 {
		a.waitTimeout = time.Duration(c.TimeoutMS) * time.Millisecond
	}
	st, err := auth.NewStages(auth.Authenticate{
		Authenticator:  a,
		Optional:       c.CredentialOptional,
		ConfirmPrior:   true,
		HideCredential: orTrue(c.HideCredentials),
		Consumer:       orTrue(c.AuthenticateConsumer),
	}, auth.Options{
		Policy: auth.PolicyOptions{RequiredRoles: c.RequiredRoles, RolesMode: c.RolesMode,
			ForbiddenRoles: c.ForbiddenRoles, RequiredScopes: c.RequiredScopes, AuthMethods: c.AuthMethods},
		UpstreamName: c.UpstreamName, EdgeSigningKeyFile: c.EdgeSigningKeyFile, MaxHeaders: c.MaxHeaders,
	})
	if err != nil {
		return bad("%v", err)
	}
	return &Plugin{Stages: *st, authn: a}, nil
}

// validatorConfig builds pkg/apikey's configuration (reads the secrets).
func (c *Config) validatorConfig() (apikey.Config, error) {
	if c.ValidateURL == "" || c.InternalTokenFile == "" {
		return apikey.Config{}, fmt.Errorf("%w: validate_url and internal_token_file are required", ErrInvalidConfig)
	}
	// followed across rotations: a new token file applies within
	// secretfile.SecretCheckInterval, without restarting the plugin server
	token, err := secretfile.SecretFileValue("internal_token_file", c.InternalTokenFile, secretfile.MinInternalToken)
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
	p.authn.validator = v
	return p, nil
}

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

// found is a key and the header it came in.
type found struct {
	raw    string
	header string // lower case
}

// Find finds the API key of a request: X-API-Key, Authorization: Bearer
// (what OpenAI SDKs send), the configured headers. Two different keys, or a
// repeated key header, are a duplicate: never a guess at which counts. A
// JWT or another scheme is not mine (auth.Authenticator).
func (a *Authenticator) Find(h map[string][]string) (auth.Credential, auth.Found) {
	var f found
	st := auth.NotPresent
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
			if st == auth.NotPresent {
				st = auth.NotMine // a JWT or another scheme: not this plugin's
			}
			return true
		}
		if st == auth.Present && f.raw != v {
			return false
		}
		f, st = found{raw: v, header: header}, auth.Present
		return true
	}
	if !consider(headerAPIKey, h[headerAPIKey], false) || !consider("authorization", h["authorization"], true) {
		return nil, auth.Duplicate
	}
	for _, name := range a.headers {
		if !consider(name, h[name], false) {
			return nil, auth.Duplicate
		}
	}
	if st != auth.Present {
		return nil, st
	}
	return f, st
}

// Hide removes the key's header from the upstream request.
func (a *Authenticator) Hide(ex exchange.Exchange, _ map[string][]string, c auth.Credential) {
	ex.ClearUpstreamHeader(c.(found).header)
}

// Verify parses the key (no I/O: garbage never reaches a cache or the
// database) and validates it: from the cache, else through llm-api
// (auth.Authenticator).
func (a *Authenticator) Verify(r *pipeline.Request, c auth.Credential) (*identity.Identity, pipeline.Result) {
	key, err := apikey.Parse(c.(found).raw)
	if err != nil {
		return nil, pipeline.Deny(http.StatusUnauthorized, string(apikey.ReasonOf(err)), "invalid api key",
			map[string]string{"WWW-Authenticate": auth.ChallengeInvalid})
	}
	pluginmetrics.APIKeyLookup()
	if id, ok := a.validator.Cached(key); ok {
		return id, pipeline.Next
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.waitTimeout)
	id, err := a.validator.Validate(ctx, r.ClientIP(), key)
	cancel()
	if err != nil {
		return nil, refuse(err)
	}
	return id, pipeline.Next
}

// refuse answers a failed validation: 401 with the reason for a rejected
// key, 429 with Retry-After for too many failures, 503 when the validator is
// unavailable or busy.
func refuse(err error) pipeline.Result {
	status, code := apikey.HTTPStatus(err)
	h := map[string]string{}
	switch status {
	case http.StatusUnauthorized:
		h["WWW-Authenticate"] = auth.ChallengeInvalid
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
	return pipeline.Deny(status, code, http.StatusText(status), h)
}
