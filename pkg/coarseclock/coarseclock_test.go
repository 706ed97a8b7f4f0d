package coarseclock

import (
	"testing"
	"time"
)

func TestNowIsAnUpperBound(t *testing.T) {
	for range 50 {
		before := time.Now()
		if now := Now(); now.Before(before) {
			t.Fatalf("coarse %v is before real %v", now, before)
		}
		time.Sleep(time.Millisecond)
	}
	if d := time.Until(Now()); d > Slack+Tick {
		t.Fatalf("coarse clock runs %v ahead", d)
	}
}

func BenchmarkNow(b *testing.B) {
	Now()
	for b.Loop() {
		_ = Now()
	}
}
