// Package coarseclock is a cheap clock for cache-hit paths: an atomic read
// instead of time.Now, which costs 25–85 ns on virtual machines — more than
// the rest of a cache hit.
//
// It is not a general clock: Now returns an UPPER bound of the current time —
// the last tick plus Slack — so it is only for checks where "later" is the
// safe side, such as "has this cache entry expired": an entry may expire up
// to Slack early, and never outlives its deadline unless the ticker stalls
// for more than Slack (a starved process). Code that injects a clock for
// tests should not use it.
package coarseclock

import (
	"sync"
	"sync/atomic"
	"time"
)

// Tick is the resolution: a background ticker refreshes the time this often.
// Slack is added to every reading: it covers a ticker that fires late under
// load (seen here: tens of milliseconds at load average 10 on 2 cores).
const (
	Tick  = 10 * time.Millisecond
	Slack = time.Second
)

var (
	nanos atomic.Int64
	once  sync.Once
)

// Now returns a time at or after the current time (by at most Tick+Slack).
// The first call starts the process-wide ticker.
func Now() time.Time {
	return time.Unix(0, NowNanos())
}

// NowNanos is Now as Unix nanoseconds, without building a time.Time (for
// the hottest paths: an atomic load and an add).
func NowNanos() int64 {
	once.Do(start)
	return nanos.Load() + int64(Slack)
}

func start() {
	nanos.Store(time.Now().UnixNano())
	go func() {
		t := time.NewTicker(Tick)
		for range t.C {
			nanos.Store(time.Now().UnixNano())
		}
	}()
}
