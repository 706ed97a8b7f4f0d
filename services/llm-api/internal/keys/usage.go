package keys

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Toucher stores last-use times in one batch (id → time).
type Toucher interface {
	TouchLastUsed(ctx context.Context, used map[string]time.Time) error
}

// Usage collects the last use of each key in memory and writes them in
// batches (last_used_at is not updated per request). The batch is bounded:
// beyond MaxPending distinct keys, new ones wait for the next flush.
type Usage struct {
	store      Toucher
	interval   time.Duration
	maxPending int
	log        zerolog.Logger

	mu      sync.Mutex
	pending map[string]time.Time
}

// NewUsage returns a batcher flushing every interval (default 10 s).
func NewUsage(store Toucher, interval time.Duration, log zerolog.Logger) *Usage {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	return &Usage{store: store, interval: interval, maxPending: 100_000, log: log, pending: map[string]time.Time{}}
}

// Record notes that key id was used at t.
func (u *Usage) Record(id string, t time.Time) {
	u.mu.Lock()
	if prev, ok := u.pending[id]; ok {
		if t.After(prev) {
			u.pending[id] = t
		}
	} else if len(u.pending) < u.maxPending {
		u.pending[id] = t
	}
	u.mu.Unlock()
}

// Flush writes the pending batch. On failure the batch is merged back.
func (u *Usage) Flush(ctx context.Context) error {
	u.mu.Lock()
	batch := u.pending
	u.pending = map[string]time.Time{}
	u.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := u.store.TouchLastUsed(ctx, batch); err != nil {
		for id, t := range batch {
			u.Record(id, t)
		}
		return err
	}
	return nil
}

// Run flushes every interval until ctx ends, then once more.
func (u *Usage) Run(ctx context.Context) {
	t := time.NewTicker(u.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := u.Flush(fctx); err != nil {
				u.log.Warn().Err(err).Msg("last-used flush at shutdown failed")
			}
			cancel()
			return
		case <-t.C:
			if err := u.Flush(ctx); err != nil {
				u.log.Warn().Err(err).Msg("last-used flush failed; retrying next interval")
			}
		}
	}
}
