// Package coarseclock is a cheap clock for cache-hit paths: an atomic read
// instead of time.Now, which costs 25–85 ns on virtual machines — more than
// the rest of a cache hit.
//
// It is not a general clock: Now returns an UPPER bound of the current time
// (within Tick), so it is only for checks where "later" is the safe side,
// such as "has this cache entry expired": an entry never outlives its
// deadline. Code that injects a clock for tests should not use it.
package coarseclock

import (
	"sync"
	"sync/atomic"
	"time"
)

// Tick is the resolution: a background ticker refreshes the time this often.
const Tick = 10 * time.Millisecond

var (
	nanos atomic.Int64
	once  sync.Once
)

// Now returns a time at or after the current time, by at most 2×Tick under
// normal scheduling. The first call starts the process-wide ticker.
func Now() time.Time {
	once.Do(func() {
		nanos.Store(time.Now().UnixNano())
		go func() {
			t := time.NewTicker(Tick)
			for range t.C {
				nanos.Store(time.Now().UnixNano())
			}
		}()
	})
	return time.Unix(0, nanos.Load()+int64(Tick))
}
