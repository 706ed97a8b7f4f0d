package wrkout

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseReadsWrkReports(t *testing.T) {
	tests := []struct {
		file string
		want Run
	}{
		{"wrk-ms.txt", Run{Requests: 8360, RPS: 2078.29, P50: 13920 * time.Microsecond, P99: 63530 * time.Microsecond}},
		{"wrk-errors.txt", Run{Requests: 190000, RPS: 19000.5, P50: 812 * time.Microsecond, P99: 1020 * time.Millisecond,
			Non2xx: 42, SocketErrors: 11}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestIncompleteReportsAreRefused(t *testing.T) {
	b, err := os.ReadFile("testdata/wrk-ms.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, drop := range []string{"Requests/sec", "50%", "99%", "requests in"} {
		t.Run(drop, func(t *testing.T) {
			var kept []string
			for _, l := range strings.Split(string(b), "\n") {
				if !strings.Contains(l, drop) {
					kept = append(kept, l)
				}
			}
			if _, err := Parse(strings.NewReader(strings.Join(kept, "\n"))); !errors.Is(err, ErrNotWrk) {
				t.Fatalf("without %q: err = %v, want ErrNotWrk", drop, err)
			}
		})
	}
	if _, err := Parse(strings.NewReader("unable to connect to 127.0.0.1:1 Connection refused\n")); !errors.Is(err, ErrNotWrk) {
		t.Fatalf("a wrk error message parsed: %v", err)
	}
}

func TestTableTakesMediansAndPerRoundRatios(t *testing.T) {
	ms := time.Millisecond
	r := Rounds{
		1: {"nginx": {RPS: 1000, P99: 2 * ms}, "gw": {RPS: 500, P99: 4 * ms}},
		2: {"nginx": {RPS: 2000, P99: 3 * ms}, "gw": {RPS: 1400, P99: 4 * ms, Non2xx: 1}},
		3: {"nginx": {RPS: 1500, P99: 2 * ms}, "gw": {RPS: 900, P99: 3 * ms}},
		4: {"gw": {RPS: 99999}}, // no baseline in this round: ignored
	}
	rows, err := Table(r, "nginx", []string{"nginx", "gw"})
	if err != nil {
		t.Fatal(err)
	}
	gw := rows[1]
	// ratios 0.5, 0.7, 0.6 → 0.6; rps 500, 900, 1400 → 900; p99 deltas 2, 1, 1 ms → 1 ms.
	if gw.Runs != 3 || gw.RPS != 900 || gw.RPSMin != 500 || gw.RPSMax != 1400 || gw.Ratio < 0.5999 || gw.Ratio > 0.6001 ||
		gw.P99 != 4*ms || gw.P99Delta != ms || gw.Non2xx != 1 {
		t.Fatalf("gw row %+v", gw)
	}
	if rows[0].Ratio != 1 || rows[0].P99Delta != 0 {
		t.Fatalf("baseline row %+v", rows[0])
	}
	if _, err := Table(r, "nginx", []string{"absent"}); err == nil {
		t.Fatal("a target never measured made a row")
	}
	var out bytes.Buffer
	WriteMarkdown(&out, rows, "nginx", map[string]string{"gw": "the gateway"})
	if !strings.Contains(out.String(), "| the gateway | 3 | 900 | 500–1400 | 0.60× |") {
		t.Fatalf("table:\n%s", out.String())
	}
}

func TestP50DeltaAndPairRatioAreMediansOfPerRoundFigures(t *testing.T) {
	ms := time.Millisecond
	r := Rounds{
		1: {"base": {RPS: 1000, P50: 1 * ms}, "a": {RPS: 500, P50: 3 * ms}, "b": {RPS: 100}},
		2: {"base": {RPS: 2000, P50: 2 * ms}, "a": {RPS: 1400, P50: 3 * ms}, "b": {RPS: 200}},
		3: {"base": {RPS: 1500, P50: 1 * ms}, "a": {RPS: 900, P50: 5 * ms}, "b": {RPS: 100}},
		4: {"a": {RPS: 5}}, // no b, no baseline: ignored
	}
	rows, err := Table(r, "base", []string{"base", "a"})
	if err != nil {
		t.Fatal(err)
	}
	// p50 deltas 2, 1, 4 ms → 2 ms
	if rows[1].P50Delta != 2*ms || rows[0].P50Delta != 0 {
		t.Fatalf("rows %+v", rows)
	}
	// a/b per round: 5, 7, 9 → 7
	if got, n := PairRatio(r, "a", "b"); n != 3 || got < 6.999 || got > 7.001 {
		t.Fatalf("PairRatio = %v over %d rounds", got, n)
	}
	if _, n := PairRatio(r, "a", "absent"); n != 0 {
		t.Fatal("a pair never measured together has a ratio")
	}
	var out bytes.Buffer
	WriteMarkdownP50(&out, rows, "base", map[string]string{"a": "target a"})
	if !strings.Contains(out.String(), "| target a | 3 | 900 | 500–1400 | 0.600× | 3.00 ms | +2.00 ms |") {
		t.Fatalf("table:\n%s", out.String())
	}
}

func TestReadDirReadsRoundFiles(t *testing.T) {
	dir := t.TempDir()
	b, _ := os.ReadFile("testdata/wrk-ms.txt")
	for _, n := range []string{"round1-nginx.txt", "round2-gw-jwt.txt", "env.txt"} {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(r) != 2 || r[1]["nginx"].RPS != 2078.29 || r[2]["gw-jwt"].Requests != 8360 {
		t.Fatalf("rounds %+v", r)
	}
	if err := os.WriteFile(filepath.Join(dir, "round3-stub.txt"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadDir(dir); !errors.Is(err, ErrNotWrk) {
		t.Fatalf("a broken report was read: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, n := range []string{"wrk-ms.txt", "wrk-errors.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("Requests/sec: 1e309\n     50% 1e20s\n     99% NaNms\n  1 requests in 1s\n"))
	f.Add([]byte("Requests/sec: -1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		run, err := Parse(bytes.NewReader(b))
		if err == nil && (run.RPS < 0 || run.P50 < 0 || run.P99 < 0 || run.Requests < 0) {
			t.Fatalf("negative figures accepted: %+v", run)
		}
	})
}
