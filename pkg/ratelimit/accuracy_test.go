package ratelimit

import (
	"context"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// fixedWindow is the baseline: Kong's rate-limiting "redis" policy counts
// requests per calendar window (INCR, EXPIRE on the window's first hit), one
// call per limit. Allowed when every count is within its limit.
type fixedWindow struct {
	client redis.UniversalClient
	prefix string
}

func (f *fixedWindow) allow(ctx context.Context, subject string, limits []Limit, now time.Time) (bool, error) {
	allowed := true
	for _, l := range limits {
		key := f.prefix + subject + ":" + l.Name + ":" + strconv.FormatInt(now.UnixNano()/int64(l.Period), 10)
		n, err := f.client.Incr(ctx, key).Result()
		if err != nil {
			return false, err
		}
		if n == 1 {
			if err := f.client.Expire(ctx, key, l.Period).Err(); err != nil {
				return false, err
			}
		}
		if n > int64(l.Rate) {
			allowed = false
		}
	}
	return allowed, nil
}

// Two limiter instances share Redis; 8 clients hammer one subject for 5 s
// against 100/s. GCRA allows exactly burst + rate × elapsed.
func TestAccuracyTwoInstancesEightClientsWithinOnePercent(t *testing.T) {
	if testing.Short() {
		t.Skip("accuracy test runs 5 s")
	}
	addr := redisAddr(t)
	prefix := uniquePrefix(t)
	mk := func() *Limiter {
		return newTestLimiter(t, addr, func(c *Config) {
			c.KeyPrefix = prefix
			c.Timeout = time.Second // never fall back: this measures Redis
		})
	}
	instances := []*Limiter{mk(), mk()}
	p := mustLimits(t, "100/s")
	const run = 5 * time.Second
	var (
		allowed, fallbacks, decisions atomic.Int64
		first, last                   atomic.Int64 // unix ns of the first and last decision
		wg                            sync.WaitGroup
	)
	first.Store(math.MaxInt64)
	stop := time.Now().Add(run)
	for c := range 8 {
		wg.Add(1)
		go func(l *Limiter) {
			defer wg.Done()
			for {
				start := time.Now()
				if start.After(stop) {
					return
				}
				r, err := l.Allow(context.Background(), "hot", p)
				end := time.Now()
				if err != nil || r.Source == SourceLocal || r.Source == SourceFailOpen {
					fallbacks.Add(1)
					continue
				}
				decisions.Add(1)
				if r.Allowed {
					allowed.Add(1)
				}
				for v := first.Load(); start.UnixNano() < v && !first.CompareAndSwap(v, start.UnixNano()); v = first.Load() {
				}
				for v := last.Load(); end.UnixNano() > v && !last.CompareAndSwap(v, end.UnixNano()); v = last.Load() {
				}
			}
		}(instances[c%2])
	}
	wg.Wait()
	if n := fallbacks.Load(); n != 0 {
		t.Fatalf("%d decisions fell back; the accuracy run needs Redis throughout", n)
	}
	elapsed := time.Duration(last.Load() - first.Load())
	want := 100 + 100*elapsed.Seconds()
	got := float64(allowed.Load())
	t.Logf("allowed %d of %d decisions in %s; exact GCRA allowance %.1f (%.2f%% off)",
		allowed.Load(), decisions.Load(), elapsed, want, 100*(got-want)/want)
	if math.Abs(got-want) > 0.01*want {
		t.Fatalf("allowed %.0f, want %.1f ± 1%%", got, want)
	}
}

// Around a window boundary a fixed window lets through two full limits in
// a fraction of the period (Kong's flaw); GCRA never more than burst + rate ×
// elapsed.
func TestAccuracyNoDoubleBurstAtAWindowBoundary(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a second boundary")
	}
	addr := redisAddr(t)
	l := newTestLimiter(t, addr, func(c *Config) { c.Timeout = time.Second })
	fw := &fixedWindow{client: rawClient(t, addr), prefix: uniquePrefix(t)}
	const rate = 20
	p := mustLimits(t, "20/s")
	limits := p.Limits()
	// Wait until 100 ms before the next second boundary, run until 100 ms after.
	now := time.Now()
	boundary := now.Truncate(time.Second).Add(time.Second)
	if boundary.Sub(now) < 150*time.Millisecond {
		boundary = boundary.Add(time.Second)
	}
	time.Sleep(time.Until(boundary.Add(-100 * time.Millisecond)))
	end := boundary.Add(100 * time.Millisecond)

	var gcraAllowed, fwAllowed, errs atomic.Int64
	var first, last atomic.Int64
	first.Store(math.MaxInt64)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for {
				start := time.Now()
				if start.After(end) {
					return
				}
				r, err := l.Allow(ctx, "edge", p)
				if err != nil || r.Source == SourceLocal {
					errs.Add(1)
				} else if r.Allowed {
					gcraAllowed.Add(1)
				}
				for v := first.Load(); start.UnixNano() < v && !first.CompareAndSwap(v, start.UnixNano()); v = first.Load() {
				}
				ok, err := fw.allow(ctx, "edge", limits, time.Now())
				if err != nil {
					errs.Add(1)
				} else if ok {
					fwAllowed.Add(1)
				}
				stop := time.Now().UnixNano()
				for v := last.Load(); stop > v && !last.CompareAndSwap(v, stop); v = last.Load() {
				}
			}
		}()
	}
	wg.Wait()
	if n := errs.Load(); n != 0 {
		t.Fatalf("%d errors or fallbacks", n)
	}
	span := time.Duration(last.Load() - first.Load())
	bound := rate + rate*span.Seconds()
	t.Logf("in %s across a window boundary: fixed window allowed %d, GCRA %d (GCRA bound %.1f, burst %d)",
		span, fwAllowed.Load(), gcraAllowed.Load(), bound, rate)
	if g := float64(gcraAllowed.Load()); g > bound+1 {
		t.Fatalf("GCRA allowed %.0f, more than burst + rate × elapsed = %.1f", g, bound)
	}
	if g := gcraAllowed.Load(); g < rate {
		t.Fatalf("GCRA allowed only %d: the load did not exhaust the burst", g)
	}
	if f := fwAllowed.Load(); f < 2*rate-2 {
		t.Fatalf("fixed window allowed %d, expected about 2 × %d (the flaw this test demonstrates); too little load?", f, rate)
	}
}
