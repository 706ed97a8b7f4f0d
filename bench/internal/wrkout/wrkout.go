// Package wrkout reads wrk's text output (`wrk --latency`) and turns the
// interleaved rounds of `make load` into a table of ratios to a baseline
// measured in the same rounds. It parses wrk's report only; it does not run
// wrk.
package wrkout

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrNotWrk: the text is not a complete wrk --latency report.
var ErrNotWrk = errors.New("wrkout: not a wrk --latency report")

// Run is one wrk run.
type Run struct {
	Requests     int64
	RPS          float64
	P50, P99     time.Duration
	Non2xx       int64 // "Non-2xx or 3xx responses"
	SocketErrors int64 // connect + read + write + timeout
}

var (
	reRPS      = regexp.MustCompile(`^Requests/sec:\s+([0-9.]+)\s*$`)
	rePct      = regexp.MustCompile(`^\s+(50|99)(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m)\s*$`)
	reReqs     = regexp.MustCompile(`^\s+(\d+) requests in `)
	reNon2xx   = regexp.MustCompile(`^\s+Non-2xx or 3xx responses:\s+(\d+)\s*$`)
	reSockErrs = regexp.MustCompile(`^\s+Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$`)
)

func duration(v, unit string) (time.Duration, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1e9 {
		return 0, fmt.Errorf("%w: bad latency %q", ErrNotWrk, v)
	}
	mult := map[string]float64{"us": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9}[unit]
	return time.Duration(f * mult), nil
}

// Parse reads one report.
func Parse(r io.Reader) (Run, error) {
	var run Run
	var haveRPS, have50, have99, haveReqs bool
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<16)
	for sc.Scan() {
		line := sc.Text()
		if m := reRPS.FindStringSubmatch(line); m != nil {
			v, err := strconv.ParseFloat(m[1], 64)
			if err != nil || math.IsInf(v, 0) || v < 0 {
				return run, fmt.Errorf("%w: bad Requests/sec", ErrNotWrk)
			}
			run.RPS, haveRPS = v, true
		} else if m := rePct.FindStringSubmatch(line); m != nil {
			d, err := duration(m[2], m[3])
			if err != nil {
				return run, err
			}
			if m[1] == "50" {
				run.P50, have50 = d, true
			} else {
				run.P99, have99 = d, true
			}
		} else if m := reReqs.FindStringSubmatch(line); m != nil {
			n, err := strconv.ParseInt(m[1], 10, 64)
			if err != nil {
				return run, fmt.Errorf("%w: bad request count", ErrNotWrk)
			}
			run.Requests, haveReqs = n, true
		} else if m := reNon2xx.FindStringSubmatch(line); m != nil {
			run.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
		} else if m := reSockErrs.FindStringSubmatch(line); m != nil {
			for _, s := range m[1:] {
				n, _ := strconv.ParseInt(s, 10, 64)
				run.SocketErrors += n
			}
		}
	}
	if err := sc.Err(); err != nil {
		return run, fmt.Errorf("%w: %v", ErrNotWrk, err)
	}
	if !haveRPS || !have50 || !have99 || !haveReqs {
		return run, ErrNotWrk
	}
	return run, nil
}

// Rounds maps round → target → run.
type Rounds map[int]map[string]Run

var reFile = regexp.MustCompile(`^round(\d+)-([a-z0-9-]+)\.txt$`)

// ReadDir reads every round<N>-<target>.txt of dir.
func ReadDir(dir string) (Rounds, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wrkout: %w", err)
	}
	out := Rounds{}
	for _, e := range ents {
		m := reFile.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("wrkout: %w", err)
		}
		run, err := Parse(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		n, _ := strconv.Atoi(m[1])
		if out[n] == nil {
			out[n] = map[string]Run{}
		}
		out[n][m[2]] = run
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("wrkout: no round<N>-<target>.txt in %s", dir)
	}
	return out, nil
}

