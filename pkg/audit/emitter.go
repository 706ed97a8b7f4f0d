package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Defaults of Config.
const (
	DefaultStream       = "edgeguard:audit"
	DefaultMaxLen       = 100_000
	DefaultQueueSize    = 4096
	DefaultBatchSize    = 128
	DefaultWriteTimeout = time.Second
	// DefaultBackoff is how long the writer leaves Redis alone after a
	// failed batch (events in that time go to the local log).
	DefaultBackoff = 2 * time.Second
	// DefaultLinger is how long the writer collects a batch.
	DefaultLinger = 5 * time.Millisecond
)

// Drop reasons (label values of edgeguard_audit_events_dropped_total).
const (
	DropQueueFull  = "queue_full"
	DropRedisError = "redis_error"
	DropInvalid    = "invalid"
	DropClosed     = "closed"
)

// Writer appends a batch of events to the stream. RedisWriter is the real
// one; tests inject failures through it.
type Writer interface {
	Write(ctx context.Context, events []Event) error
}

// RedisWriter writes with one pipelined XADD MAXLEN ~ per event.
type RedisWriter struct {
	Client redis.UniversalClient
	Stream string
	MaxLen int64
}

// Write implements Writer.
func (w RedisWriter) Write(ctx context.Context, events []Event) error {
	pipe := w.Client.Pipeline()
	for i := range events {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: w.Stream, MaxLen: w.MaxLen, Approx: true, ID: "*", Values: events[i].Fields()})
	}
	_, err := pipe.Exec(ctx)
	return err
}

// Config configures an Emitter.
type Config struct {
	// Writer is where batches go; usually RedisWriter. Required.
	Writer Writer
	// QueueSize bounds the in-memory queue (default 4096). A full queue
	// drops to the local log; Emit never blocks.
	QueueSize int
	// BatchSize is the most events written in one pipeline (default 128).
	BatchSize int
	// WriteTimeout bounds one batch (default 1s).
	WriteTimeout time.Duration
	// Backoff is how long Redis is left alone after a failure (default 2s).
	Backoff time.Duration
	// Linger is how long the writer waits after a batch's first event for
	// more (default 5ms): the request path then wakes the writer about
	// once per batch, not once per event. Negative: no wait.
	Linger time.Duration
	// Logger receives dropped events (warn) and writer failures.
	Logger zerolog.Logger
	// Metrics counts written and dropped events; nil: a private set.
	Metrics *Metrics
	// Now is the clock (tests).
	Now func() time.Time
}

// Metrics counts what an Emitter did. Register Collectors in the
// component's registry.
type Metrics struct {
	Written prometheus.Counter
	Dropped *prometheus.CounterVec
	// Sanitized counts events kept with one or more fields replaced
	// (Event.Sanitize; the event's sanitized list names them).
	Sanitized prometheus.Counter
}

// NewMetrics returns the emitter's counters with the given constant labels.
func NewMetrics(constLabels prometheus.Labels) *Metrics {
	m := &Metrics{
		Written: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeguard_audit_events_written_total",
			Help: "Audit events appended to the Redis stream.", ConstLabels: constLabels}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeguard_audit_events_dropped_total",
			Help: "Audit events not appended to the stream (logged locally instead), by reason.", ConstLabels: constLabels},
			[]string{"reason"}),
		Sanitized: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeguard_audit_events_sanitized_total",
			Help:        "Audit events kept with one or more unacceptable fields replaced (the event's sanitized list names them).",
			ConstLabels: constLabels}),
	}
	for _, r := range []string{DropQueueFull, DropRedisError, DropInvalid, DropClosed} {
		m.Dropped.WithLabelValues(r)
	}
	return m
}

// Collectors returns the counters, for a registry.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Written, m.Dropped, m.Sanitized}
}

