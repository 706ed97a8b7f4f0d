package apikey

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeguard/edgeguard/pkg/clientip"
	"github.com/edgeguard/edgeguard/pkg/coarseclock"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/logthrottle"
	"github.com/edgeguard/edgeguard/pkg/ratelimit"
	"github.com/edgeguard/edgeguard/pkg/secrets"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Failures of Validate, matched with errors.Is. They are not rejections (the
// key may be fine); HTTPStatus maps them to the answer.
var (
	// ErrUnavailable: the validator failed (unreachable, timeout, 5xx, an
	// answer that breaks the contract, or it refused the internal token) and
	// the key has no usable cache entry. 503 key_validation_unavailable. The
	// error also wraps the cause (e.g. context.DeadlineExceeded).
	ErrUnavailable = errors.New("api key validation unavailable")
	// ErrBusy: MaxInFlight validator calls are already in flight. 503.
	ErrBusy = errors.New("api key validation busy")
	// ErrTooManyFailures: the client address has used up its failed
	// authentications (FailureLimit); no lookup was made. 429
	// too_many_auth_failures. The error is a *TooManyFailuresError.
	ErrTooManyFailures = errors.New("too many failed api key authentications")
	// ErrClosed: the Validator was used after Close.
	ErrClosed = errors.New("api key validator closed")
)

// CodeTooManyFailures is the error code of ErrTooManyFailures (429).
const CodeTooManyFailures = "too_many_auth_failures"

// TooManyFailuresError is the ErrTooManyFailures of one decision, with when
// the client may try again (for Retry-After).
type TooManyFailuresError struct {
	RetryAfter time.Duration
}

func (e *TooManyFailuresError) Error() string {
	return fmt.Sprintf("%s (retry after %s)", ErrTooManyFailures, e.RetryAfter.Round(time.Millisecond))
}
func (e *TooManyFailuresError) Unwrap() error { return ErrTooManyFailures }

// unavailableError is ErrUnavailable with its cause (its message redacted).
type unavailableError struct {
	cause error
	msg   string
}

func (e *unavailableError) Error() string   { return ErrUnavailable.Error() + ": " + e.msg }
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.cause} }

// HTTPStatus maps an error of Parse or Validator.Validate to the HTTP status
// and error code the edge answers ({"error":{"code":…}}): a Reason → 401 and
// the reason; ErrTooManyFailures → 429 too_many_auth_failures; ErrBusy → 503
// key_validation_busy; ErrUnavailable, ErrClosed or the caller's context
// ending → 503 key_validation_unavailable; anything else → 500
// internal_error.
func HTTPStatus(err error) (status int, code string) {
	if r := ReasonOf(err); r != "" {
		return http.StatusUnauthorized, string(r)
	}
	switch {
	case errors.Is(err, ErrTooManyFailures):
		return http.StatusTooManyRequests, CodeTooManyFailures
	case errors.Is(err, ErrBusy):
		return http.StatusServiceUnavailable, "key_validation_busy"
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrClosed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "key_validation_unavailable"
	}
	return http.StatusInternalServerError, "internal_error"
}

// Validator asks llm-api whether API keys are valid (docs/contracts.md),
// through a bounded cache. It is safe for concurrent use. Build one with
// NewValidator (and Close it) or get the process-wide one for a
// configuration with Shared.
type Validator struct {
	cfg      Config
	url      string
	token    string         // the header value; redacted from every message
	tokenSrc *secrets.Value // when set, the current header value
	client   *http.Client
	ownHTTP  bool
	now      func() time.Time
	hitNow   func() int64 // Unix nanoseconds: coarseclock.NowNanos unless a clock is injected

	cache    *keyCache
	flights  flightGroup
	inFlight atomic.Int64
	fails    *failureLimiter

	rdb        redis.UniversalClient
	shared     *ratelimit.Limiter // failures across instances (with Redis)
	failPolicy *ratelimit.Policy
	sub        *redis.PubSub
	subReady   chan struct{} // closed at the first subscription
	epoch      atomic.Uint64 // bumped by every revocation and cache purge
	revoked    revokedSet    // key ids revoked recently (with Redis)

	log     zerolog.Logger
	warnLog logthrottle.Throttle

	mu     sync.RWMutex // guards closed against bg.Add
	closed bool
	ctx    context.Context // ends at Close: background work
	cancel context.CancelFunc
	bg     sync.WaitGroup

	nMisses, nNegHits, nSharedHits, nCalls, nStale, nBusy, nUnavailable, nTooMany, nRevocations atomic.Uint64
}

