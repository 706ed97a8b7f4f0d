package audit

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rs/zerolog"
)

// discardWriter accepts every batch at once (the cost measured is the
// request path's, not Redis's).
type discardWriter struct{}

func (discardWriter) Write(context.Context, []Event) error { return nil }

// BenchmarkEmit is the request-path cost of Emit (validation + a
// non-blocking enqueue) with a writer draining the queue; compare it with
// BenchmarkBaselineChannelSend, a bare buffered-channel send of the same
// Event drained by a goroutine, in the same run.
func BenchmarkEmit(b *testing.B) {
	e, err := New(Config{Writer: discardWriter{}, QueueSize: 1 << 16, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ev := validEvent()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		e.Emit(ev)
	}
	b.StopTimer()
	b.ReportMetric(testutil.ToFloat64(e.cfg.Metrics.Dropped.WithLabelValues(DropQueueFull))/float64(b.N), "dropped/op")
}

func BenchmarkBaselineChannelSend(b *testing.B) {
	ch := make(chan Event, 1<<16)
	done := make(chan struct{})
	go func() {
		for range ch {
		}
		close(done)
	}()
	ev := validEvent()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		select {
		case ch <- ev:
		default:
		}
	}
	b.StopTimer()
	close(ch)
	<-done
}

func BenchmarkValidate(b *testing.B) {
	ev := validEvent()
	b.ReportAllocs()
	for b.Loop() {
		if err := ev.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}