// Emitter queues events and appends them to the stream from one background
// writer. It is safe for concurrent use; Emit never blocks and never fails.
// A nil *Emitter discards events (audit off).
type Emitter struct {
	cfg     Config
	log     zerolog.Logger
	queue   chan Event
	stop    chan struct{}
	done    chan struct{}
	mu      sync.RWMutex // held for reading by Emit's check-and-send, for writing by Close
	closed  bool
	once    sync.Once
	downTil atomic.Int64 // unix nanos until which Redis is skipped
	pending atomic.Int64 // queued or being written
}

// New starts an Emitter's writer; call Close to flush and stop it.
func New(cfg Config) (*Emitter, error) {
	if cfg.Writer == nil {
		return nil, errors.New("audit: a writer is required")
	}
	if cfg.QueueSize < 0 || cfg.BatchSize < 0 || cfg.WriteTimeout < 0 || cfg.Backoff < 0 {
		return nil, errors.New("audit: queue size, batch size, timeout and backoff must not be negative")
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Linger == 0 {
		cfg.Linger = DefaultLinger
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Emitter{cfg: cfg, log: cfg.Logger.With().Str("component", "audit").Logger(),
		queue: make(chan Event, cfg.QueueSize), stop: make(chan struct{}), done: make(chan struct{})}
	go e.run()
	return e, nil
}

// Emit queues ev (its Time set to now when zero). When the queue is full
// or the emitter is closed, it is logged at warn and counted as dropped.
// It never blocks. Validation happens on the writer, off the request path:
// an event with an unacceptable field is sanitized there (Event.Sanitize:
// the field replaced and flagged, counted in Metrics.Sanitized) and
// written; only an event without a known action and outcome is dropped
// (counted as invalid, logged without its values).
func (e *Emitter) Emit(ev Event) {
	if e == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = e.cfg.Now().UTC()
	}
	e.mu.RLock()
	if e.closed {
		e.mu.RUnlock()
		e.drop(DropClosed, ev, nil)
		return
	}
	e.pending.Add(1)
	select {
	case e.queue <- ev:
		e.mu.RUnlock()
	default:
		e.mu.RUnlock()
		e.pending.Add(-1)
		e.drop(DropQueueFull, ev, nil)
	}
}

// sanitize is Event.Sanitize at the emitter's clock, counting the events
// it flagged.
func (e *Emitter) sanitize(ev Event) (Event, error) {
	out, err := ev.Sanitize(e.cfg.Now())
	if err == nil && out.Sanitized != ev.Sanitized {
		e.cfg.Metrics.Sanitized.Inc()
	}
	return out, err
}

// drop logs ev locally. An invalid event (no known action or outcome) is
// logged by its enumerations only: its identifiers were never checked and
// could be anything.
func (e *Emitter) drop(reason string, ev Event, err error) {
	e.cfg.Metrics.Dropped.WithLabelValues(reason).Inc()
	l := e.log.Warn().Str("audit_dropped", reason)
	// Emit does not sanitize (the writer does): an event dropped before the
	// writer saw it (queue full, closed) is sanitized here before its fields
	// reach the log, so a credential a caller put in one never does.
	if reason != DropInvalid {
		if sev, serr := e.sanitize(ev); serr != nil {
			reason, err = DropInvalid, serr
		} else {
			ev = sev
		}
	}
	if reason == DropInvalid {
		l = l.Str("action", safeEnum(string(ev.Action), ev.Action.Valid())).Str("outcome", safeEnum(string(ev.Outcome), ev.Outcome.Valid()))
		if err != nil {
			l = l.Err(err) // names the field, never the value
		}
		l.Msg("audit event refused")
		return
	}
	l.Object("audit", ev).Msg("audit event not sent to the stream")
}

func safeEnum(v string, ok bool) string {
	if ok {
		return v
	}
	return "invalid"
}

// MarshalZerologObject logs a validated (sanitized) event: every field is
// an identifier, no secret can be in it; the flagged fields as sanitized.
func (ev Event) MarshalZerologObject(z *zerolog.Event) {
	z.Time("time", ev.Time).Str("action", string(ev.Action)).Str("outcome", string(ev.Outcome)).
		Str("severity", string(ev.Severity)).Str("source", ev.Source)
	for _, kv := range [][2]string{{"request_id", ev.RequestID}, {"subject", ev.Actor.Subject}, {"key_id", ev.Actor.KeyID},
		{"client_ip", ev.Actor.IP}, {"target", ev.Target}, {"reason", ev.Reason}} {
		if kv[1] != "" {
			z.Str(kv[0], kv[1])
		}
	}
	if ev.Sanitized != 0 {
		z.Strs("sanitized", ev.Sanitized.Names())
	}
}

func (e *Emitter) run() {
	defer close(e.done)
	batch := make([]Event, 0, e.cfg.BatchSize)
	var linger *time.Timer
	if e.cfg.Linger > 0 {
		linger = time.NewTimer(e.cfg.Linger)
		linger.Stop()
	}
	for {
		select {
		case ev := <-e.queue:
			batch = append(batch[:0], ev)
			batch = e.fill(batch)
			if linger != nil && len(batch) < e.cfg.BatchSize {
				linger.Reset(e.cfg.Linger)
				select {
				case <-linger.C:
				case <-e.stop:
					linger.Stop()
				}
				batch = e.fill(batch)
			}
			e.write(batch)
		case <-e.stop:
			for {
				batch = e.fill(batch[:0])
				if len(batch) == 0 {
					return
				}
				e.write(batch)
			}
		}
	}
}

// fill appends queued events without waiting, up to the batch size.
func (e *Emitter) fill(batch []Event) []Event {
	for len(batch) < e.cfg.BatchSize {
		select {
		case ev := <-e.queue:
			batch = append(batch, ev)
		default:
			return batch
		}
	}
	return batch
}

func (e *Emitter) write(batch []Event) {
	defer e.pending.Add(-int64(len(batch)))
	valid := batch[:0]
	for _, ev := range batch {
		clean, err := e.sanitize(ev)
		if err != nil { // no known action or outcome: nothing to record
			e.drop(DropInvalid, ev, err)
			continue
		}
		valid = append(valid, clean)
	}
	e.pending.Add(-int64(len(batch) - len(valid)))
	defer e.pending.Add(int64(len(batch) - len(valid)))
	batch = valid
	if len(batch) == 0 {
		return
	}
	now := e.cfg.Now()
	if now.UnixNano() < e.downTil.Load() {
		for _, ev := range batch {
			e.drop(DropRedisError, ev, nil)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.WriteTimeout)
	err := e.cfg.Writer.Write(ctx, batch)
	cancel()
	if err != nil {
		e.downTil.Store(now.Add(e.cfg.Backoff).UnixNano())
		e.log.Warn().Str("error", redisErrorClass(err)).Int("events", len(batch)).Dur("backoff", e.cfg.Backoff).
			Msg("audit stream write failed; events go to the local log")
		for _, ev := range batch {
			e.drop(DropRedisError, ev, nil)
		}
		return
	}
	e.cfg.Metrics.Written.Add(float64(len(batch)))
}

// redisErrorClass describes a write error without its text (which could
// carry an address).
func redisErrorClass(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, redis.ErrClosed):
		return "client_closed"
	default:
		return fmt.Sprintf("%T", err)
	}
}

// Close stops accepting events, writes what is queued (each batch bounded
// by WriteTimeout) and stops the writer. Safe to call twice.
func (e *Emitter) Close() {
	if e == nil {
		return
	}
	e.once.Do(func() {
		e.mu.Lock() // no Emit is between its check and its send now
		e.closed = true
		e.mu.Unlock()
		close(e.stop)
		<-e.done
	})
}

// Flush waits until every queued event is written or dropped, or ctx ends.
func (e *Emitter) Flush(ctx context.Context) error {
	if e == nil {
		return nil
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for e.pending.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
