package jwtauth

import (
	"sync"
	"sync/atomic"
	"time"
)

// coarseTick is the resolution of the cache-hit clock.
const coarseTick = 10 * time.Millisecond

var (
	coarseNanos atomic.Int64
	coarseOnce  sync.Once
)

// coarseNow returns an upper bound of the current time within coarseTick,
// read from an atomic: time.Now costs ~25–60 ns on virtual machines, more
// than the rest of a cache hit. It is used only where "later" is the safe
// side — the exp and max-stale checks of a cached token — so a cached token
// still never outlives its exp.
func coarseNow() time.Time {
	coarseOnce.Do(func() {
		coarseNanos.Store(time.Now().UnixNano())
		go func() {
			t := time.NewTicker(coarseTick)
			for range t.C {
				coarseNanos.Store(time.Now().UnixNano())
			}
		}()
	})
	return time.Unix(0, coarseNanos.Load()+int64(coarseTick))
}
