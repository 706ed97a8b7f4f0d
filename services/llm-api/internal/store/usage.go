package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/ledger"
	"github.com/jackc/pgx/v5"
)

var (
	_ ledger.Store  = (*PG)(nil)
	_ ledger.Reader = (*PG)(nil)
)

// InsertUsage implements ledger.Store: one batch in one transaction, an id
// already stored is skipped.
func (s *PG) InsertUsage(ctx context.Context, entries []ledger.Entry) error {
	b := &pgx.Batch{}
	for _, e := range entries {
		day, err := time.Parse(time.DateOnly, e.Day)
		if err != nil {
			return fmt.Errorf("%w: day", ledger.ErrInvalid)
		}
		b.Queue(`INSERT INTO llm_usage (reservation_id, subject, key_id, model, day, prompt_tokens, completion_tokens,
				tokens, nano_usd, reserved_tokens, overshoot_tokens, status, settled_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (reservation_id) DO NOTHING`,
			e.ID, e.Subject, e.KeyID, e.Model, day, e.PromptTokens, e.CompletionTokens, e.Tokens, e.Nano, e.Reserved,
			e.Overshoot, e.Status, e.At)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("store: insert usage: %w", sanitize(err))
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("store: insert usage: %w", sanitize(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("store: insert usage: %w", sanitize(err))
	}
	return nil
}

// Usage implements ledger.Reader: per day, model and key (and subject when
// q.Subject is empty), newest day first.
func (s *PG) Usage(ctx context.Context, q ledger.Query) ([]ledger.Row, error) {
	limit := q.Limit
	if limit <= 0 || limit > 10000 {
		limit = 1000
	}
	rows, err := s.pool.Query(ctx, `
		SELECT to_char(day, 'YYYY-MM-DD'), subject, key_id, model, count(*), sum(prompt_tokens), sum(completion_tokens),
			sum(tokens), sum(nano_usd), count(*) FILTER (WHERE status IN ('no_usage', 'failed', 'swept', 'unmetered'))
		FROM llm_usage
		WHERE day >= $1 AND day < $2 AND ($3 = '' OR subject = $3) AND ($5 = '' OR key_id = $5)
		GROUP BY day, subject, key_id, model
		ORDER BY day DESC, subject, model, key_id
		LIMIT $4`, q.From.UTC().Format(time.DateOnly), q.To.UTC().Format(time.DateOnly), q.Subject, limit, q.KeyID)
	if err != nil {
		return nil, fmt.Errorf("store: usage: %w", sanitize(err))
	}
	defer rows.Close()
	var out []ledger.Row
	for rows.Next() {
		var r ledger.Row
		var nano int64
		if err := rows.Scan(&r.Day, &r.Subject, &r.KeyID, &r.Model, &r.Requests, &r.PromptTokens, &r.CompletionTokens,
			&r.Tokens, &nano, &r.Flagged); err != nil {
			return nil, fmt.Errorf("store: usage: %w", sanitize(err))
		}
		r.USD = USD(nano)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: usage: %w", sanitize(err))
	}
	return out, nil
}

// USD formats nano-USD as an exact decimal ("0.000123").
func USD(nano int64) string {
	whole, frac := nano/budget.NanoPerUSD, nano%budget.NanoPerUSD
	f := strconv.FormatInt(frac+budget.NanoPerUSD, 10)[1:] // 9 digits
	for len(f) > 0 && f[len(f)-1] == '0' {
		f = f[:len(f)-1]
	}
	if f == "" {
		return strconv.FormatInt(whole, 10)
	}
	return strconv.FormatInt(whole, 10) + "." + f
}
