package ratelimit

import (
	"sync"
	"time"
)

// denyCache remembers subjects Redis denied, so that until their retry-after
// passes they are denied without a round trip. It is exact for the cost it
// saw: denials charge nothing, and other instances' requests can only push a
// subject's TAT further out, so the subject stays denied at least until then.
type denyCache struct {
	capacity int
	mu       sync.Mutex
	m        map[denyKey]*denyEntry
}

type denyKey struct{ policy, subject string }

type denyEntry struct {
	at    time.Time // local clock when Redis answered
	until time.Time // at + retry-after
	cost  int64
	debts []int64 // per limit, at `at`
}

func newDenyCache(capacity int) *denyCache {
	return &denyCache{capacity: capacity, m: make(map[denyKey]*denyEntry)}
}

// get returns the denial for subject under p at now, aged by the time since
// Redis gave it, if one with the same cost is still in force.
func (c *denyCache) get(p *Policy, subject string, cost int64, now time.Time) (Result, bool) {
	k := denyKey{p.id, subject}
	c.mu.Lock()
	e, ok := c.m[k]
	if ok && !now.Before(e.until) {
		delete(c.m, k)
		ok = false
	}
	c.mu.Unlock()
	if !ok || e.cost != cost {
		return Result{}, false
	}
	var debts [MaxLimits]int64
	elapsed := now.Sub(e.at).Microseconds()
	for i, d := range e.debts {
		debts[i] = d - elapsed
	}
	r := p.result(false, cost, debts[:len(e.debts)])
	r.Source = SourceDenyCache
	return r, true
}

// put records a denial Redis just gave (r built from debts).
func (c *denyCache) put(p *Policy, subject string, cost int64, debts []int64, r Result, now time.Time) {
	wait := r.RetryAfter()
	if wait <= 0 {
		return
	}
	e := &denyEntry{at: now, until: now.Add(wait), cost: cost, debts: append([]int64(nil), debts...)}
	k := denyKey{p.id, subject}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.capacity {
		c.makeRoom(now)
	}
	c.m[k] = e
}

// makeRoom drops expired entries, then arbitrary ones, down to 7/8 of the
// capacity (so the sweep runs at most once per capacity/8 insertions).
func (c *denyCache) makeRoom(now time.Time) {
	for k, e := range c.m {
		if !now.Before(e.until) {
			delete(c.m, k)
		}
	}
	target := c.capacity - max(c.capacity/8, 1)
	for k := range c.m {
		if len(c.m) <= target {
			break
		}
		delete(c.m, k)
	}
}

func (c *denyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
