package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/entitlement"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
	"github.com/jackc/pgx/v5"
)

var _ entitlement.Store = (*PG)(nil)

const overrideColumns = `subject, tokens_per_minute, tokens_per_day, tokens_per_month, nano_usd_per_day,
	nano_usd_per_month, models, updated_at, updated_by, removed_at`

func scanOverride(row pgx.Row) (entitlement.Override, error) {
	var o entitlement.Override
	var lim nullLimits
	err := row.Scan(&o.Subject, &lim[0], &lim[1], &lim[2], &lim[3], &lim[4], &o.Models, &o.UpdatedAt, &o.UpdatedBy, &o.Removed)
	if errors.Is(err, pgx.ErrNoRows) {
		return o, entitlement.ErrNotFound
	}
	if err != nil {
		return o, fmt.Errorf("store: budget override: %w", sanitize(err))
	}
	if l := lim.limits(); l != nil {
		o.Limits = *l
	}
	o.UpdatedAt = o.UpdatedAt.UTC()
	if o.Removed != nil {
		r := o.Removed.UTC()
		o.Removed = &r
	}
	return o, nil
}

// PutOverride implements entitlement.Store: an upsert (the row stays
// locked until apply has run and the transaction commits).
func (s *PG) PutOverride(ctx context.Context, o entitlement.Override, apply func(context.Context) error) error {
	args := append([]any{o.Subject}, columnsOf(&o.Limits)...)
	args = append(args, o.Models, o.UpdatedAt, o.UpdatedBy)
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO llm_budget_overrides (`+overrideColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)
			ON CONFLICT (subject) DO UPDATE SET tokens_per_minute = $2, tokens_per_day = $3, tokens_per_month = $4,
				nano_usd_per_day = $5, nano_usd_per_month = $6, models = $7, updated_at = $8, updated_by = $9, removed_at = NULL`,
			args...); err != nil {
			return fmt.Errorf("store: budget override: %w", sanitize(err))
		}
		return apply(ctx)
	})
}

// Override implements entitlement.Store.
func (s *PG) Override(ctx context.Context, subject string) (entitlement.Override, error) {
	return scanOverride(s.pool.QueryRow(ctx, `SELECT `+overrideColumns+` FROM llm_budget_overrides
		WHERE subject = $1 AND removed_at IS NULL`, subject))
}

// RemoveOverride implements entitlement.Store: the row becomes a
// tombstone (the sync removes the Redis copy again for a day).
func (s *PG) RemoveOverride(ctx context.Context, subject, by string, at time.Time, apply func(context.Context) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE llm_budget_overrides
			SET updated_at = CASE WHEN removed_at IS NULL THEN $3 ELSE updated_at END,
				updated_by = CASE WHEN removed_at IS NULL THEN $2 ELSE updated_by END,
				removed_at = coalesce(removed_at, $3)
			WHERE subject = $1`, subject, by, at)
		if err != nil {
			return fmt.Errorf("store: budget override: %w", sanitize(err))
		}
		if tag.RowsAffected() == 0 {
			return entitlement.ErrNotFound
		}
		return apply(ctx)
	})
}

// ListOverrides implements entitlement.Store: it drops tombstones older
// than removedSince, then hands every row to apply under FOR SHARE (a PUT
// or DELETE of one of them waits for apply's Redis writes).
func (s *PG) ListOverrides(ctx context.Context, removedSince time.Time, apply func(context.Context, []entitlement.Override) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM llm_budget_overrides WHERE removed_at < $1`, removedSince); err != nil {
			return fmt.Errorf("store: budget overrides: %w", sanitize(err))
		}
		rows, err := tx.Query(ctx, `SELECT `+overrideColumns+` FROM llm_budget_overrides ORDER BY subject FOR SHARE`)
		if err != nil {
			return fmt.Errorf("store: budget overrides: %w", sanitize(err))
		}
		var out []entitlement.Override
		for rows.Next() {
			o, err := scanOverride(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, o)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: budget overrides: %w", sanitize(err))
		}
		return apply(ctx, out)
	})
}

// KeyBudgets implements entitlement.Store (the partial index
// api_keys_budgeted).
func (s *PG) KeyBudgets(ctx context.Context, endedSince time.Time) ([]entitlement.KeyBudget, error) {
	rows, err := s.pool.Query(ctx, `SELECT owner_subject, kid, budget_tokens_per_minute, budget_tokens_per_day,
			budget_tokens_per_month, budget_nano_usd_per_day, budget_nano_usd_per_month, models, expires_at, revoked_at
		FROM api_keys
		WHERE (budget_tokens_per_minute IS NOT NULL OR budget_tokens_per_day IS NOT NULL OR budget_tokens_per_month IS NOT NULL
			OR budget_nano_usd_per_day IS NOT NULL OR budget_nano_usd_per_month IS NOT NULL OR models IS NOT NULL)
			AND (expires_at IS NULL OR expires_at > $1) AND (revoked_at IS NULL OR revoked_at > $1)
		ORDER BY owner_subject, kid`, endedSince)
	if err != nil {
		return nil, fmt.Errorf("store: key budgets: %w", sanitize(err))
	}
	defer rows.Close()
	var out []entitlement.KeyBudget
	for rows.Next() {
		var r keys.Record
		var lim nullLimits
		if err := rows.Scan(&r.Owner, &r.KID, &lim[0], &lim[1], &lim[2], &lim[3], &lim[4], &r.Models, &r.ExpiresAt, &r.RevokedAt); err != nil {
			return nil, fmt.Errorf("store: key budgets: %w", sanitize(err))
		}
		utc(&r)
		out = append(out, entitlement.KeyBudget{Owner: r.Owner, KID: r.KID, Budget: lim.limits(), Models: r.Models, End: r.End()})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: key budgets: %w", sanitize(err))
	}
	return out, nil
}
