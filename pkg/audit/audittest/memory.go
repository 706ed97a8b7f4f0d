package audittest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/audit"
)

// Writer keeps the audit events written to it, in memory (fast unit tests;
// Stream is the real Redis).
type Writer struct {
	mu  sync.Mutex
	got []audit.Event
}

// Write implements audit.Writer.
func (w *Writer) Write(_ context.Context, evs []audit.Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, evs...)
	return nil
}

// Events flushes em and returns (and forgets) the events written so far.
func (w *Writer) Events(t testing.TB, em *audit.Emitter) []audit.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := em.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.got
	w.got = nil
	return out
}

// Emitter is an audit emitter writing to a new Writer, closed with the test.
func Emitter(t testing.TB) (*audit.Emitter, *Writer) {
	t.Helper()
	w := &Writer{}
	em, err := audit.New(audit.Config{Writer: w, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(em.Close)
	return em, w
}
