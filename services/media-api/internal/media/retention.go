package media

import (
	"context"
	"errors"
	"time"
)

// SweepResult counts what one retention pass did.
type SweepResult struct {
	Scanned int
	Deleted int
	Failed  int
	Orphans int // debris removed (temporary files, bytes without metadata)
}

// Sweep deletes every object whose retention period has ended, and debris
// older than OrphanGrace when the store can leave some.
func (s *Service) Sweep(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	now := s.cfg.Now()
	err := s.cfg.Store.List(ctx, func(m Meta) error {
		res.Scanned++
		if now.Before(s.ExpiresAt(m)) {
			return nil
		}
		switch err := s.cfg.Store.Delete(ctx, m.ID); {
		case err == nil:
			res.Deleted++
		case errors.Is(err, ErrNotFound): // deleted meanwhile
		default:
			res.Failed++
			s.log.Warn().Err(err).Str("media_id", m.ID).Msg("retention: delete failed")
		}
		return ctx.Err()
	})
	if err != nil {
		return res, err
	}
	if or, ok := s.cfg.Store.(OrphanRemover); ok {
		n, err := or.RemoveOrphans(ctx, now.Add(-s.cfg.OrphanGrace))
		res.Orphans = n
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// RunRetention sweeps at once and then every interval until ctx ends,
// logging the counts of each pass.
func (s *Service) RunRetention(ctx context.Context, interval time.Duration) {
	log := s.log.With().Str("component", "retention").Logger()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		res, err := s.Sweep(ctx)
		ev := log.Debug()
		if res.Deleted > 0 || res.Failed > 0 || res.Orphans > 0 {
			ev = log.Info()
		}
		if err != nil && ctx.Err() == nil {
			ev = log.Warn().Err(err)
		}
		ev.Int("scanned", res.Scanned).Int("deleted", res.Deleted).Int("failed", res.Failed).
			Int("orphans", res.Orphans).Dur("retention", s.cfg.Retention).Msg("retention pass")
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