// Row is one target's line of the table.
type Row struct {
	Target       string
	Runs         int
	RPS          float64 // median
	RPSMin       float64
	RPSMax       float64
	Ratio        float64       // median of per-round RPS / baseline RPS
	P99          time.Duration // median
	P99Delta     time.Duration // median of per-round p99 − baseline p99
	P50          time.Duration // median
	P50Delta     time.Duration // median of per-round p50 − baseline p50
	Non2xx       int64         // over every round
	SocketErrors int64
}

func median[T int64 | float64 | time.Duration](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Table computes the rows of targets (in that order) against baseline,
// from the rounds where both were measured.
func Table(r Rounds, baseline string, targets []string) ([]Row, error) {
	var rows []Row
	for _, t := range targets {
		var rps, ratio []float64
		var p99, p50, delta, delta50 []time.Duration
		row := Row{Target: t}
		for _, round := range r {
			run, ok := round[t]
			base, okb := round[baseline]
			if !ok || !okb || base.RPS == 0 {
				continue
			}
			rps = append(rps, run.RPS)
			ratio = append(ratio, run.RPS/base.RPS)
			p99 = append(p99, run.P99)
			p50 = append(p50, run.P50)
			delta = append(delta, run.P99-base.P99)
			delta50 = append(delta50, run.P50-base.P50)
			row.Non2xx += run.Non2xx
			row.SocketErrors += run.SocketErrors
		}
		if len(rps) == 0 {
			return nil, fmt.Errorf("wrkout: no round measured both %s and %s", t, baseline)
		}
		row.Runs = len(rps)
		row.RPS, row.RPSMin, row.RPSMax = median(rps), slices.Min(rps), slices.Max(rps)
		row.Ratio, row.P99, row.P50, row.P99Delta = median(ratio), median(p99), median(p50), median(delta)
		row.P50Delta = median(delta50)
		rows = append(rows, row)
	}
	return rows, nil
}

// PairRatio is the median over the rounds that measured both a and b of
// a's req/s divided by b's, and the number of those rounds (0: none, the
// ratio is then 0).
func PairRatio(r Rounds, a, b string) (float64, int) {
	var ratio []float64
	for _, round := range r {
		ra, oka := round[a]
		rb, okb := round[b]
		if oka && okb && rb.RPS > 0 {
			ratio = append(ratio, ra.RPS/rb.RPS)
		}
	}
	if len(ratio) == 0 {
		return 0, 0
	}
	return median(ratio), len(ratio)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

// WriteMarkdown prints the rows as a Markdown table.
func WriteMarkdown(w io.Writer, rows []Row, baseline string, labels map[string]string) {
	fmt.Fprintf(w, "| target | runs | req/s (median) | min–max | ratio to %s | p50 | p99 (median) | p99 − %s | non-2xx | socket errors |\n", baseline, baseline)
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		name := r.Target
		if l, ok := labels[r.Target]; ok {
			name = l
		}
		sign := "+"
		if r.P99Delta < 0 {
			sign = "−"
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %.0f–%.0f | %.2f× | %s | %s | %s%s | %d | %d |\n",
			name, r.Runs, r.RPS, r.RPSMin, r.RPSMax, r.Ratio, ms(r.P50), ms(r.P99), sign, strings.TrimPrefix(ms(r.P99Delta), "-"),
			r.Non2xx, r.SocketErrors)
	}
}

func signed(d time.Duration) string {
	if d < 0 {
		return "−" + ms(-d)
	}
	return "+" + ms(d)
}

// WriteMarkdownP50 prints the rows as a Markdown table that compares
// medians (p50) to the baseline's: the table of the real-Kong run.
func WriteMarkdownP50(w io.Writer, rows []Row, baseline string, labels map[string]string) {
	fmt.Fprintf(w, "| target | runs | req/s (median) | min–max | ratio to %s | p50 | p50 − %s | p99 | non-2xx | socket errors |\n", baseline, baseline)
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		name := r.Target
		if l, ok := labels[r.Target]; ok {
			name = l
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %.0f–%.0f | %.3f× | %s | %s | %s | %d | %d |\n",
			name, r.Runs, r.RPS, r.RPSMin, r.RPSMax, r.Ratio, ms(r.P50), signed(r.P50Delta), ms(r.P99), r.Non2xx, r.SocketErrors)
	}
}
