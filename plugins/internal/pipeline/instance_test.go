package pipeline

import (
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
)

func TestInstanceProvisionsOnceUnderConcurrency(t *testing.T) {
	var in Instance
	var builds atomic.Int32
	want := New("p", Options{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			p, err := in.Get("p", nil, func() (*Pipeline, error) { builds.Add(1); return want, nil })
			if p == nil || p.Name() != "p" || err != nil {
				t.Errorf("Get = %v, %v", p, err)
			}
		})
	}
	wg.Wait()
	if builds.Load() != 1 {
		t.Fatalf("built %d times", builds.Load())
	}
}

func TestInstanceLogsAFailedProvisioningOnceAndKeepsFailing(t *testing.T) {
	var in Instance
	var logs syncBuffer
	l := zerolog.New(&logs)
	in.Log = &l
	errBad := errors.New("max_headers must be between 1 and 999")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := in.Get("p", nil, func() (*Pipeline, error) { return nil, errBad }); !errors.Is(err, errBad) {
				t.Errorf("err = %v", err)
			}
		})
	}
	wg.Wait()
	if n := logs.lines(); n != 1 {
		t.Fatalf("logged %d times, want once", n)
	}
}

func TestMisconfiguredAnswers500WithStableCode(t *testing.T) {
	f := exchange.NewFake("GET", "/", nil)
	out := Misconfigured(f)
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(f.ExitBody, &body); err != nil {
		t.Fatal(err)
	}
	if f.ExitStatus != 500 || body.Error.Code != CodeMisconfigured || out.Code != CodeMisconfigured ||
		f.ExitHeaders["Content-Type"] != exchange.ContentTypeJSON {
		t.Fatalf("status %d body %s headers %v", f.ExitStatus, f.ExitBody, f.ExitHeaders)
	}
}

func BenchmarkInstanceGet(b *testing.B) {
	var in Instance
	p := New("p", Options{})
	build := func() (*Pipeline, error) { return p, nil }
	b.ReportAllocs()
	for b.Loop() {
		_, _ = in.Get("p", nil, build)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	n  int
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	return len(p), nil
}

func (b *syncBuffer) lines() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}