// NewValidator applies the defaults, validates cfg and builds a Validator. It
// does no network I/O; with Config.Redis it starts the revocation subscriber
// in the background (an unreachable Redis is retried, not an error).
func NewValidator(cfg Config) (*Validator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	lim := cfg.FailureLimit
	policy, err := ratelimit.NewPolicy(lim)
	if err != nil {
		return nil, fmt.Errorf("%w: failure limit: %w", ErrInvalidConfig, err)
	}
	lim = policy.Limits()[0] // defaults applied
	v := &Validator{
		cfg:        cfg,
		url:        cfg.URL,
		token:      string(cfg.InternalToken),
		tokenSrc:   cfg.InternalTokenSource,
		now:        cfg.Now,
		hitNow:     func() int64 { return cfg.Now().UnixNano() },
		cache:      newKeyCache(cfg.MaxEntries),
		fails:      newFailureLimiter(lim.Rate, lim.Period, lim.Burst, cfg.FailureClients),
		rdb:        cfg.Redis,
		failPolicy: policy,
		log:        zerolog.Nop(),
		subReady:   make(chan struct{}),
	}
	v.flights.m = make(map[hashKey]*flight)
	if v.now == nil {
		v.now, v.hitNow = time.Now, coarseclock.NowNanos
	}
	if cfg.Logger != nil {
		v.log = cfg.Logger.With().Str("component", "apikey").Logger()
	}
	v.warnLog.Interval = 10 * time.Second
	v.client, v.ownHTTP = newHTTPClient(cfg)
	v.ctx, v.cancel = context.WithCancel(context.Background())
	if v.rdb != nil {
		v.shared, err = ratelimit.New(ratelimit.Config{
			Client:       v.rdb,
			KeyPrefix:    cfg.RedisKeyPrefix + "fail:",
			Timeout:      cfg.RedisTimeout,
			OnRedisError: ratelimit.OnErrorAllow, // the in-process count still holds
			Logger:       cfg.Logger,
		})
		if err != nil {
			v.cancel()
			return nil, fmt.Errorf("%w: shared failure counter: %w", ErrInvalidConfig, err)
		}
		v.startSubscriber()
	}
	return v, nil
}

func newHTTPClient(cfg Config) (*http.Client, bool) {
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		c.CheckRedirect = noRedirect
		return &c, false
	}
	t := &http.Transport{
		Proxy:                 nil, // internal endpoint: the token never goes through a proxy
		DialContext:           (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          cfg.MaxInFlight,
		MaxIdleConnsPerHost:   cfg.MaxInFlight,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
	return &http.Client{Transport: t, Timeout: cfg.Timeout, CheckRedirect: noRedirect}, true
}

// noRedirect keeps a redirect from carrying X-Internal-Token to another URL:
// the 3xx itself is the answer (and counts as unavailable).
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

type requestIDKey struct{}

// WithRequestID returns ctx carrying the request id that Validate sends as
// X-Request-ID when it calls the validator (only ids matching
// ^[A-Za-z0-9._-]{1,128}$ are sent).
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	if len(id) == 0 || len(id) > 128 {
		return ""
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; base62[c] < 0 && c != '.' && c != '_' && c != '-' {
			return ""
		}
	}
	return id
}

