// Package store keeps llm-api's API keys in PostgreSQL (pgx/v5): the schema
// migrations (embedded, applied at start-up with goose under a session
// lock, so concurrent instances migrate once) and the keys.Store,
// keys.Toucher and keys.RevocationQueue implementations.
//
// It holds no rules: limits, roles and validation are package keys'.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrations embed.FS

// PG is the PostgreSQL store.
type PG struct {
	pool *pgxpool.Pool
}

var (
	_ keys.Store           = (*PG)(nil)
	_ keys.Toucher         = (*PG)(nil)
	_ keys.RevocationQueue = (*PG)(nil)
)

// Open connects to dsn (a pgx connection string or URL). It does not
// migrate: call Migrate.
func Open(ctx context.Context, dsn string) (*PG, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx errors can quote the DSN; never pass them on.
		return nil, errors.New("store: DATABASE_URL is not a valid PostgreSQL connection string")
	}
	if cfg.MaxConns < 4 {
		cfg.MaxConns = 4
	}
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect: %w", sanitize(err))
	}
	return &PG{pool: pool}, nil
}

// sanitize drops the text of connection errors that may carry the DSN:
// pgconn's ConnectError includes the config; keep only its inner error.
func sanitize(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return errors.New("cannot connect to the database: " + ce.Unwrap().Error())
	}
	return err
}

// Close closes the pool.
func (s *PG) Close() { s.pool.Close() }

// Ping checks the database (readiness).
func (s *PG) Ping(ctx context.Context) error { return sanitize(s.pool.Ping(ctx)) }

// Migrate applies the embedded migrations that are not applied yet. It is
// idempotent and safe to run from several instances at once (a PostgreSQL
// advisory session lock serializes them).
func (s *PG) Migrate(ctx context.Context) ([]string, error) {
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	return migrate(ctx, db)
}

func migrate(ctx context.Context, db *sql.DB) ([]string, error) {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 120))
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithSessionLocker(locker))
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w", sanitize(err))
	}
	var applied []string
	for _, r := range res {
		if !r.Empty {
			applied = append(applied, r.Source.Path)
		}
	}
	return applied, nil
}

const columns = `id::text, kid, hmac, pepper_id, owner_subject, name, roles, last4,
	created_at, expires_at, revoked_at, last_used_at, coalesce(replaced_by::text, ''),
	budget_tokens_per_minute, budget_tokens_per_day, budget_tokens_per_month, budget_nano_usd_per_day,
	budget_nano_usd_per_month, models`

func scan(row pgx.Row) (keys.Record, error) {
	var r keys.Record
	var lim nullLimits
	err := row.Scan(&r.ID, &r.KID, &r.MAC, &r.PepperID, &r.Owner, &r.Name, &r.Roles, &r.Last4,
		&r.CreatedAt, &r.ExpiresAt, &r.RevokedAt, &r.LastUsedAt, &r.ReplacedBy,
		&lim[0], &lim[1], &lim[2], &lim[3], &lim[4], &r.Models)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, keys.ErrNotFound
	}
	if r.Roles == nil {
		r.Roles = []string{}
	}
	r.Budget = lim.limits()
	utc(&r)
	return r, err
}

// nullLimits are a budget's five windows as nullable columns (NULL: no
// limit in that window).
type nullLimits [5]*int64

// limits is nil when no window is set.
func (n nullLimits) limits() *budget.Limits {
	v := func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	}
	l := budget.Limits{TokensPerMinute: v(n[0]), TokensPerDay: v(n[1]), TokensPerMonth: v(n[2]),
		NanoUSDPerDay: v(n[3]), NanoUSDPerMonth: v(n[4])}
	if l.Zero() {
		return nil
	}
	return &l
}

// columnsOf turns limits into the five nullable columns (0: NULL).
func columnsOf(l *budget.Limits) []any {
	if l == nil {
		return []any{nil, nil, nil, nil, nil}
	}
	out := make([]any, 0, 5)
	for _, v := range []int64{l.TokensPerMinute, l.TokensPerDay, l.TokensPerMonth, l.NanoUSDPerDay, l.NanoUSDPerMonth} {
		if v == 0 {
			out = append(out, nil)
		} else {
			out = append(out, v)
		}
	}
	return out
}

func utc(r *keys.Record) {
	r.CreatedAt = r.CreatedAt.UTC()
	for _, t := range []**time.Time{&r.ExpiresAt, &r.RevokedAt, &r.LastUsedAt} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
}

// uniqueErr maps a unique violation to the store errors.
func uniqueErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		switch pe.ConstraintName {
		case "api_keys_kid_key":
			return keys.ErrKIDTaken
		case "api_keys_owner_name_active":
			return keys.ErrNameTaken
		}
	}
	return err
}

