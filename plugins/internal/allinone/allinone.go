// Package allinone is the edgeguard plugin (priority 1510, header-guard's):
// the stages of the four edge plugins — header-guard → keycloak-jwt →
// keycloak-apikey → redis-ratelimit — composed into ONE pipeline in one Kong
// plugin event, so the request's headers are read once, the identity passes
// between the stages in memory, and all upstream and response headers are
// written in one call each. Under Kong, where every PDK call is a socket
// round trip, that halves (or better) the edge's cost per request.
//
// Each section configures its step exactly as the separate plugin's config
// would; an absent section skips that step — null, or a record with no field
// set, which is how Kong sends an unset record (package kongjson makes both
// a nil pointer). The separate plugins stay
// for users who mix them with Kong's built-ins.
package allinone

import (
	"errors"
	"fmt"

	"github.com/edgeguard/edgeguard/plugins/internal/auditconf"
	"github.com/edgeguard/edgeguard/plugins/internal/auth"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/headerguard"
	"github.com/edgeguard/edgeguard/plugins/internal/keycloakapikey"
	"github.com/edgeguard/edgeguard/plugins/internal/keycloakjwt"
	"github.com/edgeguard/edgeguard/plugins/internal/kongjson"
	"github.com/edgeguard/edgeguard/plugins/internal/pipeline"
	"github.com/edgeguard/edgeguard/plugins/internal/redisratelimit"
)

// Name is the plugin's Kong name; Priority its Kong priority (header-guard's:
// it runs first).
const (
	Name     = "edgeguard"
	Priority = headerguard.Priority
)

// ErrInvalidConfig is wrapped by every configuration error.
var ErrInvalidConfig = errors.New("invalid edgeguard configuration")

// Config is the edgeguard plugin's Kong configuration: one record per step,
// each the same fields as the separate plugin. An unset section (null, or
// a record of nulls as Kong sends it: nil after decoding) skips its step; at least one of jwt and apikey must be set unless both are absent
// on purpose (a route with only header hygiene and limits).
type Config struct {
	HeaderGuard *headerguard.Config    `json:"header_guard"`
	JWT         *keycloakjwt.Config    `json:"jwt"`
	APIKey      *keycloakapikey.Config `json:"apikey"`
	RateLimit   *redisratelimit.Config `json:"ratelimit"`

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

// Provision validates every section and composes their stages: header-guard's,
// then the JWT's authenticate and authorize stages, the API key's, one admit
// stage, the limiter. The first section's error names the section.
func (c *Config) Provision() (*pipeline.Pipeline, error) {
	// one audit section for the chain: the stages run under this instance
	if (c.JWT != nil && c.JWT.Audit != nil) || (c.APIKey != nil && c.APIKey.Audit != nil) || (c.RateLimit != nil && c.RateLimit.Audit != nil) {
		return nil, fmt.Errorf("%w: audit: set it at the top level of the edgeguard plugin, not inside jwt, apikey or ratelimit", ErrInvalidConfig)
	}
	var stages []pipeline.Stage
	maxHeaders := 0
	bad := func(section string, err error) error {
		return fmt.Errorf("%w: %s: %w", ErrInvalidConfig, section, err)
	}
	var guard *headerguard.Guard
	if c.HeaderGuard != nil {
		g, err := c.HeaderGuard.Provision()
		if err != nil {
			return nil, bad("header_guard", err)
		}
		guard = g
		stages = append(stages, g.Stages()...)
		maxHeaders = g.MaxHeaders()
	}
	authn := false
	if c.JWT != nil {
		j, err := c.JWT.Provision()
		if err != nil {
			return nil, bad("jwt", err)
		}
		stages = append(stages, j.List()...)
		maxHeaders, authn = max(maxHeaders, j.MaxHeaders), true
	}
	if c.APIKey != nil {
		k, err := c.APIKey.Provision()
		if err != nil {
			return nil, bad("apikey", err)
		}
		stages = append(stages, k.List()...)
		maxHeaders, authn = max(maxHeaders, k.MaxHeaders), true
	}
	if authn {
		stages = append(stages, auth.Admit{})
	}
	if c.RateLimit != nil {
		r, err := c.RateLimit.Provision()
		if err != nil {
			return nil, bad("ratelimit", err)
		}
		stages = append(stages, r)
		maxHeaders = max(maxHeaders, exchange.DefaultMaxHeaders) // the limiter reads with the default
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("%w: no section is configured", ErrInvalidConfig)
	}
	if guard != nil {
		// header-guard's limit is the request's limit: the other stages
		// must not read more headers than it allows.
		maxHeaders = guard.MaxHeaders()
	}
	// Fresh: the plugin runs before every other edgeguard plugin, so only
	// its own stages record an identity (no kong.ctx.shared read).
	return pipeline.New(Name, pipeline.Options{MaxHeaders: maxHeaders, Fresh: true}, stages...), nil
}

// PluginName is the plugin's Kong name.
func (c *Config) PluginName() string { return Name }

// Pipeline is the plugin's pipeline, provisioned once per configuration.
func (c *Config) Pipeline() (*pipeline.Pipeline, error) {
	return c.rt.Get(Name, c.Audit, c.Provision)
}

// Handle runs the plugin on one request of host (tests; Kong runs the same
// pipeline through kongadapter.Access).
func (c *Config) Handle(host exchange.Exchange) pipeline.Outcome { return pipeline.Handle(host, c) }