// Validate returns the identity of k, or why it is refused. clientIP is the
// client's address (kong.client.get_forwarded_ip, or clientip.Key of it;
// IPv6 is counted per /64): failed authentications are limited per client.
//
// The returned Identity is shared with other callers: do not modify it. The
// error is a Reason (a rejection, 401), or a failure: ErrTooManyFailures
// (*TooManyFailuresError, 429), ErrBusy or ErrUnavailable (503), ErrClosed,
// or ctx's error. A cache hit of a valid key does not allocate.
//
// Order: a fresh valid entry in the in-process cache is answered at once.
// Otherwise the client's failure limit is checked (and a lookup reserved)
// before anything else; then a fresh rejection in the cache; then, once per
// key however many requests wait for it, the shared Redis layer and finally
// the validator (under the in-flight cap). A rejection charges the client one
// failure. When the validator fails, a valid key seen before is served stale
// for up to MaxStale.
func (v *Validator) Validate(ctx context.Context, clientIP string, k Key) (*identity.Identity, error) {
	if k.p == nil {
		return nil, ReasonMalformed // the zero Key
	}
	// Copy to the stack: []byte(k.Secret()) would allocate (keys are longer than
	// the compiler's 32-byte conversion buffer).
	var buf [MaxLen]byte
	h := sha256.Sum256(buf[:copy(buf[:], k.Secret())])
	if e := v.cache.get(&h); e != nil && e.id != nil && v.hitNow() < e.fresh {
		return e.id, nil
	}
	return v.validateSlow(ctx, clientIP, k, h) // by value: &h would move h to the heap on the hit path too
}

func (v *Validator) validateSlow(ctx context.Context, clientIP string, k Key, hv hashKey) (*identity.Identity, error) {
	h := &hv
	if v.isClosed() {
		return nil, ErrClosed
	}
	v.nMisses.Add(1)
	client := clientKey(clientIP)
	now := v.now()
	refuse := func(retry time.Duration) (*identity.Identity, error) {
		v.nTooMany.Add(1)
		v.log.Debug().Str("kid", k.KID()).Str("client", client).Str("result", "too_many_auth_failures").
			Dur("retry_after", retry).Msg("api key lookup refused")
		return nil, &TooManyFailuresError{RetryAfter: retry}
	}
	if retry, ok := v.fails.check(client, now.UnixNano()); !ok {
		return refuse(retry)
	}
	id, src, reserved, retry, err := v.lookup(ctx, k, h, now, client)
	if retry > 0 {
		return refuse(retry)
	}
	failed := ReasonOf(err) != ""
	end := v.now()
	switch {
	case reserved:
		v.fails.release(client, end.UnixNano(), failed)
	case failed:
		v.fails.charge(client, end.UnixNano())
	}
	if failed && v.shared != nil {
		v.chargeShared(ctx, client, end)
	}
	ev := v.log.Debug().Str("kid", k.KID()).Str("client", client).Str("source", src)
	switch {
	case err == nil:
		ev.Str("result", "valid").Str("subject", id.Subject).Msg("api key lookup")
	case failed:
		ev.Str("result", string(ReasonOf(err))).Msg("api key lookup")
	default:
		ev.Str("result", "error").Str("error", v.redact(err.Error())).Msg("api key lookup")
	}
	return id, err
}

// lookup answers from a fresh cache entry or a flight; src says which
// ("cache", "flight", "stale"). Only a request that starts a lookup reserves
// a failure-limit cell for its client (reserved true); one that joins a
// flight in progress, or is answered from the cache, causes no lookup. A
// positive retry means the client may not start a lookup now.
func (v *Validator) lookup(ctx context.Context, k Key, h *hashKey, now time.Time, client string) (id *identity.Identity, src string, reserved bool, retry time.Duration, err error) {
	if e := v.cache.get(h); e != nil && now.UnixNano() < e.fresh {
		if e.id != nil {
			return e.id, "cache", false, 0, nil
		}
		v.nNegHits.Add(1)
		return nil, "cache", false, 0, e.reason
	}
	f, leader := v.flights.join(h, func() bool {
		var ok bool
		retry, ok = v.fails.reserve(client, now.UnixNano())
		return ok
	})
	if f == nil {
		return nil, "", false, max(retry, time.Nanosecond), nil
	}
	if leader {
		reserved = true
		if !v.goBackground(func() { v.run(h, k, f, requestID(ctx)) }) {
			v.flights.finish(h, f, flightResult{err: ErrClosed})
		}
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, "flight", reserved, 0, ctx.Err()
	}
	r := f.res
	if r.err == nil {
		if r.e.id != nil {
			return r.e.id, r.src, reserved, 0, nil
		}
		return nil, r.src, reserved, 0, r.e.reason
	}
	if errors.Is(r.err, ErrClosed) {
		return nil, "flight", reserved, 0, r.err
	}
	if e := v.cache.get(h); e != nil && e.id != nil && v.now().UnixNano() < e.stale {
		v.nStale.Add(1)
		v.warn("validator_failed_serving_stale", r.err, k.KID())
		return e.id, "stale", reserved, 0, nil
	}
	return nil, r.src, reserved, 0, r.err
}

