package ratelimit

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLocalMemoryIsBoundedAndExpiredStateGoesFirst(t *testing.T) {
	clock := newFakeClock()
	l, err := NewLocal(LocalConfig{MaxKeys: 100, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	p := mustLimits(t, "1/min")
	ctx := context.Background()
	// A subject in debt for a long time.
	if r, _ := l.Allow(ctx, "keeper", p); !r.Allowed {
		t.Fatal("first request denied")
	}
	// Many subjects whose state expires after 1 minute.
	for i := range 1000 {
		clock.Advance(time.Millisecond)
		if _, err := l.Allow(ctx, "s"+strconv.Itoa(i), p); err != nil {
			t.Fatal(err)
		}
		if n := l.Len(); n > 100 {
			t.Fatalf("Len() = %d after %d subjects, want <= 100", n, i+1)
		}
	}
	// Once everything expired, a sweep drops expired states and keeps room.
	clock.Advance(2 * time.Minute)
	if r, _ := l.Allow(ctx, "keeper", p); !r.Allowed {
		t.Fatal("keeper should be allowed after its TAT passed")
	}
	if r, _ := l.Allow(ctx, "keeper", p); r.Allowed {
		t.Fatal("keeper's new state was lost")
	}
}

func TestLocalSweepKeepsSubjectsStillInDebt(t *testing.T) {
	clock := newFakeClock()
	l, err := NewLocal(LocalConfig{MaxKeys: 10, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	long := mustLimits(t, "1/h")
	short := mustLimits(t, "1/s")
	ctx := context.Background()
	_, _ = l.Allow(ctx, "debtor", long)
	for i := range 9 {
		_, _ = l.Allow(ctx, "short"+strconv.Itoa(i), short)
	}
	clock.Advance(2 * time.Second)    // every "short" state has expired
	_, _ = l.Allow(ctx, "new", short) // full: the sweep must drop only expired ones
	if r, _ := l.Allow(ctx, "debtor", long); r.Allowed {
		t.Fatal("a subject still in debt was evicted while expired states were available")
	}
	if n := l.Len(); n != 2 {
		t.Fatalf("Len() = %d, want 2 (debtor, new)", n)
	}
}

func TestLocalIsExactUnderConcurrency(t *testing.T) {
	clock := newFakeClock()
	l, err := NewLocal(LocalConfig{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	p := mustLimits(t, "100/s, 1000/min")
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if r, _ := l.Allow(context.Background(), "hot", p); r.Allowed {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := allowed.Load(); n != 100 {
		t.Fatalf("allowed %d of 1600 at one instant, want exactly the burst 100", n)
	}
}

func TestLocalConfigValidateRejectsNegativeMaxKeys(t *testing.T) {
	if err := (LocalConfig{MaxKeys: -1}).Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v", err)
	}
	if _, err := NewLocal(LocalConfig{MaxKeys: -1}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v", err)
	}
}

func TestLocalSubjectsAreSharded(t *testing.T) {
	l, err := NewLocal(LocalConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.shards) != 32 || l.cap != (DefaultLocalMaxKeys+31)/32 {
		t.Fatalf("shards=%d cap=%d", len(l.shards), l.cap)
	}
}

func BenchmarkLocal(b *testing.B) {
	l, _ := NewLocal(LocalConfig{})
	p := mustLimits(b, "10/s, 600/min, 10000/h")
	subjects := make([]string, 100_000)
	for i := range subjects {
		subjects[i] = "user-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i = (i + 7919) % len(subjects)
			_, _ = l.Allow(context.Background(), subjects[i], p)
		}
	})
}
