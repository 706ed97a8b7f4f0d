package jwtauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// keySetConfig is the part of Config a KeySet uses.
type keySetConfig struct {
	refresh, minRefresh, maxStale, fetchTimeout time.Duration
	client                                      *http.Client
	now                                         func() time.Time
	log                                         zerolog.Logger
}

func (c *Config) keySetConfig() keySetConfig {
	return keySetConfig{
		refresh: c.RefreshInterval, minRefresh: c.MinRefreshInterval, maxStale: c.MaxStale,
		fetchTimeout: c.FetchTimeout, client: c.HTTPClient, now: c.Now, log: c.Logger,
	}
}

// keyState is one successfully fetched key set; immutable once stored.
type keyState struct {
	keys    map[string]*Key
	started time.Time // when the fetch that produced it began
	fetched time.Time
	// staleAt is fetched + max stale in Unix nanoseconds: the cache-hit path
	// compares integers, not times.
	staleAt int64
}

// fetchCall is one JWKS fetch in flight; callers join it instead of starting
// another (single flight).
type fetchCall struct {
	done chan struct{}
	err  error
}

// maxNegativeKIDs bounds the unknown-kid cache (a random-kid flood only
// churns it; refreshes stay rate-limited regardless).
const maxNegativeKIDs = 1024

// unknownKID is a kid that was refused with unknown_kid. It is negative-cached
// only once a key set whose fetch began after checked did not contain it: the
// key set a first refusal was decided on does not count, since the kid may
// have been published after that fetch began, and a kid first seen inside the
// min refresh interval has not been checked against any fresh key set at all.
type unknownKID struct {
	checked time.Time // its first refusal, then the start of its last negative period
	until   time.Time // negative-cached until; zero: not (yet) negative
}

// refuse records that kid is absent from the usable key set st at now,
// negative-caching it when st was fetched after the kid was last checked.
// The caller holds ks.mu.
func (ks *KeySet) refuse(kid string, st *keyState, now time.Time) {
	u, seen := ks.unknown[kid]
	switch {
	case !seen:
		if len(ks.unknown) >= maxNegativeKIDs {
			clear(ks.unknown)
		}
		ks.unknown[kid] = unknownKID{checked: now}
	case st.started.After(u.checked):
		// Absent from a key set fetched after it was last checked.
		ks.unknown[kid] = unknownKID{checked: now, until: now.Add(ks.cfg.refresh)}
	}
}

// KeySet is the JWKS of one issuer: fetched at start, refreshed every
// refresh interval, refreshed at once on an unknown kid but at most once per
// min refresh interval (single flight), served stale when the IdP fails for
// up to max stale.
type KeySet struct {
	issuer  string
	jwksURL string // configured; empty means OIDC discovery
	cfg     keySetConfig

	state atomic.Pointer[keyState]

	mu          sync.Mutex
	call        *fetchCall
	lastAttempt time.Time
	discovered  string
	unknown     map[string]unknownKID // bounded by maxNegativeKIDs
	lastWarn    time.Time
	failures    int

	fetches  atomic.Int64 // JWKS documents requested (for tests and metrics)
	failed   atomic.Int64 // fetches that failed (metrics)
	stop     chan struct{}
	stopOnce sync.Once
}

func newKeySet(issuer, jwksURL string, cfg keySetConfig) *KeySet {
	return &KeySet{issuer: issuer, jwksURL: jwksURL, cfg: cfg, unknown: map[string]unknownKID{}, stop: make(chan struct{})}
}

// start fetches the keys in the background and keeps refreshing them until
// Close. It never blocks: until the first fetch succeeds, lookups answer
// idp_unavailable (after joining a fetch in flight).
func (ks *KeySet) start() {
	go func() {
		for {
			err := ks.refresh(context.Background(), true)
			wait := ks.cfg.refresh
			if err != nil {
				ks.mu.Lock()
				ks.failures++
				n := ks.failures
				ks.mu.Unlock()
				wait = min(ks.cfg.minRefresh<<min(n, 10), ks.cfg.refresh)
			} else {
				ks.mu.Lock()
				ks.failures = 0
				ks.mu.Unlock()
			}
			t := time.NewTimer(wait)
			select {
			case <-ks.stop:
				t.Stop()
				return
			case <-t.C:
			}
		}
	}()
}

