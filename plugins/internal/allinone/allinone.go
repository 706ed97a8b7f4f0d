// Package allinone is the logic of the edgeguard plugin (priority 1510): the
// four edge plugins — header-guard → keycloak-jwt → keycloak-apikey →
// redis-ratelimit — in ONE Kong plugin event, so the request's headers are
// read once, the identity passes between the steps in memory, and all
// upstream and response headers are written in one call each. Under Kong,
// where every PDK call is a socket round trip, that halves (or better) the
// edge's cost per request.
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

	"github.com/Kong/go-pdk"
	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/plugins/internal/auditconf"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/headerguard"
	"github.com/edgeguard/edgeguard/plugins/internal/keycloakapikey"
	"github.com/edgeguard/edgeguard/plugins/internal/keycloakjwt"
	"github.com/edgeguard/edgeguard/plugins/internal/kongjson"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginrt"
	"github.com/edgeguard/edgeguard/plugins/internal/redisratelimit"
)

// Name is the plugin's Kong name; Priority its Kong priority (header-guard's:
// it runs first).
const (
	Name     = "edgeguard"
	Priority = 1510
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

// step is one provisioned edge plugin.
type step = pluginrt.Handler

// Plugin is a provisioned configuration: its steps in order.
type Plugin struct {
	steps      []step
	maxHeaders int
}

// Provision validates every section and builds the steps. The first
// section's error names the section.
func (c *Config) Provision() (*Plugin, error) {
	if err := c.Audit.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	// one audit section for the chain: the steps run under this instance
	if (c.JWT != nil && c.JWT.Audit != nil) || (c.APIKey != nil && c.APIKey.Audit != nil) || (c.RateLimit != nil && c.RateLimit.Audit != nil) {
		return nil, fmt.Errorf("%w: audit: set it at the top level of the edgeguard plugin, not inside jwt, apikey or ratelimit", ErrInvalidConfig)
	}
	p := &Plugin{}
	add := func(section string, h step, err error) error {
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalidConfig, section, err)
		}
		p.steps = append(p.steps, h)
		p.maxHeaders = max(p.maxHeaders, h.MaxHeaders())
		return nil
	}
	if c.HeaderGuard != nil {
		g, err := c.HeaderGuard.Provision()
		if err := add("header_guard", g, err); err != nil {
			return nil, err
		}
		// header-guard's limit is the request's limit: the other steps
		// must not read more headers than it allows.
		defer func() { p.maxHeaders = g.MaxHeaders() }()
	}
	if c.JWT != nil {
		j, err := c.JWT.Provision()
		if err := add("jwt", j, err); err != nil {
			return nil, err
		}
	}
	if c.APIKey != nil {
		k, err := c.APIKey.Provision()
		if err := add("apikey", k, err); err != nil {
			return nil, err
		}
	}
	if c.RateLimit != nil {
		r, err := c.RateLimit.Provision()
		if err := add("ratelimit", r, err); err != nil {
			return nil, err
		}
	}
	if len(p.steps) == 0 {
		return nil, fmt.Errorf("%w: no section is configured", ErrInvalidConfig)
	}
	return p, nil
}

// MaxHeaders is the header-line limit the Kong adapter reads with.
func (p *Plugin) MaxHeaders() int { return p.maxHeaders }

// freshChain is implemented by hosts that can be told no identity was
// recorded before this chain (kongadapter.Adapter): the chain's own auth steps are
// the only writers of the edgeguard identity, so reading kong.ctx.shared for
// it would be a wasted PDK round trip.
type freshChain interface{ NoPriorIdentity() }

// Handle runs the steps in order on one exchange; a step that ends the
// request (401, 403, 429, 431…) ends the chain.
func (p *Plugin) Handle(ex exchange.Exchange) {
	if fc, ok := ex.(freshChain); ok {
		fc.NoPriorIdentity()
	}
	for _, s := range p.steps {
		s.Handle(ex)
		if ex.Exited() {
			return
		}
	}
}

// Handle runs the plugin on one request (tests).
func (c *Config) Handle(ex exchange.Exchange) { c.rt.Handle(Name, ex, c.Provision, c.Auditor()) }

// Access is the Kong access-phase handler: one adapter for every step, so
// one header read and one flush.
func (c *Config) Access(kong *pdk.PDK) { c.rt.Access(Name, kong, c.Provision, c.Auditor()) }

// Auditor is the instance's audit emitter source (nil: audit off).
func (c *Config) Auditor() pluginrt.Auditor {
	return auditconf.Auditor(c.Audit, func() zerolog.Logger { return c.rt.Logger(Name) })
}