// run is a flight: the one lookup of a key that every concurrent request
// for it waits for. It runs detached from any request's context (bounded by
// Timeout, ended by Close) so one caller giving up does not fail the others.
func (v *Validator) run(h *hashKey, k Key, f *flight, reqID string) {
	epoch := v.epoch.Load()
	now := v.now()
	res := v.fetch(h, k, reqID, now, epoch)
	if res.err == nil && res.src != "validator" {
		v.flights.finish(h, f, res)
		return
	}
	if res.err == nil && v.cacheable(res.e, now) {
		v.cache.put(h, res.e, now.UnixNano(), func() bool { return v.epoch.Load() == epoch })
	}
	v.flights.finish(h, f, res)
	if res.err == nil && v.rdb != nil {
		v.storeShared(h, k, res.e, now, epoch)
	}
}

// fetch asks the shared layer, then the validator.
func (v *Validator) fetch(h *hashKey, k Key, reqID string, now time.Time, epoch uint64) flightResult {
	if v.rdb != nil {
		if e := v.loadShared(h, k, now); e != nil {
			v.nSharedHits.Add(1)
			v.cache.put(h, e, now.UnixNano(), func() bool { return v.epoch.Load() == epoch })
			return flightResult{e: e, src: "redis"}
		}
	}
	if n := v.inFlight.Add(1); n > int64(v.cfg.MaxInFlight) {
		v.inFlight.Add(-1)
		v.nBusy.Add(1)
		return flightResult{err: ErrBusy, src: "validator"}
	}
	defer v.inFlight.Add(-1)
	v.nCalls.Add(1)
	id, reason, err := v.call(k, reqID, now)
	if err != nil {
		v.nUnavailable.Add(1)
		if errors.Is(err, errInternalAuth) {
			v.log.Error().Str("reason", "internal_auth_failed").
				Msg("api key validator refused the internal token: check the internal token files of the edge and llm-api")
		} else {
			v.warn("validator_unavailable", err, "")
		}
		return flightResult{err: &unavailableError{cause: err, msg: v.redact(err.Error())}, src: "validator"}
	}
	if id != nil {
		return flightResult{e: v.positive(id, now), src: "validator"}
	}
	return flightResult{e: v.negative(reason, now), src: "validator"}
}

// cacheable reports whether an answer is kept: its kind of caching is on
// and it is of use at now.
func (v *Validator) cacheable(e *entry, now time.Time) bool {
	if (e.id != nil && v.cfg.PositiveTTL <= 0) || (e.id == nil && v.cfg.NegativeTTL <= 0) {
		return false
	}
	return !e.dead(now.UnixNano())
}

// positive is the cache entry of a valid key: fresh for PositiveTTL, then
// stale for MaxStale, never beyond the key's expiry.
func (v *Validator) positive(id *identity.Identity, now time.Time) *entry {
	fresh := now.UnixNano() + int64(v.cfg.PositiveTTL)
	stale := fresh
	if v.cfg.MaxStale > 0 {
		stale += int64(v.cfg.MaxStale)
	}
	if !id.ExpiresAt.IsZero() {
		exp := id.ExpiresAt.UnixNano()
		fresh, stale = min(fresh, exp), min(stale, exp)
	}
	return &entry{id: id, kid: id.APIKeyID, fresh: fresh, stale: stale}
}

func (v *Validator) negative(r Reason, now time.Time) *entry {
	t := now.UnixNano() + int64(v.cfg.NegativeTTL)
	return &entry{reason: r, fresh: t, stale: t}
}

