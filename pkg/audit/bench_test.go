package audit

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rs/zerolog"
)

// discardWriter accepts every batch at once (the cost measured is the
// request path's, not Redis's).
type discardWriter struct{}

func (discardWriter) Write(context.Context, []Event) error { return nil }

// benchQueue is the queue size of both benchmarks; every benchQueue/2
// operations the timer stops and the queue is drained, so neither measures
// a full queue (the request path's cost, not the writer's throughput).
const benchQueue = 1 << 14

// BenchmarkEmit is the request-path cost of Emit (time stamp, closed check,
// non-blocking enqueue); validation and the Redis write happen on the
// writer. Compare it with BenchmarkBaselineChannelSend, a bare
// buffered-channel send of the same Event, in the same run.
func BenchmarkEmit(b *testing.B) {
	e, err := New(Config{Writer: discardWriter{}, QueueSize: benchQueue, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ev := validEvent()
	ev.Time = time.Time{} // Emit stamps it, as callers leave it zero
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%(benchQueue/2) == benchQueue/2-1 {
			b.StopTimer()
			_ = e.Flush(context.Background())
			b.StartTimer()
		}
		e.Emit(ev)
	}
	b.StopTimer()
	b.ReportMetric(testutil.ToFloat64(e.cfg.Metrics.Dropped.WithLabelValues(DropQueueFull))/float64(b.N), "dropped/op")
}

func BenchmarkBaselineChannelSend(b *testing.B) {
	ch := make(chan Event, benchQueue)
	ev := validEvent()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%(benchQueue/2) == benchQueue/2-1 {
			b.StopTimer()
			for len(ch) > 0 {
				<-ch
			}
			b.StartTimer()
		}
		select {
		case ch <- ev:
		default:
		}
	}
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
