#!/usr/bin/env python3
"""benchratio.py BASELINE [FILE] — medians of `go test -bench` output as a
Markdown table, with each benchmark's ratio to BASELINE (a benchmark name
without the -N suffix). Feed it ROUNDS (the test binary run N times, each run
measuring every benchmark once): the ratio is the median of the per-round
ratios, so load that drifts between rounds cancels out."""
import re
import statistics
import sys

def main():
    if len(sys.argv) < 2:
        sys.exit("usage: benchratio.py BASELINE [FILE]")
    base = sys.argv[1]
    src = open(sys.argv[2]) if len(sys.argv) > 2 else sys.stdin
    runs = {}
    for line in src:
        m = re.match(r"^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(.*)$", line)
        if not m:
            continue
        name, ns, rest = m.group(1), float(m.group(2)), m.group(3)
        allocs = re.search(r"(\d+) allocs/op", rest)
        r = runs.setdefault(name, {"ns": [], "allocs": []})
        r["ns"].append(ns)
        if allocs:
            r["allocs"].append(int(allocs.group(1)))
    if base not in runs:
        sys.exit(f"baseline {base} not in the input")
    bs = runs[base]["ns"]
    print("| benchmark | runs | median ns/op | min–max | ratio to " + base + " (median of per-round ratios) | allocs/op |")
    print("|---|---|---|---|---|---|")
    for name, r in runs.items():
        med = statistics.median(r["ns"])
        # Pair the i-th run with the baseline's i-th run (same round of a
        # rounds-interleaved run): robust to load that drifts between rounds.
        n = min(len(r["ns"]), len(bs))
        ratio = statistics.median(r["ns"][i] / bs[i] for i in range(n))
        allocs = str(max(r["allocs"])) if r["allocs"] else ""
        print(f"| {name} | {len(r['ns'])} | {med:,.1f} | {min(r['ns']):,.1f}–{max(r['ns']):,.1f} | {ratio:.3f}× | {allocs} |")

main()
