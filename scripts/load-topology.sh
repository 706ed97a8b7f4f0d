#!/usr/bin/env bash
# scripts/load-topology.sh [flags] — throughput through the load balancer with
# one vs two Kong nodes (BENCHMARKS.md "The production topology";
# `scripts/load.sh topology`).
#
# Starts on free loopback ports, everything under .tmp/load/topology/: the
# rig, Redis and the `return 200` upstream of the Kong load run
# (scripts/lib-loadrig.sh), two Kong nodes on the rig's kong-bench.yml (one
# worker each, access log off), and two nginx balancers (scripts/nginx.sh):
# one in front of node A only, one in front of A and B. Then wrk in ROUNDS
# interleaved rounds (order rotating, a warm-up before each) on the
# all-in-one plugin's JWT route (/chain) three ways:
#   direct   straight to node A (no balancer: the baseline)
#   lb-1     the balancer with node A
#   lb-2     the balancer with nodes A and B
# and reports the medians and the ratios lb-2/lb-1 (what a second node adds
# on this machine) and lb-1/direct (what the balancer's hop costs).
# Stops everything it started. Report: .tmp/load/topology/report.md.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

ROUNDS=3 DURATION=10s WARMUP=3s CONNECTIONS=32 THREADS=2
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=$2; shift 2 ;;
	--duration) DURATION=$2; shift 2 ;;
	--warmup) WARMUP=$2; shift 2 ;;
	--connections) CONNECTIONS=$2; shift 2 ;;
	--threads) THREADS=$2; shift 2 ;;
	*) die "unknown flag $1 (see the header of $0)" ;;
	esac
done

DIR="$TMPROOT/load/topology"
RUN="$DIR/run"
RES="$DIR/results"
rm -rf "$DIR"
mkdir -p "$RUN" "$RES"

redis_started="" up_pid="" rig_pid=""
cleanup() {
	local p
	"$ROOT/scripts/nginx.sh" stop --dir "$DIR/lb-1" >/dev/null 2>&1 || true
	"$ROOT/scripts/nginx.sh" stop --dir "$DIR/lb-2" >/dev/null 2>&1 || true
	"$ROOT/scripts/kong.sh" stop --dir "$DIR/kong-a" >/dev/null 2>&1 || true
	"$ROOT/scripts/kong.sh" stop --dir "$DIR/kong-b" >/dev/null 2>&1 || true
	for p in $rig_pid $up_pid; do kill "$p" 2>/dev/null || true; done
	[ -n "$redis_started" ] && "$ROOT/scripts/redis.sh" stop || true
}
trap cleanup EXIT

. "$ROOT/scripts/lib-loadrig.sh"
loadrig_setup "$DIR" "$RUN"

start_node() { # name → its proxy URL
	local env
	env=$(KONG_NGINX_WORKER_PROCESSES=1 KONG_PROXY_ACCESS_LOG=off KONG_TRUSTED_IPS=127.0.0.2/32 \
		scripts/kong.sh start --dir "$DIR/kong-$1" --config "$RUN/kong-bench.yml" --conf "$DIR/kong.conf" \
		--bin "$DIR/kong-bin" --secrets "$RUN") || die "Kong node $1 did not start"
	echo "$env" | sed -n 's/^KONG_PROXY_URL=//p'
}
log "starting Kong nodes A and B (one worker each)"
A=$(start_node a)
B=$(start_node b)
LB1=$(scripts/nginx.sh start --dir "$DIR/lb-1" --upstream "${A#http://}" | sed -n 's/^NGINX_URL=//p')
LB2=$(scripts/nginx.sh start --dir "$DIR/lb-2" --upstream "${A#http://}" --upstream "${B#http://}" | sed -n 's/^NGINX_URL=//p')
JWT=$(cat "$RUN/jwt")
declare -A URL=([direct]="$A/chain" [lb-1]="$LB1/chain" [lb-2]="$LB2/chain")
ways=(direct lb-1 lb-2)
for w in "${ways[@]}"; do
	got=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $JWT" "${URL[$w]}")
	[ "$got" = 200 ] || die "$w (${URL[$w]}) answered $got"
done

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "machine: $(nproc) CPUs, load average $(loadavg) before the run"
	echo "two Kong 3.9.3 nodes (one worker each, access log off) on the rig's kong-bench.yml; route /chain (the all-in-one plugin, cached JWT)"
	echo "balancer: $(nginx -v 2>&1 | cut -d' ' -f3-), scripts/nginx.sh (one worker, proxy_bind 127.0.0.2, keep-alive to Kong)"
	echo "wrk: -t$THREADS -c$CONNECTIONS -d$DURATION, warm-up $WARMUP before each, $ROUNDS rounds, order rotating"
} >"$RES/env.txt"
cat "$RES/env.txt" >&2

for ((r = 1; r <= ROUNDS; r++)); do
	for ((j = 0; j < 3; j++)); do
		w=${ways[$(((j + r - 1) % 3))]}
		wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -H "Authorization: Bearer $JWT" "${URL[$w]}" >/dev/null
		wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $JWT" "${URL[$w]}" >"$RES/round$r-$w.txt"
		log "round $r/$ROUNDS $w: $(grep -h 'Requests/sec' "$RES/round$r-$w.txt" | tr -s ' ') (load $(loadavg))"
	done
done

median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
med_rps() { grep -h 'Requests/sec' "$RES"/round*-"$1".txt | awk '{print $2}' | median; }
non2xx() { grep -h 'Non-2xx' "$RES"/round*-"$1".txt | awk '{s+=$NF} END {print s+0}'; }
{
	cat "$RES/env.txt"
	echo
	echo "| way | median req/s | rounds | non-2xx |"
	echo "|---|---|---|---|"
	for w in "${ways[@]}"; do
		echo "| $w | $(med_rps "$w") | $(grep -h 'Requests/sec' "$RES"/round*-"$w".txt | awk '{printf "%s ", $2}') | $(non2xx "$w") |"
	done
	echo
	d=$(med_rps direct) l1=$(med_rps lb-1) l2=$(med_rps lb-2)
	echo "lb-2 / lb-1 (a second Kong node): $(awk -v a="$l2" -v b="$l1" 'BEGIN {printf "%.2f×", a/b}')"
	echo "lb-1 / direct (the balancer's hop): $(awk -v a="$l1" -v b="$d" 'BEGIN {printf "%.2f×", a/b}')"
	echo "load average after: $(loadavg)"
} >"$DIR/report.md"
cat "$DIR/report.md"
