package dpop

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReplayStore remembers proof keys. Remember records key for ttl and
// reports whether it was new; an error means the store could not answer.
type ReplayStore interface {
	Remember(ctx context.Context, key [16]byte, ttl time.Duration) (fresh bool, err error)
}

// Policies when the shared store cannot answer.
const (
	// OnErrorLocal: the in-process store alone decides — a replay to the
	// same node is still refused, one to another node is not, for as long
	// as the shared store is away (the rate limiter's on_redis_error:
	// local does the same).
	OnErrorLocal = "local"
	// OnErrorDeny: every proof is refused with 503 dpop_replay_unavailable.
	OnErrorDeny = "deny"
)

// ReplayGuard is the replay check: the in-process store first (a replay
// to this node never costs a round trip), then the shared store, whose SET
// NX decides between edge nodes. A proof is recorded only after every other
// check passed, so only a holder of the key can add entries.
type ReplayGuard struct {
	// Local is always consulted and always records (required).
	Local *LocalStore
	// Shared is the store every edge node sees (Redis); nil: Local only
	// (one edge node).
	Shared ReplayStore
	// OnError is the policy when Shared fails: OnErrorLocal (default) or
	// OnErrorDeny.
	OnError string
	// Timeout bounds one Shared call (default 100 ms).
	Timeout time.Duration
	// Failed, when set, is called with each failure of Shared (metrics,
	// throttled logs); never with a proof.
	Failed func(error)
}

// DefaultReplayTimeout bounds one shared-store call.
const DefaultReplayTimeout = 100 * time.Millisecond

// Validate checks the guard's settings.
func (g *ReplayGuard) Validate() error {
	if g.Local == nil {
		return fmt.Errorf("%w: the replay guard needs a local store", ErrInvalidConfig)
	}
	switch g.OnError {
	case "", OnErrorLocal, OnErrorDeny:
	default:
		return fmt.Errorf("%w: on redis error %q: want %q or %q", ErrInvalidConfig, g.OnError, OnErrorLocal, OnErrorDeny)
	}
	if g.Timeout < 0 || g.Timeout > 5*time.Second {
		return fmt.Errorf("%w: replay timeout %s outside 0..5s", ErrInvalidConfig, g.Timeout)
	}
	return nil
}

// Check records key for ttl: nil when it is new everywhere it was asked,
// ReasonReplayed when seen, ReasonReplayUnavailable when the shared store
// failed and the policy is OnErrorDeny.
func (g *ReplayGuard) Check(ctx context.Context, key [16]byte, ttl time.Duration) error {
	if fresh, _ := g.Local.Remember(ctx, key, ttl); !fresh {
		return ReasonReplayed
	}
	if g.Shared == nil {
		return nil
	}
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = DefaultReplayTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	fresh, err := g.Shared.Remember(cctx, key, ttl)
	cancel()
	switch {
	case err != nil:
		if g.Failed != nil {
			g.Failed(err)
		}
		if g.OnError == OnErrorDeny {
			return ReasonReplayUnavailable
		}
		return nil
	case !fresh:
		return ReasonReplayed
	}
	return nil
}

// RedisStore is the shared replay store: one SET key 1 NX PX ttl per proof
// (one key per command: a Redis Cluster spreads the keys over all slots).
type RedisStore struct {
	Client redis.UniversalClient
	// Prefix of the keys (default DefaultRedisPrefix).
	Prefix string
}

// DefaultRedisPrefix is the key prefix: keys are
// edgeguard:dpop:jti:<hex of 16 bytes of SHA-256(jkt, jti)>.
const DefaultRedisPrefix = "edgeguard:dpop:jti:"

var _ ReplayStore = (*RedisStore)(nil)

// Remember implements ReplayStore with SET NX PX.
func (s *RedisStore) Remember(ctx context.Context, key [16]byte, ttl time.Duration) (bool, error) {
	prefix := s.Prefix
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	ttl = max(ttl, time.Millisecond)
	ok, err := s.Client.SetNX(ctx, prefix+hex.EncodeToString(key[:]), "1", ttl).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("dpop replay store: %w", err)
	}
	return ok, nil
}

// LocalStore is the bounded in-process replay store. Entries are evicted in
// insertion order when it is full (all entries of one guard live the same
// window, so that is expiry order), expired ones first as they come up.
// Safe for concurrent use.
type LocalStore struct {
	mu   sync.Mutex
	m    map[[16]byte]int64 // key → expiry (Unix ns)
	ring []slot             // insertion order; ring[head] is the oldest
	head int
	n    int
	now  func() time.Time
}

type slot struct {
	key [16]byte
	exp int64
}

// DefaultLocalEntries is the in-process store's size: ~100 bytes an entry.
const DefaultLocalEntries = 100_000

// NewLocalStore returns a store of at most entries keys (default
// DefaultLocalEntries when <= 0); now nil is time.Now.
func NewLocalStore(entries int, now func() time.Time) *LocalStore {
	if entries <= 0 {
		entries = DefaultLocalEntries
	}
	if now == nil {
		now = time.Now
	}
	return &LocalStore{m: make(map[[16]byte]int64, min(entries, 4096)), ring: make([]slot, entries), now: now}
}

var _ ReplayStore = (*LocalStore)(nil)

// Remember implements ReplayStore; it never fails.
func (s *LocalStore) Remember(_ context.Context, key [16]byte, ttl time.Duration) (bool, error) {
	now := s.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.m[key]; ok && exp > now {
		return false, nil
	}
	for s.n > 0 && s.ring[s.head].exp <= now {
		s.pop()
	}
	if s.n == len(s.ring) {
		s.pop() // full: the oldest entry goes, expired or not
	}
	exp := now + int64(ttl)
	s.m[key] = exp
	s.ring[(s.head+s.n)%len(s.ring)] = slot{key, exp}
	s.n++
	return true, nil
}

// pop drops the oldest slot, and its map entry unless the key was recorded
// again since (then a later slot holds it).
func (s *LocalStore) pop() {
	sl := s.ring[s.head]
	if s.m[sl.key] == sl.exp {
		delete(s.m, sl.key)
	}
	s.head = (s.head + 1) % len(s.ring)
	s.n--
}

// Len is the number of keys held (some may have expired).
func (s *LocalStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
