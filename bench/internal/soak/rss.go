package soak

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ErrNoRSS: /proc/<pid>/status has no VmRSS line (the process is gone or
// the status format is not Linux's).
var ErrNoRSS = errors.New("soak: no VmRSS in status")

// ParseVmRSS returns VmRSS in bytes from the text of /proc/<pid>/status
// ("VmRSS:\t   12345 kB").
func ParseVmRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != "VmRSS" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%w: malformed VmRSS line", ErrNoRSS)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 || kb > 1<<40 {
			return 0, fmt.Errorf("%w: malformed VmRSS value", ErrNoRSS)
		}
		return kb << 10, nil
	}
	return 0, ErrNoRSS
}

// ReadRSS reads the RSS of pid.
func ReadRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("soak: read status of pid %d: %w", pid, err)
	}
	return ParseVmRSS(b)
}

// Sample is one RSS reading.
type Sample struct {
	At  time.Duration // since the measured phase began
	RSS int64         // bytes
}

// RSSSummary compares the first and the last quarter of the samples.
type RSSSummary struct {
	Samples          int
	Min, Max         int64
	FirstQuarterMean int64
	LastQuarterMean  int64
	GrowthPercent    float64 // (last − first) / first × 100
	FlatThresholdPct float64
	Flat             bool
	First, Last      int64
}

// FlatThresholdPercent: "memory flat" means the last quarter's mean RSS is
// at most this much above the first quarter's.
const FlatThresholdPercent = 10.0

// Summarize needs at least 4 samples.
func Summarize(s []Sample) (RSSSummary, error) {
	if len(s) < 4 {
		return RSSSummary{}, fmt.Errorf("soak: %d RSS samples, need at least 4", len(s))
	}
	mean := func(x []Sample) int64 {
		var t int64
		for _, v := range x {
			t += v.RSS
		}
		return t / int64(len(x))
	}
	q := len(s) / 4
	r := RSSSummary{Samples: len(s), Min: s[0].RSS, Max: s[0].RSS, First: s[0].RSS, Last: s[len(s)-1].RSS,
		FirstQuarterMean: mean(s[:q]), LastQuarterMean: mean(s[len(s)-q:]), FlatThresholdPct: FlatThresholdPercent}
	for _, v := range s {
		r.Min, r.Max = min(r.Min, v.RSS), max(r.Max, v.RSS)
	}
	r.GrowthPercent = float64(r.LastQuarterMean-r.FirstQuarterMean) / float64(r.FirstQuarterMean) * 100
	r.Flat = r.GrowthPercent <= FlatThresholdPercent
	return r, nil
}

// PerMinute returns the mean RSS of the samples of each minute, in order
// (the shape a reader needs to tell a plateau from a leak).
func PerMinute(s []Sample) []int64 {
	var out []int64
	var sum, n int64
	minute := time.Duration(0)
	for _, v := range s {
		for v.At >= minute+time.Minute {
			if n > 0 {
				out = append(out, sum/n)
			}
			sum, n = 0, 0
			minute += time.Minute
		}
		sum += v.RSS
		n++
	}
	if n > 0 {
		out = append(out, sum/n)
	}
	return out
}
