// Package ledger is llm-api's usage ledger: every settled (or swept)
// reservation, batched into PostgreSQL by a Writer that never blocks the
// request path for long and never stores an entry twice (the
// server-generated reservation id is the key), and the usage summaries the
// /v1/usage routes answer with.
//
// It does not decide budgets (package budget) and holds no SQL (the Store
// is package store's).
package ledger

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Entry is one settled request.
type Entry struct {
	budget.Record
	PromptTokens, CompletionTokens int64
	// Tokens and Nano are what was charged; Reserved what was reserved;
	// Overshoot what the model server used beyond it.
	Tokens, Nano, Reserved, Overshoot int64
	Status                            string
	At                                time.Time
}

// Statuses of an entry.
const (
	StatusSettled   = "settled"   // the upstream reported the usage
	StatusAborted   = "aborted"   // a stream cut short: the last usage seen
	StatusNoUsage   = "no_usage"  // no usage reported: the reservation in full
	StatusFailed    = "failed"    // the upstream failed: the reservation in full (0 if unreachable)
	StatusRefused   = "refused"   // the upstream refused the request: nothing
	StatusSwept     = "swept"     // never settled (replica gone): the reservation in full
	StatusUnmetered = "unmetered" // Redis away, policy allow: charged in the ledger only
)

// Statuses lists every status (the table's check constraint has the same).
var Statuses = []string{StatusSettled, StatusAborted, StatusNoUsage, StatusFailed, StatusRefused, StatusSwept, StatusUnmetered}

// Store persists entries: a batch is stored whole, an id already stored is
// skipped.
type Store interface {
	InsertUsage(ctx context.Context, entries []Entry) error
}

// Writer batches entries into a Store.
type Writer struct {
	store   Store
	log     zerolog.Logger
	ch      chan Entry
	done    chan struct{}
	flushed chan chan struct{}
	wait    time.Duration

	dropped prometheus.Counter
	written prometheus.Counter
	once    sync.Once
}

// Writer settings.
const (
	queueSize  = 8192
	batchSize  = 500
	flushEvery = 250 * time.Millisecond
)

// NewWriter starts a writer; Close flushes and stops it.
func NewWriter(store Store, log zerolog.Logger) *Writer {
	w := &Writer{store: store, log: log, ch: make(chan Entry, queueSize), done: make(chan struct{}),
		flushed: make(chan chan struct{}), wait: time.Second,
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeguard_llm_ledger_dropped_total",
			Help: "Usage entries dropped because the ledger queue stayed full (PostgreSQL too slow or away)."}),
		written: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeguard_llm_ledger_written_total",
			Help: "Usage entries stored in PostgreSQL."}),
	}
	go w.run()
	return w
}

// Collectors are the writer's metrics.
func (w *Writer) Collectors() []prometheus.Collector {
	return []prometheus.Collector{w.dropped, w.written}
}

// Record queues e; when the queue is full it waits up to a second (the
// request is answered already) and then drops e with an error log.
func (w *Writer) Record(e Entry) {
	select {
	case w.ch <- e:
		return
	default:
	}
	t := time.NewTimer(w.wait)
	defer t.Stop()
	select {
	case w.ch <- e:
	case <-t.C:
		w.dropped.Inc()
		w.log.Error().Str("reason", "ledger_queue_full").Str("reservation", e.ID).
			Msg("usage ledger queue full: entry dropped (the budget counters in Redis still hold it)")
	}
}

// Flush waits until every entry queued before it is stored (or failed).
func (w *Writer) Flush(ctx context.Context) error {
	c := make(chan struct{})
	select {
	case w.flushed <- c:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stores what is queued and stops the writer.
func (w *Writer) Close() {
	w.once.Do(func() {
		close(w.ch)
		<-w.done
	})
}

func (w *Writer) run() {
	defer close(w.done)
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	var batch []Entry
	flush := func() {
		if len(batch) > 0 {
			w.store1(batch)
			batch = batch[:0]
		}
	}
	for {
		select {
		case e, ok := <-w.ch:
			if !ok {
				flush()
				return
			}
			batch = append(batch, e)
			if len(batch) >= batchSize {
				flush()
			}
		case <-tick.C:
			flush()
		case c := <-w.flushed:
			for drained := false; !drained; {
				select {
				case e, ok := <-w.ch:
					if !ok {
						drained = true
						break
					}
					batch = append(batch, e)
				default:
					drained = true
				}
			}
			flush()
			close(c)
		}
	}
}

// store1 stores one batch, retrying with backoff for up to ~30 s (the
// insert is idempotent); then it gives up with an error log.
func (w *Writer) store1(batch []Entry) {
	delay := 100 * time.Millisecond
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := w.store.InsertUsage(ctx, batch)
		cancel()
		if err == nil {
			w.written.Add(float64(len(batch)))
			return
		}
		if time.Now().After(deadline) || errors.Is(err, ErrInvalid) {
			w.dropped.Add(float64(len(batch)))
			w.log.Error().Err(err).Str("reason", "ledger_write_failed").Int("entries", len(batch)).
				Msg("usage ledger write failed: entries dropped (the budget counters in Redis still hold them)")
			return
		}
		w.log.Warn().Err(err).Dur("retry_in", delay).Msg("usage ledger write failed; retrying")
		time.Sleep(delay)
		delay = min(2*delay, 5*time.Second)
	}
}

// ErrInvalid marks a batch the store refuses as invalid (never retried).
var ErrInvalid = errors.New("ledger: invalid entry")

// Totals are summed usage.
type Totals struct {
	Requests                       int64 `json:"requests"`
	PromptTokens, CompletionTokens int64 `json:"-"`
	Tokens                         int64 `json:"tokens"`
	Nano                           int64 `json:"-"`
}

// Row is one group of a usage query: per day, model and key (an empty
// key: the caller's JWT), and per subject in admin queries.
type Row struct {
	Day              string `json:"day"`
	Subject          string `json:"subject,omitempty"`
	KeyID            string `json:"key_id,omitempty"`
	Model            string `json:"model"`
	Requests         int64  `json:"requests"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
	Tokens           int64  `json:"tokens"`
	// USD is the cost as a decimal string (exact, from nano-USD).
	USD string `json:"usd"`
	// Flagged counts the requests charged without a reported usage
	// (no_usage, failed, swept, unmetered).
	Flagged int64 `json:"flagged"`
}

// Query selects ledger rows: [From, To) days, optionally one subject and
// one of its API keys.
type Query struct {
	Subject  string
	KeyID    string // "": every key and the JWT (needs Subject)
	From, To time.Time
	Limit    int
}

// Reader answers usage queries.
type Reader interface {
	Usage(ctx context.Context, q Query) ([]Row, error)
}
