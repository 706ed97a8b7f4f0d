package apikey

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/pkg/ratelimit"
	"github.com/edgeguard/edgeguard/pkg/secrets"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// ErrInvalidConfig is wrapped by every configuration error (never carrying
// the internal token).
var ErrInvalidConfig = errors.New("invalid apikey validator config")

// Defaults of Config.
const (
	DefaultTimeout        = 2 * time.Second
	DefaultPositiveTTL    = 60 * time.Second
	DefaultNegativeTTL    = 10 * time.Second
	DefaultMaxStale       = time.Hour
	DefaultMaxEntries     = 100_000
	DefaultMaxInFlight    = 64
	DefaultFailureClients = 100_000
	DefaultRedisKeyPrefix = "edgeguard:apikey:"
	DefaultRedisTimeout   = 50 * time.Millisecond
	// RevocationChannel is the Redis pub/sub channel of revocations
	// (docs/contracts.md).
	RevocationChannel = "edgeguard:apikey:revoked"
	// ValidatePath is the path of llm-api's internal validate endpoint.
	ValidatePath = "/internal/api-keys/validate"
)

// DefaultFailureLimit is Config.FailureLimit's default: 20 failed
// authentications per minute per client address (burst 20).
var DefaultFailureLimit = ratelimit.Limit{Rate: 20, Period: time.Minute}

// Bounds of Config.
const (
	maxTTL         = 24 * time.Hour
	maxMaxStale    = 7 * 24 * time.Hour
	maxInFlightCap = 1 << 20
)

// Config configures a Validator. Zero values take the defaults above.
type Config struct {
	// URL is llm-api's validate endpoint on its internal listener, e.g.
	// "http://llm-api:8081/internal/api-keys/validate": http or https, with
	// a host, no user info, query or fragment. Required.
	URL string
	// InternalToken is the X-Internal-Token secret (the caller reads it from
	// a file). Required unless InternalTokenSource is set. Never printed,
	// logged or put in an error.
	InternalToken []byte
	// InternalTokenSource, when set, replaces InternalToken: its current
	// value is sent with every call, so a rotated token file applies without
	// a new Validator (pkg/secrets.Value; the plugins share one per file).
	InternalTokenSource *secrets.Value

	// Timeout bounds one validator call (connect to last byte). Default 2s.
	Timeout time.Duration
	// PositiveTTL is how long a valid key is served from the cache, never
	// beyond the key's expires_at. Default 60s; negative: valid keys are not
	// cached (nor served stale).
	PositiveTTL time.Duration
	// NegativeTTL is how long a rejection (key_unknown, key_revoked,
	// key_expired, owner_disabled, key_malformed) is cached. Default 10s;
	// negative: not cached.
	NegativeTTL time.Duration
	// MaxStale is how long past its PositiveTTL a valid key keeps working
	// while the validator fails (unreachable, 5xx, timeout, busy), never
	// beyond the key's expires_at. Default 1h; negative: never stale.
	MaxStale time.Duration
	// MaxEntries bounds the in-process cache (positive, negative and stale
	// entries). Default 100000.
	MaxEntries int
	// MaxInFlight caps validator calls in flight (all keys, all clients);
	// a lookup beyond it fails with ErrBusy (503). Default 64.
	MaxInFlight int
	// FailureLimit limits failed authentications per client address, checked
	// before any lookup (ErrTooManyFailures, 429). Default 20/min, burst 20.
	FailureLimit ratelimit.Limit
	// FailureClients bounds how many client addresses the in-process failure
	// counter tracks. Default 100000.
	FailureClients int

	// Redis, if set, is the shared layer: answers are stored in Redis for
	// every edge instance, failures are counted across instances, and
	// revocations arrive on RevocationChannel. The caller owns the client
	// (Close does not close it); build it with ContextTimeoutEnabled.
	Redis redis.UniversalClient
	// RedisKeyPrefix prefixes the shared layer's keys. Default
	// "edgeguard:apikey:". No '{' or '}'.
	RedisKeyPrefix string
	// RedisTimeout bounds each shared-layer read or write. Default 50ms.
	RedisTimeout time.Duration

	// HTTPClient makes the validator calls. Default: a client of its own
	// (no proxy, no redirects, Timeout). A given client is copied with
	// redirects disabled (a redirect would carry the internal token
	// elsewhere).
	HTTPClient *http.Client
	// Logger receives debug lines per lookup (kid, client, result) and
	// warnings. Default: none.
	Logger *zerolog.Logger
	// Now is the clock. Default time.Now (cache hits then read a coarse
	// clock that errs on the side of expiry). Tests inject one.
	Now func() time.Time
}

// WithDefaults returns c with every zero value replaced by its default.
func (c Config) WithDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Timeout, DefaultTimeout)
	def(&c.PositiveTTL, DefaultPositiveTTL)
	def(&c.NegativeTTL, DefaultNegativeTTL)
	def(&c.MaxStale, DefaultMaxStale)
	def(&c.RedisTimeout, DefaultRedisTimeout)
	if c.MaxEntries == 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.FailureLimit == (ratelimit.Limit{}) {
		c.FailureLimit = DefaultFailureLimit
	}
	if c.FailureClients == 0 {
		c.FailureClients = DefaultFailureClients
	}
	if c.RedisKeyPrefix == "" {
		c.RedisKeyPrefix = DefaultRedisKeyPrefix
	}
	return c
}

