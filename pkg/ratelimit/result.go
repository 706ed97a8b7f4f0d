package ratelimit

import (
	"errors"
	"time"
)

// Sentinel errors, matched with errors.Is. Errors from this package wrap one
// of them with details; none ever carries the Redis password.
var (
	// ErrUnavailable: Redis failed or timed out and the fail policy is
	// "deny". The caller answers 503 rate_limiter_unavailable. The error also
	// wraps the Redis error (e.g. context.DeadlineExceeded on a timeout).
	ErrUnavailable = errors.New("rate limiter unavailable")
	// ErrInvalidLimit: a limit, limit spec or policy is invalid.
	ErrInvalidLimit = errors.New("invalid rate limit")
	// ErrInvalidCost: cost below 1 or above the policy's smallest burst (a
	// request that could never be allowed).
	ErrInvalidCost = errors.New("invalid rate limit cost")
	// ErrInvalidSubject: the subject is empty.
	ErrInvalidSubject = errors.New("empty rate limit subject")
	// ErrInvalidConfig: Config.Validate rejected the configuration.
	ErrInvalidConfig = errors.New("invalid rate limiter config")
	// ErrClosed: the Limiter was used after Close.
	ErrClosed = errors.New("rate limiter closed")
)

// Source says what produced a Result.
type Source uint8

// Sources of a Result.
const (
	// SourceRedis: the shared state in Redis decided.
	SourceRedis Source = iota + 1
	// SourceDenyCache: the subject was denied by Redis earlier and its
	// retry-after has not passed; no round trip was made.
	SourceDenyCache
	// SourceLocal: the in-process limiter decided (Local, or the "local" fail
	// policy while Redis is unavailable).
	SourceLocal
	// SourceFailOpen: Redis is unavailable and the fail policy is "allow".
	SourceFailOpen
)

// String returns "redis", "deny_cache", "local" or "fail_open" (stable, for
// logs and metric labels).
func (s Source) String() string {
	switch s {
	case SourceRedis:
		return "redis"
	case SourceDenyCache:
		return "deny_cache"
	case SourceLocal:
		return "local"
	case SourceFailOpen:
		return "fail_open"
	}
	return "unknown"
}

// Result is one decision.
type Result struct {
	// Allowed reports whether the request may proceed. When it is false no
	// limit was charged.
	Allowed bool
	// Limits holds one entry per limit of the Policy, in its order.
	Limits []LimitResult
	// Decider indexes Limits: when denied, the denying limit with the
	// longest RetryAfter; when allowed, the tightest limit (fewest Remaining,
	// on a tie the longest ResetAfter) — the one for RateLimit-* headers.
	Decider int
	// Source says what decided.
	Source Source
}

// LimitResult is the state of one limit after a decision.
type LimitResult struct {
	// Limit is the limit (defaults applied).
	Limit Limit
	// Remaining is how many more cells the subject could spend right now.
	Remaining int
	// ResetAfter is when the limit is back to a full burst if nothing more
	// is spent.
	ResetAfter time.Duration
	// RetryAfter is when a request of the same cost would pass this limit;
	// zero when the request was allowed or this limit did not deny it.
	RetryAfter time.Duration
}

// Decided returns Limits[Decider], or the zero LimitResult when there are
// none.
func (r Result) Decided() LimitResult {
	if r.Decider < 0 || r.Decider >= len(r.Limits) {
		return LimitResult{}
	}
	return r.Limits[r.Decider]
}

// RetryAfter is how long a denied request should wait (the Retry-After
// header); zero when allowed.
func (r Result) RetryAfter() time.Duration {
	if r.Allowed {
		return 0
	}
	return r.Decided().RetryAfter
}