// chargeShared counts a failure in Redis for every edge instance; when the
// client is over the limit there, it is blocked here until its retry-after.
func (v *Validator) chargeShared(ctx context.Context, client string, now time.Time) {
	res, err := v.shared.Allow(context.WithoutCancel(ctx), client, v.failPolicy)
	if err == nil && !res.Allowed {
		v.fails.block(client, now.Add(res.RetryAfter()).UnixNano())
	}
}

// clientKey turns a client address into the failure counter's key (IPv6 per
// /64); a value that is not an address is hashed, so it is short and safe in
// a Redis key.
func clientKey(s string) string {
	if s == "" {
		return "-"
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return clientip.Key(a)
	}
	if _, err := netip.ParsePrefix(s); err == nil && len(s) <= 64 {
		return s // already a clientip.Key
	}
	sum := sha256.Sum256([]byte(s))
	return "x:" + hex.EncodeToString(sum[:12])
}

// goBackground runs fn on a goroutine Close waits for, unless closed.
func (v *Validator) goBackground(fn func()) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.closed {
		return false
	}
	v.bg.Add(1)
	go func() {
		defer v.bg.Done()
		fn()
	}()
	return true
}

func (v *Validator) isClosed() bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.closed
}

// redact removes the internal token from a message. Transport errors do not
// carry request headers; this makes sure of it.
func (v *Validator) redact(msg string) string {
	if t := v.currentToken(); t != "" {
		msg = strings.ReplaceAll(msg, t, "[redacted]")
	}
	if v.token != "" {
		msg = strings.ReplaceAll(msg, v.token, "[redacted]")
	}
	return msg
}

// currentToken is the X-Internal-Token to send now.
func (v *Validator) currentToken() string {
	if v.tokenSrc != nil {
		return string(v.tokenSrc.Get())
	}
	return v.token
}

// warn logs a failure at most once per interval, with a count of what it
// held back.
func (v *Validator) warn(reason string, err error, kid string) {
	n, ok := v.warnLog.Allow(v.now())
	if !ok {
		return
	}
	ev := v.log.Warn().Str("reason", reason).Uint64("suppressed", n)
	if err != nil {
		ev.Str("error", v.redact(err.Error()))
	}
	if kid != "" {
		ev.Str("kid", kid)
	}
	ev.Msg("api key validation degraded")
}

// Stats are cumulative counters of a Validator, for metrics. Hits of fresh
// valid entries are not counted (the hot path stays free of shared writes):
// hits = lookups − Misses.
type Stats struct {
	Misses          uint64 // lookups not answered by a fresh valid entry
	NegativeHits    uint64 // rejections answered from the cache
	SharedHits      uint64 // answers from the Redis layer
	ValidatorCalls  uint64 // calls made to the validator
	StaleServed     uint64 // valid keys served stale while the validator failed
	Busy            uint64 // ErrBusy
	Unavailable     uint64 // failed validator calls
	TooManyFailures uint64 // lookups refused by the failure limit
	Revocations     uint64 // revocation messages applied
	Entries         int    // in-process cache entries now
	InFlight        int64  // validator calls in flight now
}

// Stats returns the counters.
func (v *Validator) Stats() Stats {
	return Stats{
		Misses: v.nMisses.Load(), NegativeHits: v.nNegHits.Load(), SharedHits: v.nSharedHits.Load(),
		ValidatorCalls: v.nCalls.Load(), StaleServed: v.nStale.Load(), Busy: v.nBusy.Load(),
		Unavailable: v.nUnavailable.Load(), TooManyFailures: v.nTooMany.Load(),
		Revocations: v.nRevocations.Load(), Entries: v.cache.len(), InFlight: v.inFlight.Load(),
	}
}

// Close stops the revocation subscriber, waits for background work (flights,
// shared-layer writes) and closes idle connections of the HTTP client it
// built. It does not close Config.Redis. Validate after Close fails with
// ErrClosed (cached valid keys are still answered). Safe to call more than
// once. Do not Close a Validator from Shared.
func (v *Validator) Close() error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil
	}
	v.closed = true
	v.mu.Unlock()
	v.cancel()
	if v.sub != nil {
		_ = v.sub.Close()
	}
	v.bg.Wait()
	if v.ownHTTP {
		v.client.CloseIdleConnections()
	}
	if v.shared != nil {
		_ = v.shared.Close()
	}
	return nil
}
