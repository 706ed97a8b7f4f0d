// Package redisratelimit is the redis-ratelimit plugin (priority 905, after
// authentication): its Kong configuration and its limit stage — exact GCRA
// limits on Redis through pkg/ratelimit (several windows checked and
// charged in one round trip) keyed on the request's authenticated identity
// (pipeline.Request.Identity: this pipeline's, or kong.ctx.shared — never a
// header), else the client IP (IPv6 per /64), with per-role overrides and a
// fail policy for Redis outages. The key is chosen in Plugin.subject.
//
// It writes RateLimit-Limit/-Remaining/-Reset, OpenAI's
// x-ratelimit-limit-requests/-remaining-requests/-reset-requests (the same
// window as RateLimit-*) and Kong's X-RateLimit-Limit-<Window>/
// X-RateLimit-Remaining-<Window> on every response it lets through (in the
// access phase, in the one batched kong.response.set_headers call), and
// answers 429 rate_limited with Retry-After and the same headers.
package redisratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/clientip"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/ratelimit"
	"github.com/edgeguard/edgeguard/plugins/internal/auditconf"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/kongjson"
	"github.com/edgeguard/edgeguard/plugins/internal/pipeline"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginmetrics"
	"github.com/edgeguard/edgeguard/plugins/internal/redisconf"
)

// Name is the plugin's Kong name; Priority its Kong priority.
const (
	Name     = "redis-ratelimit"
	Priority = 905
)

// Client error codes.
const (
	CodeRateLimited = "rate_limited"
	CodeUnavailable = "rate_limiter_unavailable"
	CodeNoSubject   = "rate_limit_subject_missing"
)

// Modes of limit_by.
const (
	ByIdentity = "identity"
	ByIP       = "ip"
	ByAPIKey   = "api_key"
	ByRoute    = "route"
	byHeader   = "header:"
)

// ErrInvalidConfig is wrapped by every configuration error.
var ErrInvalidConfig = errors.New("invalid redis-ratelimit configuration")

// Limits are requests per window; zero means no limit for that window.
type Limits struct {
	Second int `json:"second"`
	Minute int `json:"minute"`
	Hour   int `json:"hour"`
	Day    int `json:"day"`
}

// RoleOverride replaces the limits for identities carrying Role (the first
// matching override wins), e.g. lower limits for guests.
type RoleOverride struct {
	Role   string `json:"role"`
	Second int    `json:"second"`
	Minute int    `json:"minute"`
	Hour   int    `json:"hour"`
	Day    int    `json:"day"`
}