// Close stops the background refresh.
func (ks *KeySet) Close() { ks.stopOnce.Do(func() { close(ks.stop) }) }

// Fetches is the number of JWKS fetch attempts so far.
func (ks *KeySet) Fetches() int64 { return ks.fetches.Load() }

// Failures is the number of failed JWKS fetches so far.
func (ks *KeySet) Failures() int64 { return ks.failed.Load() }

// Issuer is the issuer whose keys the set holds.
func (ks *KeySet) Issuer() string { return ks.issuer }

// Age is how long ago the current key set was fetched (-1 if never).
func (ks *KeySet) Age() time.Duration {
	st := ks.state.Load()
	if st == nil {
		return -1
	}
	return ks.cfg.now().Sub(st.fetched)
}

func (ks *KeySet) usable(st *keyState, now time.Time) bool {
	return st != nil && now.Sub(st.fetched) <= ks.cfg.maxStale
}

// usableAt is usable for a time in Unix nanoseconds (the cache-hit path).
func usableAt(st *keyState, nowNanos int64) bool {
	return st != nil && nowNanos <= st.staleAt
}

// addNanos adds d to a Unix-nanosecond time, saturating instead of
// overflowing (static key sets never go stale).
func addNanos(t int64, d time.Duration) int64 {
	if int64(d) > math.MaxInt64-t {
		return math.MaxInt64
	}
	return t + int64(d)
}

// lookup finds the key for kid, refreshing the set when the kid is unknown
// and a refresh is allowed.
//
// A kid missing from the key set is refused; it is negative-cached (no
// refresh for it for a refresh interval) only when a key set fetched after
// its first refusal still lacks it. A kid first seen inside the min refresh
// interval, or absent only from the fetch its own request triggered or
// joined, is refused but stays eligible for the next allowed refresh: a key
// published just after a refresh is found by the next one, not one refresh
// interval later.
func (ks *KeySet) lookup(ctx context.Context, kid []byte) (*Key, error) {
	now := ks.cfg.now()
	st := ks.state.Load()
	if ks.usable(st, now) {
		if k := st.keys[string(kid)]; k != nil {
			return k, nil
		}
	}
	ks.mu.Lock()
	if ks.usable(st, now) {
		if u, ok := ks.unknown[string(kid)]; ok {
			if now.Before(u.until) {
				ks.mu.Unlock()
				return nil, ReasonUnknownKID
			}
			if st.started.After(u.checked) {
				// A refresh made since (another kid's, the background
				// one) did not contain it either: no fetch for it.
				ks.refuse(string(kid), st, now)
				ks.mu.Unlock()
				return nil, ReasonUnknownKID
			}
		}
	}
	joinable := ks.call != nil || now.Sub(ks.lastAttempt) >= ks.cfg.minRefresh
	ks.mu.Unlock()
	if joinable {
		_ = ks.refresh(ctx, false) // failures are logged by refresh
		st = ks.state.Load()
		now = ks.cfg.now()
	}
	if !ks.usable(st, now) {
		return nil, ReasonIdPUnavailable
	}
	if k := st.keys[string(kid)]; k != nil {
		ks.mu.Lock()
		delete(ks.unknown, string(kid))
		ks.mu.Unlock()
		return k, nil
	}
	ks.mu.Lock()
	ks.refuse(string(kid), st, now)
	ks.mu.Unlock()
	return nil, ReasonUnknownKID
}

