package ratelimit

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// LocalConfig configures Local.
type LocalConfig struct {
	// MaxKeys bounds how many (subject, limit) states are kept. When full,
	// states whose theoretical arrival time has passed (equivalent to no
	// state) are dropped first; if that is not enough, arbitrary states are
	// dropped, which forgives their debt. Default 100000.
	MaxKeys int
	// Now is the clock. Default time.Now. Tests inject a fake one.
	Now func() time.Time
}

// DefaultLocalMaxKeys is LocalConfig.MaxKeys's default.
const DefaultLocalMaxKeys = 100_000

func (c LocalConfig) withDefaults() LocalConfig {
	if c.MaxKeys == 0 {
		c.MaxKeys = DefaultLocalMaxKeys
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate checks the configuration (defaults applied first). It does no I/O.
func (c LocalConfig) Validate() error {
	c = c.withDefaults()
	if c.MaxKeys < 1 {
		return fmt.Errorf("%w: local max keys must be positive", ErrInvalidConfig)
	}
	return nil
}

// Local is an in-process GCRA limiter with the same semantics as the Redis
// one: the same integer-microsecond arithmetic, all-or-nothing charging of
// a Policy, the same Result. Its state is per process, so N instances
// behind a load balancer allow up to N times the limit. It is safe for
// concurrent use.
type Local struct {
	now    func() time.Time
	seed   maphash.Seed
	shards []localShard
	cap    int // per shard
}

type localKey struct{ subject, name string }

type localShard struct {
	mu sync.Mutex
	m  map[localKey]int64 // theoretical arrival time, µs since the epoch
}

// NewLocal returns an in-process limiter.
func NewLocal(cfg LocalConfig) (*Local, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	n := 32
	if cfg.MaxKeys < 32*64 {
		n = 1
	}
	l := &Local{
		now:    cfg.Now,
		seed:   maphash.MakeSeed(),
		shards: make([]localShard, n),
		cap:    (cfg.MaxKeys + n - 1) / n,
	}
	for i := range l.shards {
		l.shards[i].m = make(map[localKey]int64)
	}
	return l, nil
}

// Allow is AllowN with cost 1.
func (l *Local) Allow(ctx context.Context, subject string, p *Policy) (Result, error) {
	return l.AllowN(ctx, subject, p, 1)
}

// AllowN decides whether subject may spend cost cells under every limit of
// p, and charges them all if so. Its only errors are invalid input
// (ErrInvalidSubject, ErrInvalidCost, ErrInvalidLimit); ctx is unused.
func (l *Local) AllowN(_ context.Context, subject string, p *Policy, cost int) (Result, error) {
	if err := p.check(subject, cost); err != nil {
		return Result{}, err
	}
	var debts [MaxLimits]int64
	allowed := l.decide(subjectKey(subject), p, int64(cost), l.now().UnixMicro(), debts[:len(p.limits)])
	r := p.result(allowed, int64(cost), debts[:len(p.limits)])
	r.Source = SourceLocal
	return r, nil
}

// decide runs GCRA for a normalized subject at now (µs).
func (l *Local) decide(subject string, p *Policy, cost, now int64, debts []int64) bool {
	s := &l.shards[0]
	if len(l.shards) > 1 {
		s = &l.shards[maphash.String(l.seed, subject)%uint64(len(l.shards))]
	}
	var tats [MaxLimits]int64
	n := len(p.limits)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, lim := range p.limits {
		tats[i] = s.m[localKey{subject, lim.Name}]
	}
	if !p.decide(now, cost, tats[:n], debts) {
		return false
	}
	for i, lim := range p.limits {
		k := localKey{subject, lim.Name}
		if _, ok := s.m[k]; !ok && len(s.m) >= l.cap {
			s.makeRoom(now, l.cap)
		}
		s.m[k] = tats[i]
	}
	return true
}

// makeRoom drops states whose TAT has passed, then arbitrary ones, until
// the shard is at most 7/8 full, so the O(n) sweep runs at most once every
// cap/8 insertions.
func (s *localShard) makeRoom(now int64, capacity int) {
	for k, tat := range s.m {
		if tat <= now {
			delete(s.m, k)
		}
	}
	target := capacity - max(capacity/8, 1)
	for k := range s.m {
		if len(s.m) <= target {
			break
		}
		delete(s.m, k)
	}
}

// Len returns how many (subject, limit) states are held, including ones
// whose TAT has passed but that were not swept yet.
func (l *Local) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
