package logthrottle

import (
	"testing"
	"time"
)

func TestOnePerIntervalWithTheHeldBackCount(t *testing.T) {
	th := Throttle{Interval: 10 * time.Second}
	now := time.Unix(1000, 0)
	if _, ok := th.Allow(now); !ok {
		t.Fatal("first event")
	}
	for i := range 5 {
		if _, ok := th.Allow(now.Add(time.Duration(i) * time.Second)); ok {
			t.Fatal("within the interval")
		}
	}
	n, ok := th.Allow(now.Add(10 * time.Second))
	if !ok || n != 5 {
		t.Fatalf("after the interval: %d %v", n, ok)
	}
}
