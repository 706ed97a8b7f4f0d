package guests

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/rs/zerolog"
)

// Cleaner deletes guests older than TTL, every Interval. It lists guests in
// pages (attribute guest=true) and collects the expired ones first, then
// deletes them, so deletions never shift the pages it is reading. Several
// llm-api instances may clean at once: a guest another instance deleted
// first counts as gone.
type Cleaner struct {
	Directory Directory
	// TTL is a guest's lifetime (GUEST_TTL, default 24 h).
	TTL time.Duration
	// Interval between sweeps (GUEST_CLEANUP_INTERVAL, default 10 min).
	Interval time.Duration
	// PageSize of the listing (default 100); MaxPerSweep bounds the
	// deletions of one sweep (default 5000; the next sweep goes on).
	PageSize    int
	MaxPerSweep int
	Now         func() time.Time
	// Audit receives a guest.deleted event per deleted guest (nil: off).
	Audit  *audit.Emitter
	Logger zerolog.Logger
}

// SweepResult counts one sweep.
type SweepResult struct {
	Listed, Expired, Deleted, Failed int
}

func (c *Cleaner) defaults() {
	if c.TTL <= 0 {
		c.TTL = 24 * time.Hour
	}
	if c.Interval <= 0 {
		c.Interval = 10 * time.Minute
	}
	if c.PageSize <= 0 {
		c.PageSize = 100
	}
	if c.MaxPerSweep <= 0 {
		c.MaxPerSweep = 5000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// expired reports whether u is a guest created before cutoff. Only users
// named guest-… with attribute guest=true are ever deleted.
func expired(u User, cutoff time.Time) bool {
	return u.Guest && strings.HasPrefix(u.Username, UsernamePrefix) && u.ID != "" &&
		!u.CreatedAt.IsZero() && u.CreatedAt.Before(cutoff)
}

// Sweep deletes the guests that expired by now. A listing failure ends the
// sweep with an error (after deleting what it already found); a failed
// deletion is counted and the sweep goes on.
func (c *Cleaner) Sweep(ctx context.Context) (SweepResult, error) {
	c.defaults()
	cutoff := c.Now().Add(-c.TTL)
	var res SweepResult
	var ids []string
	var listErr error
	for first := 0; len(ids) < c.MaxPerSweep; first += c.PageSize {
		page, err := c.Directory.ListGuests(ctx, first, c.PageSize)
		if err != nil {
			listErr = err
			break
		}
		res.Listed += len(page)
		for _, u := range page {
			if expired(u, cutoff) && len(ids) < c.MaxPerSweep {
				ids = append(ids, u.ID)
			}
		}
		if len(page) < c.PageSize {
			break
		}
	}
	res.Expired = len(ids)
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		err := c.Directory.DeleteUser(ctx, id)
		switch {
		case err == nil, errors.Is(err, ErrUserNotFound):
			res.Deleted++
			c.Audit.Emit(audit.Event{Actor: audit.Actor{Subject: "llm-api"}, Action: audit.ActionGuestDeleted, Target: id,
				Outcome: audit.OutcomeSuccess, Reason: "guest_expired", Severity: audit.SeverityInfo, Source: "llm-api"})
		default:
			res.Failed++
			c.Logger.Warn().Err(err).Str("user_id", id).Msg("deleting an expired guest failed")
		}
	}
	return res, listErr
}

// Run sweeps at once and then every Interval until ctx ends, logging the
// counts of every sweep that found something.
func (c *Cleaner) Run(ctx context.Context) {
	c.defaults()
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		res, err := c.Sweep(ctx)
		ev := c.Logger.Debug()
		if err != nil && ctx.Err() == nil {
			ev = c.Logger.Warn().Err(err)
		} else if res.Expired > 0 {
			ev = c.Logger.Info()
		}
		ev.Int("listed", res.Listed).Int("expired", res.Expired).Int("deleted", res.Deleted).
			Int("failed", res.Failed).Dur("ttl", c.TTL).Msg("guest cleanup")
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
