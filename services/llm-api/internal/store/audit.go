package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/auditlog"
	"github.com/jackc/pgx/v5"
)

var _ auditlog.Store = (*PG)(nil)

// InsertAuditEvents implements auditlog.Store: one batch, a stream id
// already stored is skipped.
func (s *PG) InsertAuditEvents(ctx context.Context, events []auditlog.Stored) error {
	b := &pgx.Batch{}
	for _, e := range events {
		b.Queue(`INSERT INTO audit_events (stream_id, ts, request_id, subject, key_id, client_ip, action, target, outcome, reason, severity, source, sanitized)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (stream_id) DO NOTHING`,
			e.StreamID, e.Time, e.RequestID, e.Actor.Subject, e.Actor.KeyID, e.Actor.IP, string(e.Action), e.Target,
			string(e.Outcome), e.Reason, string(e.Severity), e.Source, e.Sanitized.String())
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("store: insert audit events: %w", sanitize(err))
	}
	return nil
}

// AuditEvents implements auditlog.Store: newest first, filtered.
func (s *PG) AuditEvents(ctx context.Context, q auditlog.Query) ([]auditlog.Stored, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if q.Severity != "" {
		where = append(where, "severity = "+arg(string(q.Severity)))
	}
	if q.Action != "" {
		where = append(where, "action = "+arg(string(q.Action)))
	}
	if q.Actor != "" {
		p := arg(q.Actor)
		where = append(where, "(subject = "+p+" OR key_id = "+p+")")
	}
	if !q.Since.IsZero() {
		where = append(where, "ts >= "+arg(q.Since))
	}
	if q.Before > 0 {
		where = append(where, "seq < "+arg(q.Before))
	}
	sql := `SELECT seq, stream_id, ts, request_id, subject, key_id, client_ip, action, target, outcome, reason, severity, source, sanitized FROM audit_events`
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY seq DESC LIMIT " + arg(q.Limit)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("store: audit events: %w", sanitize(err))
	}
	defer rows.Close()
	var out []auditlog.Stored
	for rows.Next() {
		var e auditlog.Stored
		var action, outcome, severity, sanitized string
		if err := rows.Scan(&e.Seq, &e.StreamID, &e.Time, &e.RequestID, &e.Actor.Subject, &e.Actor.KeyID, &e.Actor.IP,
			&action, &e.Target, &outcome, &e.Reason, &severity, &e.Source, &sanitized); err != nil {
			return nil, fmt.Errorf("store: audit events: %w", err)
		}
		e.Action, e.Outcome, e.Severity = audit.Action(action), audit.Outcome(outcome), audit.Severity(severity)
		// written from a validated event; a row edited by hand to an
		// unknown list reads as no flag rather than failing the page
		e.Sanitized, _ = audit.ParseSanitized(sanitized)
		e.Time = e.Time.UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// AuditStats implements auditlog.Store.
func (s *PG) AuditStats(ctx context.Context, since time.Time) (auditlog.Stats, error) {
	st := auditlog.Stats{Since: since, ByAction: map[string]int64{}, BySeverity: map[string]int64{}, ByOutcome: map[string]int64{}}
	rows, err := s.pool.Query(ctx, `SELECT action, severity, outcome, count(*) FROM audit_events WHERE ts >= $1 GROUP BY 1, 2, 3`, since)
	if err != nil {
		return st, fmt.Errorf("store: audit stats: %w", sanitize(err))
	}
	defer rows.Close()
	for rows.Next() {
		var a, sev, out string
		var n int64
		if err := rows.Scan(&a, &sev, &out, &n); err != nil {
			return st, fmt.Errorf("store: audit stats: %w", err)
		}
		st.Total += n
		st.ByAction[a] += n
		st.BySeverity[sev] += n
		st.ByOutcome[out] += n
	}
	return st, rows.Err()
}

// DeleteAuditBefore implements auditlog.Store.
func (s *PG) DeleteAuditBefore(ctx context.Context, t time.Time, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM audit_events WHERE seq IN (SELECT seq FROM audit_events WHERE ts < $1 ORDER BY seq LIMIT $2)`, t, limit)
	if err != nil {
		return 0, fmt.Errorf("store: audit retention: %w", sanitize(err))
	}
	return tag.RowsAffected(), nil
}