// Config is redis-ratelimit's Kong configuration (every field present in
// Kong's JSON, unset ones null; zero means the default).
type Config struct {
	Second int `json:"second"`
	Minute int `json:"minute"`
	Hour   int `json:"hour"`
	Day    int `json:"day"`
	// LimitBy: identity (default), ip, api_key, route, or header:<name>.
	LimitBy       string         `json:"limit_by"`
	RoleOverrides []RoleOverride `json:"role_overrides"`
	// Namespace separates (or joins) the counters of plugin instances;
	// default: derived from the limits, so instances with the same limits
	// share a subject's budget and others never collide.
	Namespace string `json:"namespace"`

	// Redis is the connection (addresses, credentials from files, TLS,
	// Sentinel or Cluster); required.
	Redis redisconf.Options `json:"redis"`
	// TimeoutMS bounds one decision's Redis round trip (default 50).
	TimeoutMS int `json:"timeout_ms"`
	// OnRedisError: local (default), allow, deny.
	OnRedisError string `json:"on_redis_error"`
	// HideClientHeaders drops the RateLimit-* / X-RateLimit-* headers,
	// OpenAI's x-ratelimit-*-requests included (the 429's Retry-After
	// stays).
	HideClientHeaders bool `json:"hide_client_headers"`

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

// decider is what the plugin needs of a limiter (ratelimit.Limiter and
// ratelimit.Local both fit).
type decider interface {
	Allow(ctx context.Context, subject string, p *ratelimit.Policy) (ratelimit.Result, error)
}

type rolePolicy struct {
	role   string
	policy *ratelimit.Policy
	ns     string
}

// Plugin is a provisioned configuration.
type Plugin struct {
	limiter   decider
	policy    *ratelimit.Policy
	ns        string
	overrides []rolePolicy
	mode      string
	header    string // lower case, for header:<name>
	hide      bool
	timeout   time.Duration
}

func (c *Config) logger() zerolog.Logger { return c.rt.Logger(Name) }

func policyOf(l Limits) ([]ratelimit.Limit, error) {
	var out []ratelimit.Limit
	for _, w := range []struct {
		n int
		d time.Duration
	}{{l.Second, time.Second}, {l.Minute, time.Minute}, {l.Hour, time.Hour}, {l.Day, 24 * time.Hour}} {
		if w.n < 0 {
			return nil, fmt.Errorf("limits must not be negative")
		}
		if w.n > 0 {
			out = append(out, ratelimit.Limit{Rate: w.n, Period: w.d})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("at least one of second, minute, hour, day is required")
	}
	return out, nil
}

// namespaceOf derives a namespace from the limits and the keying mode.
func namespaceOf(explicit, mode string, p *ratelimit.Policy) string {
	if explicit != "" {
		return explicit
	}
	sum := sha256.Sum256([]byte(mode + "|" + p.String()))
	return hex.EncodeToString(sum[:6])
}

// Provision validates c and builds its Plugin; the Redis limiter is shared
// process-wide by every configuration with the same connection settings.
func (c *Config) Provision() (*Plugin, error) {
	p, err := c.compile()
	if err != nil {
		return nil, err
	}
	lim, err := c.sharedLimiter()
	if err != nil {
		return nil, err
	}
	p.limiter = lim
	return p, nil
}

// compile validates everything but the Redis connection.
func (c *Config) compile() (*Plugin, error) {
	bad := func(format string, args ...any) (*Plugin, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	p := &Plugin{mode: c.LimitBy, hide: c.HideClientHeaders}
	if p.mode == "" {
		p.mode = ByIdentity
	}
	switch {
	case p.mode == ByIdentity, p.mode == ByIP, p.mode == ByAPIKey, p.mode == ByRoute:
	case strings.HasPrefix(p.mode, byHeader):
		p.header = strings.ToLower(strings.TrimPrefix(p.mode, byHeader))
		if p.header == "" || identity.IsReserved(p.header) || strings.ContainsAny(p.header, " \t:") {
			return bad("limit_by %q: header:<name> needs a header name that is not an identity header", c.LimitBy)
		}
		p.mode = byHeader
	default:
		return bad("limit_by %q is not identity, ip, api_key, route or header:<name>", c.LimitBy)
	}
	if p.mode == ByRoute && c.Namespace == "" {
		return bad("limit_by route needs a namespace (e.g. the route name)")
	}
	if strings.ContainsAny(c.Namespace, "{}") || len(c.Namespace) > 64 {
		return bad("namespace must be at most 64 bytes without braces")
	}
	limits, err := policyOf(Limits{c.Second, c.Minute, c.Hour, c.Day})
	if err != nil {
		return bad("%v", err)
	}
	if p.policy, err = ratelimit.NewPolicy(limits...); err != nil {
		return bad("%v", err)
	}
	p.ns = namespaceOf(c.Namespace, p.mode, p.policy)
	for i, o := range c.RoleOverrides {
		if o.Role == "" {
			return bad("role_overrides[%d]: role is required", i)
		}
		l, err := policyOf(Limits{o.Second, o.Minute, o.Hour, o.Day})
		if err != nil {
			return bad("role_overrides[%d]: %v", i, err)
		}
		pol, err := ratelimit.NewPolicy(l...)
		if err != nil {
			return bad("role_overrides[%d]: %v", i, err)
		}
		ns := namespaceOf(c.Namespace, p.mode, pol)
		if c.Namespace != "" {
			ns += ".role-" + o.Role // an explicit namespace still separates policies
		}
		p.overrides = append(p.overrides, rolePolicy{role: o.Role, policy: pol, ns: ns})
	}
	p.timeout = ratelimit.DefaultTimeout
	if c.TimeoutMS < 0 || c.TimeoutMS > 5000 {
		return bad("timeout_ms %d outside 0..5000", c.TimeoutMS)
	}
	if c.TimeoutMS > 0 {
		p.timeout = time.Duration(c.TimeoutMS) * time.Millisecond
	}
	return p, nil
}

// sharedLimiter returns the process-wide limiter of this configuration's
// Redis connection, timeout and fail policy (Kong creates a new plugin
// instance on every config change; the limiter and its pool outlive them).
func (c *Config) sharedLimiter() (*ratelimit.Limiter, error) {
	if !c.Redis.Set() {
		return nil, fmt.Errorf("%w: redis.addresses is required", ErrInvalidConfig)
	}
	client, err := redisconf.Client(c.Redis)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	rc := ratelimit.Config{Client: client, OnRedisError: ratelimit.ErrorPolicy(c.OnRedisError)}
	if c.TimeoutMS > 0 {
		rc.Timeout = time.Duration(c.TimeoutMS) * time.Millisecond
	}
	rc = rc.WithDefaults()
	if err := rc.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	key := fmt.Sprintf("%p|%s|%s", client, rc.Timeout, rc.OnRedisError)
	limiters.Lock()
	defer limiters.Unlock()
	if l := limiters.m[key]; l != nil {
		return l, nil
	}
	log := c.logger()
	rc.Logger = &log
	l, err := ratelimit.New(rc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	limiters.m[key] = l
	return l, nil
}

var limiters = struct {
	sync.Mutex
	m map[string]*ratelimit.Limiter
}{m: map[string]*ratelimit.Limiter{}}

func init() {
	pluginmetrics.SetLimiters(func() []*ratelimit.Limiter {
		limiters.Lock()
		defer limiters.Unlock()
		out := make([]*ratelimit.Limiter, 0, len(limiters.m))
		for _, l := range limiters.m {
			out = append(out, l)
		}
		return out
	})
}

// PluginName is the plugin's Kong name.
func (c *Config) PluginName() string { return Name }

// Pipeline is the plugin's pipeline (its limit stage), provisioned once
// per configuration.
func (c *Config) Pipeline() (*pipeline.Pipeline, error) {
	return c.rt.Get(Name, c.Audit, pipeline.Build(c.Provision, (*Plugin).pipeline))
}

// pipeline is the stand-alone plugin's pipeline of p.
func (p *Plugin) pipeline() *pipeline.Pipeline { return pipeline.New(Name, pipeline.Options{}, p) }

var _ pipeline.Stage = (*Plugin)(nil)

// Handle runs the plugin on one request of host (tests; Kong runs the same
// pipeline through kongadapter.Access).
func (c *Config) Handle(host exchange.Exchange) pipeline.Outcome { return pipeline.Handle(host, c) }

// NeedsHeaders: only limit_by header:<name> decides on a header.
func (p *Plugin) NeedsHeaders() bool { return p.mode == byHeader }

// subject picks the counter key and policy of a request. The identity comes
// from kong.ctx.shared (set by keycloak-jwt / keycloak-apikey), never from a
// request header.
func (p *Plugin) subject(r *pipeline.Request) (string, *ratelimit.Policy, string, bool) {
	pol, ns := p.policy, p.ns
	id, authed := r.Identity()
	if authed {
		for _, o := range p.overrides {
			if id.HasRole(o.role) || (o.role == identity.RoleGuest && id.Guest) {
				pol, ns = o.policy, o.ns
				break
			}
		}
	}
	var s string
	switch p.mode {
	case ByIdentity:
		if authed {
			s = "u:" + id.Subject
		}
	case ByAPIKey:
		switch {
		case authed && id.APIKeyID != "":
			s = "k:" + id.APIKeyID
		case authed:
			s = "u:" + id.Subject
		}
	case byHeader:
		if v := r.Header(p.header); v != "" {
			s = "h:" + v
		}
	case ByRoute:
		s = "route"
	}
	if s == "" { // identity/api_key without one, header missing, or mode ip
		addr, err := netip.ParseAddr(r.ClientIP())
		if err != nil {
			return "", nil, "", false
		}
		s = "ip:" + clientip.Key(addr)
	}
	return ns + ":" + s, pol, ns, true
}

// Run decides one request (the limit stage).
func (p *Plugin) Run(r *pipeline.Request) pipeline.Result {
	subject, pol, _, ok := p.subject(r)
	if !ok {
		// No identity and no parseable client address: fail closed.
		return pipeline.Deny(http.StatusForbidden, CodeNoSubject, "cannot identify the client", nil)
	}
	// No deadline of our own: the limiter bounds its Redis round trip by
	// timeout_ms and then lets on_redis_error decide. A deadline here raced
	// that bound — on a starved CPU it expired first, the limiter answered
	// "the caller gave up" and the request got 503 even with
	// on_redis_error: local (found by make load).
	res, err := p.limiter.Allow(context.Background(), subject, pol)
	if err != nil {
		// ErrUnavailable (on_redis_error=deny) or an unexpected failure:
		// both are the limiter's fault, never the client's.
		return pipeline.Deny(http.StatusServiceUnavailable, CodeUnavailable, "rate limiter unavailable",
			map[string]string{"Retry-After": "1"})
	}
	headers := p.headers(res)
	if !res.Allowed {
		headers["Retry-After"] = strconv.Itoa(ceilSeconds(res.RetryAfter()))
		return pipeline.Deny(http.StatusTooManyRequests, CodeRateLimited, "rate limit exceeded", headers)
	}
	for k, v := range headers {
		r.SetResponseHeader(k, v)
	}
	return pipeline.Next
}

// OpenAI's request rate-limit headers, spelled as OpenAI sends them
// (header names are case-insensitive; HTTP/2 lower-cases them anyway).
const (
	HeaderLimitRequests     = "x-ratelimit-limit-requests"
	HeaderRemainingRequests = "x-ratelimit-remaining-requests"
	HeaderResetRequests     = "x-ratelimit-reset-requests"
)

// headers renders the rate-limit response headers of a decision. The
// RateLimit-* and OpenAI's x-ratelimit-*-requests headers both describe
// res.Decided(): on a 429 the limit that refused (the longest wait), else
// the tightest limit (fewest remaining, on a tie the longest reset).
func (p *Plugin) headers(res ratelimit.Result) map[string]string {
	h := make(map[string]string, 6+2*len(res.Limits))
	if p.hide || len(res.Limits) == 0 {
		return h
	}
	d := res.Decided()
	limit, remaining := strconv.Itoa(d.Limit.Rate), strconv.Itoa(d.Remaining)
	h["RateLimit-Limit"] = limit
	h["RateLimit-Remaining"] = remaining
	h["RateLimit-Reset"] = strconv.Itoa(ceilSeconds(d.ResetAfter))
	h[HeaderLimitRequests] = limit
	h[HeaderRemainingRequests] = remaining
	h[HeaderResetRequests] = resetRequests(d.ResetAfter)
	for _, l := range res.Limits {
		w := windowName(l.Limit.Name)
		h["X-RateLimit-Limit-"+w] = strconv.Itoa(l.Limit.Rate)
		h["X-RateLimit-Remaining-"+w] = strconv.Itoa(l.Remaining)
	}
	return h
}

// windowName is Kong's spelling: Second, Minute, Hour, Day.
func windowName(n string) string {
	if n == "" {
		return n
	}
	return strings.ToUpper(n[:1]) + n[1:]
}

// resetRequests is OpenAI's x-ratelimit-reset-requests value: the time until
// the limit is back to full as a Go duration string ("17ms", "1s",
// "6m0s"), rounded UP to the millisecond — never a reset earlier than the
// limiter's, never µs or ns digits. Zero or less is "0s".
func resetRequests(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	return ((d + time.Millisecond - 1) / time.Millisecond * time.Millisecond).String()
}

func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}
