package pluginrt

import (
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
)

func TestOnceBuildsOnceUnderConcurrency(t *testing.T) {
	var o Once[int]
	var builds atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			v, err := o.Get(func() (int, error) { builds.Add(1); return 42, nil }, nil)
			if v != 42 || err != nil {
				t.Errorf("Get = %d, %v", v, err)
			}
		})
	}
	wg.Wait()
	if builds.Load() != 1 {
		t.Fatalf("built %d times", builds.Load())
	}
}

func TestOnceReportsAFailedBuildOnceAndKeepsFailing(t *testing.T) {
	var o Once[string]
	errBad := errors.New("max_headers must be between 1 and 999")
	var reports atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := o.Get(func() (string, error) { return "", errBad },
				func(error) { reports.Add(1) })
			if !errors.Is(err, errBad) {
				t.Errorf("err = %v", err)
			}
		})
	}
	wg.Wait()
	if reports.Load() != 1 {
		t.Fatalf("reported %d times, want once", reports.Load())
	}
}

func TestMisconfiguredAnswers500WithStableCode(t *testing.T) {
	f := exchange.NewFake("GET", "/", nil)
	Misconfigured(f)
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(f.ExitBody, &body); err != nil {
		t.Fatal(err)
	}
	if f.ExitStatus != 500 || body.Error.Code != "edge_misconfigured" ||
		f.ExitHeaders["Content-Type"] != exchange.ContentTypeJSON {
		t.Fatalf("status %d body %s headers %v", f.ExitStatus, f.ExitBody, f.ExitHeaders)
	}
}

func BenchmarkOnceGet(b *testing.B) {
	var o Once[int]
	build := func() (int, error) { return 1, nil }
	b.ReportAllocs()
	for b.Loop() {
		_, _ = o.Get(build, nil)
	}
}
