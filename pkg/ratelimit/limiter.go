package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/logthrottle"
	"github.com/edgeguard/edgeguard/pkg/redisconn"
)

// Limiter decides rate limits on shared state in Redis, one round trip per
// decision, with a fail policy for when Redis is unavailable and a cache of
// denied subjects. It is safe for concurrent use; build one per Redis and
// configuration and share it (it holds the connection pool).
type Limiter struct {
	cfg       Config
	client    redis.UniversalClient
	ownClient bool
	local     *Local     // the "local" fail policy
	cache     *denyCache // nil when disabled
	batch     *batcher   // nil unless Config.Batch
	log       zerolog.Logger
	secrets   []string // redacted from every message we produce
	now       func() time.Time
	scriptNow bool // tests only: send now to the script instead of TIME

	down    atomic.Bool  // Redis failed and has not answered since
	retryAt atomic.Int64 // unix ns: when the next probe may go to Redis
	warnLog logthrottle.Throttle
	upLog   logthrottle.Throttle
	closed  atomic.Bool

	nRedis, nCache, nErrors, nFallback atomic.Uint64
}

// New builds a Limiter from cfg (defaults applied, then Validate). It reads
// Redis.TLSCAFile but does not contact Redis: an unreachable Redis is the
// fail policy's business, not a startup error.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	local, err := NewLocal(LocalConfig{MaxKeys: cfg.LocalMaxKeys})
	if err != nil {
		return nil, err
	}
	l := &Limiter{
		cfg:    cfg,
		client: cfg.Client,
		local:  local,
		log:    zerolog.Nop(),
		now:    time.Now,
	}
	if cfg.Logger != nil {
		l.log = cfg.Logger.With().Str("component", "ratelimit").Logger()
	}
	for _, s := range []string{cfg.Redis.Password, cfg.Redis.SentinelPassword} {
		if s != "" {
			l.secrets = append(l.secrets, s)
		}
	}
	if l.client == nil {
		l.client, err = newClient(cfg.Redis)
		if err != nil {
			return nil, err
		}
		l.ownClient = true
	}
	if cfg.DenyCacheSize > 0 {
		l.cache = newDenyCache(cfg.DenyCacheSize)
	}
	if cfg.Batch {
		l.batch = newBatcher(l.client, cfg.BatchSize, cfg.Timeout)
	}
	l.warnLog.Interval = cfg.WarnInterval
	l.upLog.Interval = cfg.WarnInterval
	return l, nil
}

func newClient(r RedisConfig) (redis.UniversalClient, error) {
	c, err := redisconn.New(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return c, nil
}

// Allow is AllowN with cost 1.
func (l *Limiter) Allow(ctx context.Context, subject string, p *Policy) (Result, error) {
	return l.AllowN(ctx, subject, p, 1)
}

// AllowN decides whether subject may spend cost cells under every limit of
// p, charging all of them if so, in one Redis round trip bounded by
// Config.Timeout. A subject denied earlier is answered from the deny cache
// until its retry-after passes.
//
// When Redis fails or times out, the fail policy answers: a Result from the
// in-process limiter ("local") or an allowed Result ("allow"), with a nil
// error; or an error wrapping ErrUnavailable ("deny"). Other errors: invalid
// input (ErrInvalidSubject, ErrInvalidCost, ErrInvalidLimit), ErrClosed, and
// ctx's own error when the caller's context ends first.
func (l *Limiter) AllowN(ctx context.Context, subject string, p *Policy, cost int) (Result, error) {
	if err := p.check(subject, cost); err != nil {
		return Result{}, err
	}
	if l.closed.Load() {
		return Result{}, ErrClosed
	}
	subject = subjectKey(subject)
	c := int64(cost)
	now := l.now()
	if l.cache != nil {
		if r, ok := l.cache.get(p, subject, c, now); ok {
			l.nCache.Add(1)
			return r, nil
		}
	}
	if l.skipRedis(now) {
		return l.fallback(ctx, subject, p, c, nil)
	}
	var debts [MaxLimits]int64
	allowed, err := l.eval(ctx, subject, p, c, now, debts[:len(p.limits)])
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, ctx.Err() // the caller gave up; not Redis's fault
		}
		if errors.Is(err, ErrClosed) {
			return Result{}, err
		}
		l.markDown(err)
		return l.fallback(ctx, subject, p, c, err)
	}
	l.markUp()
	l.nRedis.Add(1)
	r := p.result(allowed, c, debts[:len(p.limits)])
	r.Source = SourceRedis
	if !allowed && l.cache != nil {
		l.cache.put(p, subject, c, debts[:len(p.limits)], r, l.now())
	}
	return r, nil
}

