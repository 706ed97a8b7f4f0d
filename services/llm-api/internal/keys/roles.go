package keys

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// MaxRoleCacheTTL is the longest an owner's roles are cached.
const MaxRoleCacheTTL = 60 * time.Second

// CachedRoles caches a RoleSource's answers (found and not-found) for at
// most TTL (≤ 60 s), bounded in entries, with one lookup in flight per
// subject. Failures are not cached.
type CachedRoles struct {
	src     RoleSource
	ttl     time.Duration
	max     int
	now     func() time.Time
	flights singleflight.Group

	mu      sync.Mutex
	entries map[string]roleEntry
}

type roleEntry struct {
	owner    Owner
	notFound bool
	until    time.Time
}

var _ RoleSource = (*CachedRoles)(nil)

// NewCachedRoles wraps src. ttl is clamped to 1..60 s (0: 30 s); max
// entries defaults to 10000.
func NewCachedRoles(src RoleSource, ttl time.Duration, maxEntries int, now func() time.Time) *CachedRoles {
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	ttl = min(ttl, MaxRoleCacheTTL)
	if maxEntries <= 0 {
		maxEntries = 10_000
	}
	if now == nil {
		now = time.Now
	}
	return &CachedRoles{src: src, ttl: ttl, max: maxEntries, now: now, entries: map[string]roleEntry{}}
}

// Owner implements RoleSource.
func (c *CachedRoles) Owner(ctx context.Context, subject string) (Owner, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[subject]
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		if e.notFound {
			return Owner{}, ErrOwnerNotFound
		}
		return e.owner, nil
	}
	v, err, _ := c.flights.Do(subject, func() (any, error) {
		o, err := c.src.Owner(ctx, subject)
		switch {
		case err == nil:
			c.put(subject, roleEntry{owner: o, until: c.now().Add(c.ttl)})
		case errors.Is(err, ErrOwnerNotFound):
			c.put(subject, roleEntry{notFound: true, until: c.now().Add(c.ttl)})
		}
		return o, err
	})
	if err != nil {
		return Owner{}, err
	}
	return v.(Owner), nil
}

func (c *CachedRoles) put(subject string, e roleEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		now := c.now()
		for k, old := range c.entries {
			if !now.Before(old.until) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries { // still full: drop arbitrary entries
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[subject] = e
}

// Forget drops a subject's cached answer.
func (c *CachedRoles) Forget(subject string) {
	c.mu.Lock()
	delete(c.entries, subject)
	c.mu.Unlock()
}