func insert(ctx context.Context, tx pgx.Tx, rec *keys.Record) error {
	args := []any{rec.ID, rec.KID, rec.MAC, rec.PepperID, rec.Owner, rec.Name, rec.Roles, rec.Last4, rec.CreatedAt, rec.ExpiresAt}
	args = append(append(args, columnsOf(rec.Budget)...), rec.Models)
	_, err := tx.Exec(ctx, `INSERT INTO api_keys
		(id, kid, hmac, pepper_id, owner_subject, name, roles, last4, created_at, expires_at,
		 budget_tokens_per_minute, budget_tokens_per_day, budget_tokens_per_month, budget_nano_usd_per_day,
		 budget_nano_usd_per_month, models)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`, args...)
	return uniqueErr(err)
}

// lockOwner serializes the key operations of one owner within a
// transaction (the active-key limit is a count, not a constraint).
func lockOwner(ctx context.Context, tx pgx.Tx, owner string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 7305))`, owner)
	return err
}

// Create implements keys.Store.
func (s *PG) Create(ctx context.Context, rec *keys.Record, maxActive int, now time.Time) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockOwner(ctx, tx, rec.Owner); err != nil {
			return err
		}
		var active int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM api_keys
			WHERE owner_subject = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)`,
			rec.Owner, now).Scan(&active); err != nil {
			return err
		}
		if active >= maxActive {
			return keys.ErrLimit
		}
		return insert(ctx, tx, rec)
	})
}

// List implements keys.Store.
func (s *PG) List(ctx context.Context, owner string, limit int) ([]keys.Record, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM api_keys
		WHERE owner_subject = $1 ORDER BY created_at DESC, id LIMIT $2`, owner, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []keys.Record{}
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Revoke implements keys.Store.
func (s *PG) Revoke(ctx context.Context, owner, id string, now time.Time) (keys.Record, bool, error) {
	var rec keys.Record
	changed := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		rec, err = scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM api_keys
			WHERE id = $1 AND owner_subject = $2 FOR UPDATE`, id, owner))
		if err != nil {
			return err
		}
		if rec.RevokedAt != nil && !rec.RevokedAt.After(now) {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE api_keys SET revoked_at = $2, revocation_published_at = NULL WHERE id = $1`, id, now); err != nil {
			return err
		}
		rec.RevokedAt = &now
		changed = true
		return nil
	})
	return rec, changed, err
}

// Rotate implements keys.Store.
func (s *PG) Rotate(ctx context.Context, owner, id string, build func(keys.Record) (*keys.Record, error), revokeAt, now time.Time) (keys.Record, keys.Record, error) {
	var old, created keys.Record
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockOwner(ctx, tx, owner); err != nil {
			return err
		}
		var err error
		old, err = scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM api_keys
			WHERE id = $1 AND owner_subject = $2 FOR UPDATE`, id, owner))
		if err != nil {
			return err
		}
		if old.RevokedAt != nil || old.ReplacedBy != "" || old.Status(now) != keys.StatusActive {
			return keys.ErrNotActive
		}
		rec, err := build(old)
		if err != nil {
			return err
		}
		// free the name for the new key first (partial unique index)
		if _, err := tx.Exec(ctx, `UPDATE api_keys SET revoked_at = $2 WHERE id = $1`, id, revokeAt); err != nil {
			return err
		}
		if err := insert(ctx, tx, rec); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE api_keys SET replaced_by = $2 WHERE id = $1`, id, rec.ID); err != nil {
			return err
		}
		old.RevokedAt, old.ReplacedBy = &revokeAt, rec.ID
		created = *rec
		return nil
	})
	return old, created, err
}

// ByKID implements keys.Store.
func (s *PG) ByKID(ctx context.Context, kid string) (keys.Record, error) {
	return scan(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM api_keys WHERE kid = $1`, kid))
}

// Rehash implements keys.Store.
func (s *PG) Rehash(ctx context.Context, id, oldPepper string, mac []byte, pepperID string) error {
	_, err := s.pool.Exec(ctx, `UPDATE api_keys SET hmac = $3, pepper_id = $4 WHERE id = $1 AND pepper_id = $2`,
		id, oldPepper, mac, pepperID)
	return err
}

// TouchLastUsed implements keys.Toucher: one statement per batch.
func (s *PG) TouchLastUsed(ctx context.Context, used map[string]time.Time) error {
	ids := make([]string, 0, len(used))
	ts := make([]time.Time, 0, len(used))
	for id, t := range used {
		ids = append(ids, id)
		ts = append(ts, t)
	}
	_, err := s.pool.Exec(ctx, `UPDATE api_keys k SET last_used_at = u.t
		FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, t)
		WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.t)`, ids, ts)
	return err
}

// PendingRevocations implements keys.RevocationQueue.
func (s *PG) PendingRevocations(ctx context.Context, now time.Time, limit int) ([]keys.Record, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM api_keys
		WHERE revoked_at IS NOT NULL AND revocation_published_at IS NULL AND revoked_at <= $1
		ORDER BY revoked_at LIMIT $2`, now, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []keys.Record
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// MarkPublished implements keys.RevocationQueue. A key revoked again after
// the announcement (revoked_at moved) is marked too: it was announced.
func (s *PG) MarkPublished(ctx context.Context, ids []string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE api_keys SET revocation_published_at = $2
		WHERE id = ANY($1::uuid[]) AND revocation_published_at IS NULL AND revoked_at <= $2`, ids, at)
	return err
}