// eval runs the script for subject (normalized) and fills debts.
func (l *Limiter) eval(ctx context.Context, subject string, p *Policy, cost int64, now time.Time, debts []int64) (bool, error) {
	n := len(p.limits)
	var b strings.Builder
	b.Grow(n * (len(l.cfg.KeyPrefix) + len(subject) + 2 + 8))
	var ends [MaxLimits]int
	for i, s := range p.suffix {
		b.WriteString(l.cfg.KeyPrefix)
		b.WriteByte('{')
		b.WriteString(subject)
		b.WriteByte('}')
		b.WriteString(s)
		ends[i] = b.Len()
	}
	all := b.String()
	keys := make([]string, n)
	start := 0
	for i := range keys {
		keys[i], start = all[start:ends[i]], ends[i]
	}
	script := gcraScript
	if n == 1 {
		script = gcra1Script
	}
	args := p.scriptArgs(make([]any, 0, 3*n+1), cost)
	if l.scriptNow {
		args = append(args, strconv.FormatInt(now.UnixMicro(), 10))
	}

	ctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()
	var (
		val any
		err error
	)
	if l.batch != nil {
		val, err = l.batch.do(ctx, script, keys, args)
	} else {
		val, err = script.Run(ctx, l.client, keys, args...).Result()
	}
	if err != nil {
		return false, err
	}
	if n == 1 {
		return parseReply1(val, debts)
	}
	return parseReply(val, debts)
}

// skipRedis reports whether this decision should go straight to the fail
// policy: Redis failed recently and either the probe interval has not
// passed or another decision is probing.
func (l *Limiter) skipRedis(now time.Time) bool {
	if !l.down.Load() {
		return false
	}
	at := l.retryAt.Load()
	if now.UnixNano() < at {
		return true
	}
	return !l.retryAt.CompareAndSwap(at, now.Add(l.cfg.ProbeInterval).UnixNano())
}

func (l *Limiter) markDown(err error) {
	l.nErrors.Add(1)
	now := l.now()
	l.retryAt.Store(now.Add(l.cfg.ProbeInterval).UnixNano())
	l.down.Store(true)
	if n, ok := l.warnLog.Allow(now); ok {
		l.log.Warn().Str("reason", "redis_unavailable").Str("on_redis_error", string(l.cfg.OnRedisError)).
			Str("error", l.redact(err)).Uint64("suppressed", n).
			Msg("rate limiter: redis failed; the fail policy decides until it answers")
	}
}

func (l *Limiter) markUp() {
	if !l.down.Load() || !l.down.CompareAndSwap(true, false) {
		return
	}
	if _, ok := l.upLog.Allow(l.now()); ok {
		l.log.Info().Str("reason", "redis_recovered").Msg("rate limiter: redis answers again")
	}
}

// fallback applies the fail policy. cause is nil when Redis was skipped
// because it failed recently.
func (l *Limiter) fallback(ctx context.Context, subject string, p *Policy, cost int64, cause error) (Result, error) {
	l.nFallback.Add(1)
	switch l.cfg.OnRedisError {
	case OnErrorAllow:
		r := p.fresh(cost)
		r.Source = SourceFailOpen
		return r, nil
	case OnErrorDeny:
		if cause == nil {
			cause = errRecentFailure
		}
		return Result{}, &unavailableError{cause: cause, msg: l.redact(cause)}
	default:
		var debts [MaxLimits]int64
		allowed := l.local.decide(subject, p, cost, l.now().UnixMicro(), debts[:len(p.limits)])
		r := p.result(allowed, cost, debts[:len(p.limits)])
		r.Source = SourceLocal
		return r, nil
	}
}

var errRecentFailure = errors.New("redis failed recently; next probe pending")

// redact removes configured secrets from an error message. Redis client
// errors do not carry passwords; this makes sure of it.
func (l *Limiter) redact(err error) string {
	msg := err.Error()
	for _, s := range l.secrets {
		msg = strings.ReplaceAll(msg, s, "[redacted]")
	}
	return msg
}

// unavailableError is ErrUnavailable with its (redacted) cause.
type unavailableError struct {
	cause error
	msg   string
}

func (e *unavailableError) Error() string   { return ErrUnavailable.Error() + ": " + e.msg }
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.cause} }

// FallbackActive reports whether Redis is currently considered unavailable,
// so that the fail policy decides (for a metric or a health check).
func (l *Limiter) FallbackActive() bool { return l.down.Load() }

// Stats are cumulative counters of a Limiter, for metrics.
type Stats struct {
	// RedisDecisions counts decisions Redis made.
	RedisDecisions uint64
	// DenyCacheHits counts denials answered from the deny cache.
	DenyCacheHits uint64
	// RedisErrors counts failed or timed-out round trips.
	RedisErrors uint64
	// FallbackDecisions counts decisions the fail policy made (including
	// ErrUnavailable answers).
	FallbackDecisions uint64
	// FallbackActive is FallbackActive() at the time of the call.
	FallbackActive bool
}

// Stats returns the counters.
func (l *Limiter) Stats() Stats {
	return Stats{
		RedisDecisions:    l.nRedis.Load(),
		DenyCacheHits:     l.nCache.Load(),
		RedisErrors:       l.nErrors.Load(),
		FallbackDecisions: l.nFallback.Load(),
		FallbackActive:    l.down.Load(),
	}
}

// Close stops the batching workers and closes the Redis client the Limiter
// built (not Config.Client). Decisions after Close return ErrClosed. It is
// safe to call more than once.
func (l *Limiter) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return nil
	}
	if l.batch != nil {
		l.batch.close()
	}
	if l.ownClient {
		if err := l.client.Close(); err != nil {
			return fmt.Errorf("close redis client: %s", l.redact(err))
		}
	}
	return nil
}