// refresh fetches the JWKS, joining a fetch already in flight. Unless force
// is set, a new fetch starts only min refresh interval after the last one.
// The fetch runs detached from ctx (bounded by the fetch timeout), so one
// caller giving up does not fail the others.
func (ks *KeySet) refresh(ctx context.Context, force bool) error {
	ks.mu.Lock()
	c := ks.call
	if c == nil {
		now := ks.cfg.now()
		if !force && now.Sub(ks.lastAttempt) < ks.cfg.minRefresh {
			ks.mu.Unlock()
			return nil
		}
		c = &fetchCall{done: make(chan struct{})}
		ks.call = c
		ks.lastAttempt = now
		go func() {
			fctx, cancel := context.WithTimeout(context.Background(), ks.cfg.fetchTimeout)
			err := ks.fetch(fctx)
			cancel()
			ks.mu.Lock()
			ks.call = nil
			ks.mu.Unlock()
			c.err = err
			close(c.done)
		}()
	}
	ks.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fetch downloads and installs the key set; on failure the previous set
// stays (stale-if-error) and a warning is logged at most once per refresh
// interval.
func (ks *KeySet) fetch(ctx context.Context) error {
	ks.fetches.Add(1)
	err := ks.fetchOnce(ctx)
	if err == nil {
		return nil
	}
	ks.failed.Add(1)
	now := ks.cfg.now()
	ks.mu.Lock()
	ks.discovered = "" // rediscover next time
	warn := now.Sub(ks.lastWarn) >= ks.cfg.refresh || ks.lastWarn.IsZero()
	if warn {
		ks.lastWarn = now
	}
	ks.mu.Unlock()
	if warn {
		ev := ks.cfg.log.Warn().Err(err).Str("issuer", ks.issuer)
		if st := ks.state.Load(); st != nil {
			ev = ev.Dur("key_set_age", now.Sub(st.fetched)).Bool("serving_stale", ks.usable(st, now))
		} else {
			ev = ev.Bool("no_keys_yet", true)
		}
		ev.Msg("jwks refresh failed")
	}
	return err
}

func (ks *KeySet) fetchOnce(ctx context.Context) error {
	u := ks.jwksURL
	if u == "" {
		var err error
		if u, err = ks.discover(ctx); err != nil {
			return err
		}
	}
	started := ks.cfg.now()
	body, err := ks.get(ctx, u)
	if err != nil {
		return fmt.Errorf("fetch jwks %s: %w", u, err)
	}
	keys, skipped, err := parseJWKS(body)
	if err != nil {
		return fmt.Errorf("jwks %s: %w", u, err)
	}
	if len(keys) == 0 {
		return fmt.Errorf("jwks %s: no usable signature keys (%s)", u, strings.Join(skipped, "; "))
	}
	now := ks.cfg.now()
	old := ks.state.Swap(&keyState{keys: keys, started: started, fetched: now, staleAt: addNanos(now.UnixNano(), ks.cfg.maxStale)})
	if old == nil || len(old.keys) != len(keys) || !sameKIDs(old.keys, keys) {
		ks.cfg.log.Info().Str("issuer", ks.issuer).Int("keys", len(keys)).Int("skipped", len(skipped)).Msg("jwks loaded")
	}
	return nil
}

func sameKIDs(a, b map[string]*Key) bool {
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// discover reads jwks_uri from the issuer's OIDC discovery document, whose
// issuer must equal the configured one (OpenID Connect Discovery §4.3).
func (ks *KeySet) discover(ctx context.Context) (string, error) {
	ks.mu.Lock()
	d := ks.discovered
	ks.mu.Unlock()
	if d != "" {
		return d, nil
	}
	wellKnown := strings.TrimSuffix(ks.issuer, "/") + "/.well-known/openid-configuration"
	body, err := ks.get(ctx, wellKnown)
	if err != nil {
		return "", fmt.Errorf("oidc discovery %s: %w", wellKnown, err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("oidc discovery %s: %w", wellKnown, err)
	}
	if doc.Issuer != ks.issuer {
		return "", fmt.Errorf("oidc discovery %s: issuer %q does not match %q", wellKnown, doc.Issuer, ks.issuer)
	}
	if err := checkURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("oidc discovery %s: jwks_uri: %w", wellKnown, err)
	}
	ks.mu.Lock()
	ks.discovered = doc.JWKSURI
	ks.mu.Unlock()
	return doc.JWKSURI, nil
}

var errTooLarge = errors.New("response exceeds 1 MiB")

func (ks *KeySet) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := ks.cfg.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxJWKSBytes {
		return nil, errTooLarge
	}
	return body, nil
}
