package ratelimit

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseLimitReadsRatePeriodAndBurst(t *testing.T) {
	tests := []struct {
		in   string
		want Limit
	}{
		{"10/s", Limit{Name: "second", Rate: 10, Period: time.Second, Burst: 10}},
		{"600/min", Limit{Name: "minute", Rate: 600, Period: time.Minute, Burst: 600}},
		{"10000/h", Limit{Name: "hour", Rate: 10000, Period: time.Hour, Burst: 10000}},
		{"5/day", Limit{Name: "day", Rate: 5, Period: 24 * time.Hour, Burst: 5}},
		{"5/D", Limit{Name: "day", Rate: 5, Period: 24 * time.Hour, Burst: 5}},
		{"1/second", Limit{Name: "second", Rate: 1, Period: time.Second, Burst: 1}},
		{"7/hr", Limit{Name: "hour", Rate: 7, Period: time.Hour, Burst: 7}},
		{"100/10s burst 20", Limit{Name: "10s", Rate: 100, Period: 10 * time.Second, Burst: 20}},
		{"  3/1m30s   BURST 1 ", Limit{Name: "1m30s", Rate: 3, Period: 90 * time.Second, Burst: 1}},
		{"2/500ms", Limit{Name: "500ms", Rate: 2, Period: 500 * time.Millisecond, Burst: 2}},
		{"1000000/s", Limit{Name: "second", Rate: 1000000, Period: time.Second, Burst: 1000000}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseLimit(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			again, err := ParseLimit(got.String())
			if err != nil || again != got {
				t.Fatalf("String() %q does not parse back: %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestParseLimitRejectsBadSpecsWithSentinel(t *testing.T) {
	for _, in := range []string{
		"", "10", "10/", "/s", "0/s", "-1/s", "+1/s", "x/s", "10/fortnight", "10/-1s", "10/0s",
		"10/s burst", "10/s burst 0", "10/s burst -1", "10/s bust 3", "10/s burst 3 extra",
		"2000000/s", "1/400d", "99999999999/s", "1/s burst 2000000000", "10/1us", "3/2us",
		"1/8760h burst 1000000000",
	} {
		t.Run(in, func(t *testing.T) {
			if l, err := ParseLimit(in); !errors.Is(err, ErrInvalidLimit) {
				t.Fatalf("ParseLimit(%q) = %+v, %v; want ErrInvalidLimit", in, l, err)
			}
		})
	}
}

func TestParseLimitsReadsAList(t *testing.T) {
	ls, err := ParseLimits("10/s, 600/min,10000/h")
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 3 || ls[0].Name != "second" || ls[1].Name != "minute" || ls[2].Name != "hour" {
		t.Fatalf("got %+v", ls)
	}
	if _, err := ParseLimits("10/s,,1/h"); !errors.Is(err, ErrInvalidLimit) {
		t.Fatalf("empty element: %v", err)
	}
}

func TestNewPolicyRejectsInvalidSets(t *testing.T) {
	tests := []struct {
		name   string
		limits []Limit
	}{
		{"no limits", nil},
		{"too many", make([]Limit, MaxLimits+1)},
		{"duplicate names", []Limit{{Rate: 1, Period: time.Second}, {Rate: 5, Period: time.Second}}},
		{"zero rate", []Limit{{Period: time.Second}}},
		{"bad name", []Limit{{Name: "a{b}", Rate: 1, Period: time.Second}}},
		{"long name", []Limit{{Name: strings.Repeat("a", 33), Rate: 1, Period: time.Second}}},
		{"zero period", []Limit{{Rate: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewPolicy(tt.limits...); !errors.Is(err, ErrInvalidLimit) {
				t.Fatalf("err = %v, want ErrInvalidLimit", err)
			}
		})
	}
}

func TestPolicyCompilesEmissionIntervalAndTolerance(t *testing.T) {
	p := MustPolicy(
		Limit{Rate: 10, Period: time.Second},
		Limit{Rate: 600, Period: time.Minute, Burst: 50},
		Limit{Rate: 7, Period: time.Hour},
	)
	wantT := []int64{100_000, 100_000, 514_285_714} // 1h/7 rounded to the nearest µs
	wantTau := []int64{1_000_000, 5_000_000, 7 * 514_285_714}
	for i := range wantT {
		if p.emission[i] != wantT[i] || p.tolerance[i] != wantTau[i] {
			t.Errorf("limit %d: T=%d τ=%d, want %d %d", i, p.emission[i], p.tolerance[i], wantT[i], wantTau[i])
		}
	}
	if p.minBurst != 7 {
		t.Errorf("minBurst = %d", p.minBurst)
	}
	if got := p.String(); got != "10/s, 600/min burst 50, 7/h" {
		t.Errorf("String() = %q", got)
	}
	ls := p.Limits()
	ls[0].Rate = 99
	if p.limits[0].Rate != 10 {
		t.Error("Limits() exposes internal state")
	}
}

func TestResultDecidedIsSafeOnAnEmptyResult(t *testing.T) {
	var r Result
	if r.Decided() != (LimitResult{}) || r.RetryAfter() != 0 {
		t.Fatal("zero Result should yield zero values")
	}
	r.Decider = 5
	if r.Decided() != (LimitResult{}) {
		t.Fatal("out-of-range Decider should yield the zero LimitResult")
	}
}

func TestSourceNamesAreStable(t *testing.T) {
	for s, want := range map[Source]string{SourceRedis: "redis", SourceDenyCache: "deny_cache", SourceLocal: "local", SourceFailOpen: "fail_open", 0: "unknown"} {
		if s.String() != want {
			t.Errorf("%d: %q, want %q", s, s.String(), want)
		}
	}
}

func FuzzParseLimit(f *testing.F) {
	for _, s := range []string{
		"10/s", "600/min", "10000/h", "100/10s burst 20", "1/1us", "1/8784h burst 1",
		"9999999999/s", "1/s burst 99999999999", "10/1e3s", "10/ s", "10 /s", "10/s burst\t5",
		"1/2562047h", "1/-0s", "\x00/\xff", "10/s burst 5 burst 6",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLimit(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidLimit) {
				t.Fatalf("error without sentinel: %v", err)
			}
			return
		}
		if _, _, err := l.validate(); err != nil {
			t.Fatalf("parsed limit %+v does not validate: %v", l, err)
		}
		p, err := NewPolicy(l)
		if err != nil {
			t.Fatalf("parsed limit %+v rejected by NewPolicy: %v", l, err)
		}
		// Every microsecond value the script may see stays exact in a double.
		const now = int64(4_102_444_800_000_000) // year 2100
		if now+2*p.tolerance[0] >= 1<<53 {
			t.Fatalf("tolerance %d too large", p.tolerance[0])
		}
		again, err := ParseLimit(l.String())
		if err != nil || again != l {
			t.Fatalf("String() %q does not round-trip: %+v, %v", l.String(), again, err)
		}
	})
}
