// Package logthrottle keeps warnings about a persistent condition (Redis
// down, a validator unreachable) to one log line per interval, counting the
// lines it held back, so an outage never turns into a log line per request.
package logthrottle

import (
	"sync/atomic"
	"time"
)

// Throttle lets one event through per Interval. The zero Throttle lets every
// event through; set Interval before use. Safe for concurrent use.
type Throttle struct {
	Interval   time.Duration
	last       atomic.Int64 // unix ns of the last event let through
	suppressed atomic.Uint64
}

// Allow reports whether the event at now may be logged, and how many events
// were held back since the last one that was.
func (t *Throttle) Allow(now time.Time) (suppressed uint64, ok bool) {
	last := t.last.Load()
	n := now.UnixNano()
	if (last != 0 && n-last < int64(t.Interval)) || !t.last.CompareAndSwap(last, n) {
		t.suppressed.Add(1)
		return 0, false
	}
	return t.suppressed.Swap(0), true
}
