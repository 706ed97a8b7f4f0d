package keys

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// RevocationQueue lists revoked keys whose revocation has not been announced
// yet, and marks them announced.
type RevocationQueue interface {
	PendingRevocations(ctx context.Context, now time.Time, limit int) ([]Record, error)
	MarkPublished(ctx context.Context, ids []string, at time.Time) error
}

// Sweeper announces revocations on the Publisher: at once when a key is
// revoked (PublishNow), and from the queue every interval for what that
// missed — a rotation's grace period ending, Redis down at revocation time,
// a crash in between. Announcing twice is harmless (dropping a cache entry
// is always safe), so several llm-api instances may sweep at once.
type Sweeper struct {
	queue    RevocationQueue
	pub      Publisher
	interval time.Duration
	now      func() time.Time
	log      zerolog.Logger
}

// NewSweeper returns a sweeper polling every interval (default 1 s, so a
// grace period ends at the edge within about a second).
func NewSweeper(queue RevocationQueue, pub Publisher, interval time.Duration, now func() time.Time, log zerolog.Logger) *Sweeper {
	if interval <= 0 {
		interval = time.Second
	}
	if now == nil {
		now = time.Now
	}
	return &Sweeper{queue: queue, pub: pub, interval: interval, now: now, log: log}
}

// PublishNow announces rec's revocation and marks it announced; on failure
// the sweep retries.
func (s *Sweeper) PublishNow(ctx context.Context, rec Record, at time.Time) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishWait)
	defer cancel()
	if err := s.pub.PublishRevocation(ctx, rec.KID, at); err != nil {
		s.log.Warn().Err(err).Str("kid", rec.KID).Msg("revocation publish failed; the sweep retries")
		return
	}
	if err := s.queue.MarkPublished(ctx, []string{rec.ID}, s.now()); err != nil {
		s.log.Warn().Err(err).Str("kid", rec.KID).Msg("marking a revocation published failed")
	}
}

// Sweep announces every pending revocation once.
func (s *Sweeper) Sweep(ctx context.Context) error {
	now := s.now()
	recs, err := s.queue.PendingRevocations(ctx, now, 500)
	if err != nil {
		return err
	}
	var done []string
	for _, r := range recs {
		at := now
		if r.RevokedAt != nil {
			at = *r.RevokedAt
		}
		if err := s.pub.PublishRevocation(ctx, r.KID, at); err != nil {
			return err
		}
		done = append(done, r.ID)
		s.log.Debug().Str("kid", r.KID).Msg("revocation announced")
	}
	if len(done) == 0 {
		return nil
	}
	return s.queue.MarkPublished(ctx, done, now)
}

// Run sweeps every interval until ctx ends.
func (s *Sweeper) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := s.Sweep(ctx)
			if err != nil && !failing && ctx.Err() == nil {
				s.log.Warn().Err(err).Msg("revocation sweep failed; retrying every interval")
			}
			failing = err != nil
		}
	}
}
