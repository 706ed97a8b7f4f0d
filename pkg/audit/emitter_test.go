package audit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
)

// fakeWriter records batches; fail makes it fail, block holds it.
type fakeWriter struct {
	mu    sync.Mutex
	got   []Event
	fail  bool
	block chan struct{}
}

func (w *fakeWriter) Write(ctx context.Context, evs []Event) error {
	if w.block != nil {
		select {
		case <-w.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail {
		return errors.New("connection refused")
	}
	w.got = append(w.got, evs...)
	return nil
}

func (w *fakeWriter) events() []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Event(nil), w.got...)
}

func newTestEmitter(t *testing.T, w Writer, queue int) (*Emitter, *Metrics, *testenv.Buffer) {
	t.Helper()
	var logs testenv.Buffer
	m := NewMetrics(nil)
	e, err := New(Config{Writer: w, QueueSize: queue, BatchSize: 8, WriteTimeout: 200 * time.Millisecond,
		Backoff: time.Minute, Logger: zerolog.New(&logs), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e, m, &logs
}

func flush(t *testing.T, e *Emitter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestEmittedEventsReachTheWriterInBatches(t *testing.T) {
	w := &fakeWriter{}
	e, m, _ := newTestEmitter(t, w, 64)
	for range 20 {
		e.Emit(validEvent())
	}
	flush(t, e)
	if n := len(w.events()); n != 20 {
		t.Fatalf("written %d, want 20", n)
	}
	if got := testutil.ToFloat64(m.Written); got != 20 {
		t.Fatalf("written counter %v", got)
	}
}

func TestZeroTimeIsSetByTheEmitter(t *testing.T) {
	w := &fakeWriter{}
	e, _, _ := newTestEmitter(t, w, 4)
	ev := validEvent()
	ev.Time = time.Time{}
	e.Emit(ev)
	flush(t, e)
	if got := w.events(); len(got) != 1 || got[0].Time.IsZero() {
		t.Fatalf("events %+v", got)
	}
}

func TestFullQueueDropsToTheLocalLogWithoutBlocking(t *testing.T) {
	w := &fakeWriter{block: make(chan struct{})}
	e, m, logs := newTestEmitter(t, w, 2)
	done := make(chan struct{})
	go func() {
		for range 50 {
			e.Emit(validEvent())
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Emit blocked on a full queue")
	}
	close(w.block)
	flush(t, e)
	dropped := testutil.ToFloat64(m.Dropped.WithLabelValues(DropQueueFull))
	if dropped < 40 || dropped+testutil.ToFloat64(m.Written) != 50 {
		t.Fatalf("dropped %v written %v, want every one of 50 accounted for", dropped, testutil.ToFloat64(m.Written))
	}
	out := logs.String()
	if !strings.Contains(out, `"level":"warn"`) || !strings.Contains(out, `"audit_dropped":"queue_full"`) || !strings.Contains(out, `"action":"apikey.created"`) {
		t.Fatalf("dropped events not in the local log:\n%s", out)
	}
}

func TestWriterFailureLogsAndCountsEveryEvent(t *testing.T) {
	w := &fakeWriter{fail: true}
	e, m, logs := newTestEmitter(t, w, 64)
	for range 10 {
		e.Emit(validEvent())
	}
	flush(t, e)
	if got := testutil.ToFloat64(m.Dropped.WithLabelValues(DropRedisError)); got != 10 {
		t.Fatalf("dropped %v, want 10", got)
	}
	if n := strings.Count(logs.String(), `"audit_dropped":"redis_error"`); n != 10 {
		t.Fatalf("%d events logged, want 10", n)
	}
	if strings.Contains(logs.String(), "connection refused") {
		t.Fatal("the writer's error text reached the log")
	}
}

// A credential in a field is never written or logged; the event is kept
// without it (it used to be dropped whole: audit suppression).
func TestCredentialInAFieldIsNeitherWrittenNorLogged(t *testing.T) {
	w := &fakeWriter{}
	e, m, logs := newTestEmitter(t, w, 4)
	ev := validEvent()
	ev.Target = "sk_live_Ab3dE5g7_TOPSECRETTOPSECRET"
	e.Emit(ev)
	flush(t, e)
	if got := testutil.ToFloat64(m.Dropped.WithLabelValues(DropInvalid)); got != 0 {
		t.Fatalf("dropped %v", got)
	}
	if strings.Contains(logs.String(), "TOPSECRET") {
		t.Fatalf("secret logged: %s", logs.String())
	}
	got := w.events()
	if len(got) != 1 || got[0].Target != "" || got[0].Sanitized != SanitizedTarget {
		t.Fatalf("written %+v", got)
	}
}

func TestEmitAfterCloseIsDroppedAndNilEmitterIsANoOp(t *testing.T) {
	w := &fakeWriter{}
	e, m, _ := newTestEmitter(t, w, 4)
	e.Emit(validEvent())
	e.Close()
	e.Close()
	e.Emit(validEvent())
	if len(w.events()) != 1 {
		t.Fatalf("close did not flush: %d", len(w.events()))
	}
	if got := testutil.ToFloat64(m.Dropped.WithLabelValues(DropClosed)); got != 1 {
		t.Fatalf("closed drops %v", got)
	}
	var nilE *Emitter
	nilE.Emit(validEvent())
	nilE.Close()
}

func TestNewRefusesBadConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("no writer accepted")
	}
	if _, err := New(Config{Writer: &fakeWriter{}, QueueSize: -1}); err == nil {
		t.Fatal("negative queue accepted")
	}
}

// An event dropped before the writer validated it (full queue) never puts a
// credential a caller placed in one of its fields into the local log.
func TestDroppedUnvalidatedEventsLogNoCredential(t *testing.T) {
	w := &fakeWriter{block: make(chan struct{})}
	e, _, logs := newTestEmitter(t, w, 1)
	const key = "sk_live_AbCd1234EfGh5678IjKl9012MnOp3456QrSt"
	ev := validEvent()
	ev.Target = key
	for range 20 {
		e.Emit(ev)
	}
	close(w.block)
	flush(t, e)
	if out := logs.String(); strings.Contains(out, key) || !strings.Contains(out, `"audit_dropped":"queue_full"`) {
		t.Fatalf("log:\n%s", out)
	}
}