// Validate checks the configuration (defaults applied first). It does no
// I/O.
func (c Config) Validate() error {
	c = c.WithDefaults()
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, a...)...)
	}
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return bad("url is required")
	case err != nil:
		return bad("url does not parse")
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("url scheme must be http or https")
	case u.Host == "":
		return bad("url has no host")
	case u.User != nil:
		return bad("url must not carry user info")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return bad("url must not have a query or fragment")
	}
	tok := c.internalToken()
	if len(tok) == 0 {
		return bad("internal token is required")
	}
	for _, b := range tok {
		if (b < 0x20 && b != '\t') || b == 0x7f {
			return bad("internal token holds a control character")
		}
	}
	if tok[0] == ' ' || tok[0] == '\t' || tok[len(tok)-1] == ' ' || tok[len(tok)-1] == '\t' {
		return bad("internal token has leading or trailing whitespace (a newline-trimmed file?)")
	}
	for _, d := range []struct {
		name     string
		v, lo, h time.Duration
	}{
		{"timeout", c.Timeout, time.Millisecond, time.Minute},
		{"positive ttl", c.PositiveTTL, -1 << 62, maxTTL},
		{"negative ttl", c.NegativeTTL, -1 << 62, maxTTL},
		{"max stale", c.MaxStale, -1 << 62, maxMaxStale},
		{"redis timeout", c.RedisTimeout, time.Millisecond, 10 * time.Second},
	} {
		if d.v < d.lo || d.v > d.h {
			return bad("%s %s out of range (max %s)", d.name, d.v, d.h)
		}
	}
	if c.MaxEntries < 1 {
		return bad("max entries must be positive")
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > maxInFlightCap {
		return bad("max in flight must be 1..%d", maxInFlightCap)
	}
	if c.FailureClients < 1 {
		return bad("failure clients must be positive")
	}
	if _, err := ratelimit.NewPolicy(c.FailureLimit); err != nil {
		return bad("failure limit: %w", err)
	}
	if strings.ContainsAny(c.RedisKeyPrefix, "{}") {
		return bad("redis key prefix must not contain '{' or '}'")
	}
	return nil
}

// fingerprint identifies a configuration for the process-wide registry. The
// internal token enters only as a hash.
func (c *Config) fingerprint() string {
	tok := sha256.Sum256(c.InternalToken)
	if c.InternalTokenSource != nil {
		// one Value per token file: the validator follows it across rotations
		tok = sha256.Sum256(fmt.Appendf(nil, "source:%p", c.InternalTokenSource))
	}
	s := fmt.Sprintf("url=%q tok=%x timeout=%d pos=%d neg=%d stale=%d entries=%d inflight=%d fail=%d/%d/%d/%q clients=%d redis=%p prefix=%q rto=%d",
		c.URL, tok, c.Timeout, c.PositiveTTL, c.NegativeTTL, c.MaxStale, c.MaxEntries, c.MaxInFlight,
		c.FailureLimit.Period, c.FailureLimit.Rate, c.FailureLimit.Burst, c.FailureLimit.Name,
		c.FailureClients, c.Redis, c.RedisKeyPrefix, c.RedisTimeout)
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// internalToken is the token to send now.
func (c *Config) internalToken() []byte {
	if c.InternalTokenSource != nil {
		return c.InternalTokenSource.Get()
	}
	return c.InternalToken
}

// String shows the configuration without the internal token.
func (c Config) String() string {
	return fmt.Sprintf("{url:%q internal_token:%t timeout:%s positive_ttl:%s negative_ttl:%s max_stale:%s max_entries:%d max_in_flight:%d failure_limit:%s redis:%t redis_key_prefix:%q}",
		c.URL, len(c.internalToken()) > 0, c.Timeout, c.PositiveTTL, c.NegativeTTL, c.MaxStale, c.MaxEntries,
		c.MaxInFlight, c.FailureLimit, c.Redis != nil, c.RedisKeyPrefix)
}

// GoString is String for %#v.
func (c Config) GoString() string { return "apikey.Config" + c.String() }

// Format prints String (GoString for %#v) for every verb.
func (c Config) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, c.GoString())
		return
	}
	_, _ = io.WriteString(f, c.String())
}

// MarshalJSON encodes the configuration without the internal token.
func (c Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		URL           string `json:"url"`
		InternalToken bool   `json:"internal_token"`
		Timeout       string `json:"timeout"`
		PositiveTTL   string `json:"positive_ttl"`
		NegativeTTL   string `json:"negative_ttl"`
		MaxStale      string `json:"max_stale"`
		MaxEntries    int    `json:"max_entries"`
		MaxInFlight   int    `json:"max_in_flight"`
		FailureLimit  string `json:"failure_limit"`
		Redis         bool   `json:"redis"`
		RedisPrefix   string `json:"redis_key_prefix"`
	}{c.URL, len(c.internalToken()) > 0, c.Timeout.String(), c.PositiveTTL.String(), c.NegativeTTL.String(),
		c.MaxStale.String(), c.MaxEntries, c.MaxInFlight, c.FailureLimit.String(), c.Redis != nil, c.RedisKeyPrefix})
}

// MarshalZerologObject logs the configuration without the internal token.
func (c Config) MarshalZerologObject(e *zerolog.Event) {
	e.Str("url", c.URL).Bool("internal_token", len(c.internalToken()) > 0).Dur("timeout", c.Timeout).
		Dur("positive_ttl", c.PositiveTTL).Dur("negative_ttl", c.NegativeTTL).Dur("max_stale", c.MaxStale).
		Int("max_entries", c.MaxEntries).Int("max_in_flight", c.MaxInFlight).
		Stringer("failure_limit", c.FailureLimit).Bool("redis", c.Redis != nil)
}
