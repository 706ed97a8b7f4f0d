package ratelimit

import (
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/redisconn"
)

// ErrorPolicy is what a decision does when Redis fails or times out.
type ErrorPolicy string

// Fail policies (Config.OnRedisError).
const (
	// OnErrorLocal: the in-process GCRA (Local, same semantics) decides,
	// per instance, until Redis answers again. Limits degrade (each instance
	// allows the full limit) instead of disappearing.
	OnErrorLocal ErrorPolicy = "local"
	// OnErrorAllow: every request is allowed (fail open).
	OnErrorAllow ErrorPolicy = "allow"
	// OnErrorDeny: every request fails with ErrUnavailable; the caller
	// answers 503 rate_limiter_unavailable (fail closed).
	OnErrorDeny ErrorPolicy = "deny"
)

// Defaults of Config.
const (
	DefaultKeyPrefix     = "edgeguard:rl:"
	DefaultTimeout       = 50 * time.Millisecond
	DefaultProbeInterval = 250 * time.Millisecond
	DefaultWarnInterval  = 10 * time.Second
	DefaultDenyCacheSize = 10_000
	DefaultBatchSize     = 32
	DefaultDialTimeout   = redisconn.DefaultDialTimeout
	DefaultIOTimeout     = redisconn.DefaultIOTimeout
)

// RedisConfig says how to reach Redis (see package redisconn).
type RedisConfig = redisconn.Config

// Config configures a Limiter. The zero value of every field but Redis.Addrs
// (or Client) is a usable default.
type Config struct {
	// Redis says how to reach Redis when Client is nil.
	Redis RedisConfig
	// Client, when set, is used instead of building one from Redis (e.g. to
	// share a client). The Limiter does not close it; for decision timeouts
	// to hold it must have ContextTimeoutEnabled, and it should not retry
	// (the script is not idempotent).
	Client redis.UniversalClient
	// KeyPrefix starts every Redis key: KeyPrefix + "{" + subject + "}:" +
	// limit name. Default "edgeguard:rl:". Must not contain '{' or '}'.
	KeyPrefix string
	// Timeout bounds each decision's Redis round trip. Default 50ms.
	Timeout time.Duration
	// OnRedisError is the fail policy: "local" (default), "allow" or "deny".
	OnRedisError ErrorPolicy
	// ProbeInterval: after a Redis failure, decisions go straight to the
	// fail policy for this long; then one decision probes Redis again (so a
	// dead Redis costs one timeout per interval, not one per request).
	// Default 250ms.
	ProbeInterval time.Duration
	// WarnInterval: Redis failures are logged at most once per interval
	// (with the number suppressed), never per request. Default 10s.
	WarnInterval time.Duration
	// DenyCacheSize bounds the in-process cache of denied subjects (answered
	// without a round trip until their retry-after passes). Default 10000;
	// negative disables the cache.
	DenyCacheSize int
	// LocalMaxKeys bounds the "local" fail policy's in-process state
	// (LocalConfig.MaxKeys). Default 100000.
	LocalMaxKeys int
	// Batch sends concurrent decisions together in one pipeline. Default
	// false (README and BENCHMARKS.md say what it gained and cost).
	Batch bool
	// BatchSize is the most decisions in one pipeline. Default 32.
	BatchSize int
	// Logger receives the rate-limited warnings. Default: no logging.
	Logger *zerolog.Logger
}

// String describes the configuration without secrets.
func (c Config) String() string {
	return fmt.Sprintf("{redis:%s client:%t prefix:%q timeout:%s on_redis_error:%s probe:%s warn:%s deny_cache:%d local_max_keys:%d batch:%t/%d}",
		c.Redis, c.Client != nil, c.KeyPrefix, c.Timeout, c.OnRedisError, c.ProbeInterval, c.WarnInterval,
		c.DenyCacheSize, c.LocalMaxKeys, c.Batch, c.BatchSize)
}

// GoString is String, so %#v cannot print the password either.
func (c Config) GoString() string { return "ratelimit.Config" + c.String() }

// WithDefaults returns the configuration with every unset field at its
// documented default.
func (c Config) WithDefaults() Config {
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.OnRedisError == "" {
		c.OnRedisError = OnErrorLocal
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.WarnInterval == 0 {
		c.WarnInterval = DefaultWarnInterval
	}
	if c.DenyCacheSize == 0 {
		c.DenyCacheSize = DefaultDenyCacheSize
	}
	if c.LocalMaxKeys == 0 {
		c.LocalMaxKeys = DefaultLocalMaxKeys
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	c.Redis = c.Redis.WithDefaults()
	return c
}

// Validate checks the configuration after applying defaults. It is fast and
// does no I/O (New reads TLSCAFile). Errors wrap ErrInvalidConfig and never
// contain a password.
func (c Config) Validate() error {
	c = c.WithDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if c.Client == nil {
		if err := c.Redis.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	switch {
	case strings.ContainsAny(c.KeyPrefix, "{}"):
		return bad("key prefix must not contain '{' or '}'")
	case c.Timeout < 0:
		return bad("timeout must be positive")
	case c.ProbeInterval < 0:
		return bad("probe interval must be positive")
	case c.WarnInterval < 0:
		return bad("warn interval must be positive")
	case c.LocalMaxKeys < 0:
		return bad("local max keys must be positive")
	case c.BatchSize < 1:
		return bad("batch size must be positive")
	}
	switch c.OnRedisError {
	case OnErrorLocal, OnErrorAllow, OnErrorDeny:
	default:
		return bad("on_redis_error must be local, allow or deny, not %q", c.OnRedisError)
	}
	return nil
}
