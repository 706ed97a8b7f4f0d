package auditlog

import (
	"context"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Stored is an event as the database holds it.
type Stored struct {
	Seq      int64
	StreamID string
	audit.Event
}

// Stats counts stored events since a time.
type Stats struct {
	Since      time.Time        `json:"since"`
	Total      int64            `json:"total"`
	ByAction   map[string]int64 `json:"by_action"`
	BySeverity map[string]int64 `json:"by_severity"`
	ByOutcome  map[string]int64 `json:"by_outcome"`
}

// Store persists events (package store implements it on PostgreSQL).
type Store interface {
	// InsertAuditEvents stores events; an event whose StreamID is already
	// stored is skipped (redelivery).
	InsertAuditEvents(ctx context.Context, events []Stored) error
	AuditEvents(ctx context.Context, q Query) ([]Stored, error)
	AuditStats(ctx context.Context, since time.Time) (Stats, error)
	// DeleteAuditBefore deletes at most limit events older than t.
	DeleteAuditBefore(ctx context.Context, t time.Time, limit int) (int64, error)
}

// Reader is the stream side (pkg/audit's Consumer).
type Reader interface {
	EnsureGroup(ctx context.Context) error
	Read(ctx context.Context) ([]audit.Message, error)
	Ack(ctx context.Context, ids ...string) error
	// Rewind makes the next Read start with the pending entries again.
	Rewind()
}

// Ingester moves events from the stream into the store: read, insert,
// then acknowledge. A crash between insert and ack redelivers the entries,
// and the insert skips them (keyed by stream id): at-least-once delivery,
// each event stored once. Entries that fail validation are acknowledged
// and counted, never stored.
type Ingester struct {
	Reader Reader
	Store  Store
	Logger zerolog.Logger
	// Retention deletes events older than this (0: keep forever).
	Retention time.Duration
	// RetentionInterval is the period of the retention loop (default 1h).
	RetentionInterval time.Duration
	Now               func() time.Time

	Metrics *IngestMetrics
}

// IngestMetrics counts the ingester's work.
type IngestMetrics struct {
	Stored   prometheus.Counter
	Rejected prometheus.Counter
	Deleted  prometheus.Counter
}

// NewIngestMetrics returns the counters.
func NewIngestMetrics() *IngestMetrics {
	return &IngestMetrics{
		Stored: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeguard_audit_events_stored_total",
			Help: "Audit stream entries stored in PostgreSQL (redeliveries included)."}),
		Rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeguard_audit_events_rejected_total",
			Help: "Audit stream entries that failed validation (acknowledged, not stored)."}),
		Deleted: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeguard_audit_events_expired_total",
			Help: "Stored audit events deleted by the retention loop."}),
	}
}

// Collectors returns the counters for a registry.
func (m *IngestMetrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Stored, m.Rejected, m.Deleted}
}

func (in *Ingester) defaults() {
	if in.Now == nil {
		in.Now = time.Now
	}
	if in.RetentionInterval <= 0 {
		in.RetentionInterval = time.Hour
	}
	if in.Metrics == nil {
		in.Metrics = NewIngestMetrics()
	}
}

// Step reads one batch, stores it and acknowledges it. It returns how many
// entries it handled.
func (in *Ingester) Step(ctx context.Context) (int, error) {
	in.defaults()
	msgs, err := in.Reader.Read(ctx)
	if err != nil || len(msgs) == 0 {
		return 0, err
	}
	var good []Stored
	ids := make([]string, 0, len(msgs))
	rejected := 0
	for _, m := range msgs {
		ids = append(ids, m.ID)
		if m.Err != nil {
			rejected++
			in.Logger.Warn().Str("stream_id", m.ID).Err(m.Err).Msg("audit stream entry refused")
			continue
		}
		good = append(good, Stored{StreamID: m.ID, Event: m.Event})
	}
	if len(good) > 0 {
		if err := in.Store.InsertAuditEvents(ctx, good); err != nil {
			return 0, err // not acknowledged: redelivered on the next Read after a restart
		}
	}
	if err := in.Reader.Ack(ctx, ids...); err != nil {
		return 0, err
	}
	in.Metrics.Stored.Add(float64(len(good)))
	in.Metrics.Rejected.Add(float64(rejected))
	return len(msgs), nil
}

// Run ingests until ctx ends, backing off on errors, and runs the
// retention loop.
func (in *Ingester) Run(ctx context.Context) {
	in.defaults()
	done := make(chan struct{})
	go func() {
		defer close(done)
		in.retentionLoop(ctx)
	}()
	defer func() { <-done }()
	backoff := time.Duration(0)
	rewound := in.Now()
	for ctx.Err() == nil {
		if backoff > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
		if err := in.Reader.EnsureGroup(ctx); err != nil {
			backoff = next(backoff)
			in.Logger.Warn().Err(err).Dur("retry_in", backoff).Msg("audit stream unavailable")
			continue
		}
		backoff = 0
		for ctx.Err() == nil {
			if in.Now().Sub(rewound) > time.Minute {
				// pending entries of a failed store, and a dead replica's
				// entries (claimed after the consumer's ClaimIdle)
				in.Reader.Rewind()
				rewound = in.Now()
			}
			if _, err := in.Step(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				in.Reader.Rewind() // what was read and not stored comes again
				backoff = next(backoff)
				in.Logger.Warn().Err(err).Dur("retry_in", backoff).Msg("audit ingest failed")
				break
			}
		}
	}
}

func next(d time.Duration) time.Duration {
	if d == 0 {
		return 500 * time.Millisecond
	}
	return min(2*d, 30*time.Second)
}

// Expire deletes events older than the retention, in batches.
func (in *Ingester) Expire(ctx context.Context) (int64, error) {
	in.defaults()
	if in.Retention <= 0 {
		return 0, nil
	}
	cutoff := in.Now().Add(-in.Retention)
	var total int64
	for ctx.Err() == nil {
		n, err := in.Store.DeleteAuditBefore(ctx, cutoff, 5000)
		total += n
		in.Metrics.Deleted.Add(float64(n))
		if err != nil {
			return total, err
		}
		if n < 5000 {
			break
		}
	}
	return total, nil
}

func (in *Ingester) retentionLoop(ctx context.Context) {
	t := time.NewTicker(in.RetentionInterval)
	defer t.Stop()
	for {
		n, err := in.Expire(ctx)
		if err != nil && ctx.Err() == nil {
			in.Logger.Warn().Err(err).Msg("audit retention failed")
		} else if n > 0 {
			in.Logger.Info().Int64("deleted", n).Msg("expired audit events deleted")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
