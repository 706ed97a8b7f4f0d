#!/usr/bin/env bash
# scripts/load-kong.sh [flags] — the edge's load figures through the real Kong
# (`scripts/load.sh kong`, `make load`; bench/README.md, BENCHMARKS.md "Load
# through the real Kong").
#
# Starts on free loopback ports, everything under .tmp/load/kong/:
#   - Redis (scripts/redis.sh, reused when already running);
#   - nginx as the upstream, one worker, `return 200` (the cheapest upstream);
#   - the rig (bench/cmd/loadrig serve: Keycloak's JWKS, llm-api's API-key
#     validate endpoint, the JWT and API keys of the run, kong-bench.yml);
#   - Kong 3.9.3 (scripts/kong.sh) with ONE worker, access log off, on
#     kong/kong.conf plus the bench-only empty plugin server
#     (bench/cmd/emptyplugin), one route per target of kong-bench.yml.
# Then:
#   1. checks that every target answers 200 (and that the plugins ran);
#   2. wrk -tT -cC in ROUNDS interleaved rounds (the order rotates), a
#      warm-up before every measurement; the table of ratios to Kong without
#      plugins and the goals' ratios (median of per-round ratios);
#   3. the same rounds at a fixed arrival rate (loadrig latency, open loop) of
#      RATE_SHARE % of Kong-without-plugins' median throughput of step 2, for
#      the targets whose throughput in step 2 is ≥ 1.25 × that: p50 against Kong
#      without plugins; then at LOW_SHARE % of the all-in-one plugin's own
#      throughput (the latency it adds when it is not the bottleneck);
#   4. (unless --no-profile) accounted wrk runs (loadrig cpu), ROUNDS
#      interleaved rounds: CPU µs per request of the Kong worker, the plugin
#      servers, Redis, the upstream and wrk, PDK calls per request, Redis
#      commands, as medians over the rounds; the protocol model (empty
#      plugin, 8 PDK calls); then a perf profile of the Kong worker and the
#      edgeguard plugin server under the all-in-one JWT target.
# Stops everything it started. Report: .tmp/load/kong/load-report.md.
#
# Flags: --rounds N (3) --duration D (10s) --warmup D (3s) --connections N (32)
#        --threads N (2) --rate-share PCT (25) --low-share PCT (50) --profile-duration D (8s)
#        --targets "NAME…" (all of rig.KongTargets) --no-profile
# Env:   KONG_INSTALL_DIR / KONG_BIN … as scripts/kong.sh (a built Kong is reused).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

ROUNDS=3 DURATION=10s WARMUP=3s CONNECTIONS=32 THREADS=2 RATE_SHARE=25 LOW_SHARE=50 PROFILE=1 PROFILE_DURATION=8s
TARGETS=""
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=$2; shift 2 ;;
	--duration) DURATION=$2; shift 2 ;;
	--warmup) WARMUP=$2; shift 2 ;;
	--connections) CONNECTIONS=$2; shift 2 ;;
	--threads) THREADS=$2; shift 2 ;;
	--rate-share) RATE_SHARE=$2; shift 2 ;;
	--low-share) LOW_SHARE=$2; shift 2 ;;
	--profile-duration) PROFILE_DURATION=$2; shift 2 ;;
	--targets) TARGETS=$2; shift 2 ;;
	--no-profile) PROFILE=""; shift ;;
	*) die "unknown flag $1 (see the header of $0)" ;;
	esac
done

DIR="$TMPROOT/load/kong"
RUN="$DIR/run"
RES="$DIR/results"
RATE_RES="$DIR/results-rate"
RATE2_RES="$DIR/results-rate2"
PROF="$DIR/profile"
rm -rf "$RUN" "$RES" "$RATE_RES" "$RATE2_RES" "$PROF" "$DIR/upstream" "$DIR/kong-bin"
mkdir -p "$RUN" "$RES" "$RATE_RES" "$RATE2_RES" "$PROF" "$DIR/bin" "$DIR/upstream/tmp" "$DIR/kong-bin"

redis_started="" up_pid="" rig_pid="" kong_started=""
cleanup() {
	local p
	[ -n "$kong_started" ] && "$ROOT/scripts/kong.sh" stop --dir "$DIR/kong" >/dev/null 2>&1 || true
	for p in $rig_pid $up_pid; do kill "$p" 2>/dev/null || true; done
	for p in $rig_pid $up_pid; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	done
	[ -n "$redis_started" ] && "$ROOT/scripts/redis.sh" stop || true
}
trap cleanup EXIT

. "$ROOT/scripts/lib-loadrig.sh"
loadrig_setup "$DIR" "$RUN"
log "starting Kong (one worker, access log off)"
kong_started=1
kong_env=$(KONG_NGINX_WORKER_PROCESSES=1 KONG_PROXY_ACCESS_LOG=off \
	scripts/kong.sh start --dir "$DIR/kong" --config "$RUN/kong-bench.yml" --conf "$DIR/kong.conf" \
	--bin "$DIR/kong-bin" --secrets "$RUN") || die "Kong did not start"
eval "$(echo "$kong_env" | sed 's/^/export /')"
KONG_MASTER=$(cat "$KONG_PREFIX/pids/nginx.pid")
mapfile -t kong_workers < <(pgrep -P "$KONG_MASTER")
[ ${#kong_workers[@]} -eq 1 ] || die "Kong runs ${#kong_workers[@]} worker processes, want 1"
KONG_WORKER=${kong_workers[0]}
METRICS=()
for v in KONG_METRICS_HEADER_GUARD KONG_METRICS_KEYCLOAK_JWT KONG_METRICS_KEYCLOAK_APIKEY KONG_METRICS_REDIS_RATELIMIT KONG_METRICS_EDGEGUARD; do
	METRICS+=(-metrics "${!v}/metrics")
done

JWT=$(cat "$RUN/jwt")
KEY=$(head -n 1 "$RUN/apikeys")
declare -A PATH_OF CRED_OF
all_targets=()
while read -r name path cred; do
	PATH_OF[$name]=$path CRED_OF[$name]=$cred
	all_targets+=("$name")
done <"$RUN/kong-targets.txt"
if [ -n "$TARGETS" ]; then
	read -r -a targets <<<"$TARGETS"
	for t in "${targets[@]}"; do [ -n "${PATH_OF[$t]:-}" ] || die "unknown target $t (known: ${all_targets[*]})"; done
else
	targets=("${all_targets[@]}")
fi
[[ " ${targets[*]} " == *" kong-plain "* ]] || die "the targets must include kong-plain (the baseline)"

url_of() { echo "$KONG_PROXY_URL${PATH_OF[$1]}"; }
# hdr_of T prints the curl/wrk/loadrig header arguments of target T, one per line.
hdr_of() {
	case "${CRED_OF[$1]}" in
	jwt) printf '%s\n' -H "Authorization: Bearer $JWT" ;;
	key) printf '%s\n' -H "Authorization: Bearer $KEY" ;;
	esac
}

# 1. Every target must answer 200 — and its plugins must have run: a table
# of 500s or of requests no plugin saw is worthless.
check() {
	local t=$1 h out status
	mapfile -t h < <(hdr_of "$t")
	out=$(curl -s -D - -o "$DIR/check-$t.body" "${h[@]}" "$(url_of "$t")") || die "$t: curl failed"
	status=$(echo "$out" | head -n 1 | cut -d' ' -f2)
	[ "$status" = 200 ] || die "$t ($(url_of "$t")) answered $status: $(head -c 300 "$DIR/check-$t.body") (Kong's error log: $KONG_ERROR_LOG)"
	case "$t" in
	header-guard) echo "$out" | grep -qi '^x-request-id:' || die "$t: no X-Request-ID: header-guard did not run" ;;
	lua-jwt-rl) echo "$out" | grep -qi '^x-ratelimit-limit-second:' || die "$t: no X-RateLimit-Limit-Second: rate-limiting did not run" ;;
	sep-* | eg-*) echo "$out" | grep -qi '^ratelimit-limit:' || die "$t: no RateLimit-Limit: the chain did not run" ;;
	esac
}
for t in "${targets[@]}"; do check "$t"; done
want_401() {
	local got
	got=$(curl -s -o /dev/null -w '%{http_code}' "$KONG_PROXY_URL$1") || true
	[ "$got" = 401 ] || die "$1 without a credential answered $got, want 401"
}
[[ " ${targets[*]} " == *" eg-"* ]] && want_401 /chain
[[ " ${targets[*]} " == *" lua-jwt"* ]] && want_401 /lua-jwt
log "every target answers 200: ${targets[*]}"

run_wrk() { # target duration out
	local t=$1 d=$2 out=$3 h
	mapfile -t h < <(hdr_of "$t")
	wrk -t"$THREADS" -c"$CONNECTIONS" -d"$d" --latency "${h[@]}" "$(url_of "$t")" >"$out"
}
run_rate() { # target rate duration out
	local t=$1 rate=$2 d=$3 out=$4 h
	mapfile -t h < <(hdr_of "$t")
	"$LOADRIG" latency -url "$(url_of "$t")" -rate "$rate" -duration "$d" "${h[@]}" >"$out"
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "machine: $(nproc) CPUs, $(uname -m), load average $(loadavg) before the run"
	echo "Kong: $(grep '^KONG_CMD=' "$DIR/kong/install.env" | cut -d= -f2), one worker, access log off, kong/kong.conf + the empty plugin server"
	echo "upstream: $(nginx -v 2>&1 | cut -d' ' -f3-), one worker, return 200; Redis $(redis-server --version | grep -o 'v=[0-9.]*' | cut -c3-)"
	echo "wrk: -t$THREADS -c$CONNECTIONS -d$DURATION --latency, warm-up $WARMUP before each, $ROUNDS rounds, order rotating; $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2); $(go version | cut -d' ' -f3)"
} >"$RES/env.txt"
cat "$RES/env.txt" >&2

# 2. Saturation, interleaved rounds.
n=${#targets[@]}
for ((r = 1; r <= ROUNDS; r++)); do
	for ((j = 0; j < n; j++)); do
		t=${targets[$(((j + r - 1) % n))]}
		run_wrk "$t" "$WARMUP" /dev/null
		run_wrk "$t" "$DURATION" "$RES/round$r-$t.txt"
		log "round $r/$ROUNDS $t: $(grep -h 'Requests/sec' "$RES/round$r-$t.txt" | tr -s ' ') (load $(loadavg))"
	done
done
echo "load average after the wrk rounds: $(loadavg)" >>"$RES/env.txt"

# median_rps T: the median req/s of target T in step 2.
median_rps() {
	grep -h 'Requests/sec' "$RES"/round*-"$1".txt | awk '{print $2}' | sort -g |
		awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}
PLAIN_RPS=$(median_rps kong-plain)
RATE=$(python3 -c "import sys; print(max(1, int(float(sys.argv[1]) * float(sys.argv[2]) / 100)))" "$PLAIN_RPS" "$RATE_SHARE")

# 3. Fixed arrival rates. rate_phase OUTDIR RATE WHAT CANDIDATE…: the
# candidates whose saturated throughput is at least 1.25 × RATE (closer to
# it an open loop only measures its own queue: the Go generator costs more
# CPU than wrk on the same two cores), in interleaved rounds.
rate_phase() {
	local out=$1 rate=$2 what=$3 t r j n run=() skipped=()
	shift 3
	for t in "$@"; do
		if python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= 1.25 * float(sys.argv[2]) else 1)" "$(median_rps "$t")" "$rate"; then
			run+=("$t")
		else
			skipped+=("$t ($(median_rps "$t") req/s at saturation)")
		fi
	done
	echo "fixed rate $rate req/s ($what): loadrig latency, open loop, $DURATION after $WARMUP of warm-up, $ROUNDS rounds: ${run[*]}" >>"$RES/env.txt"
	[ ${#skipped[@]} -gt 0 ] && echo "  not run at $rate req/s (saturated throughput below 1.25 × the rate): ${skipped[*]}" >>"$RES/env.txt"
	n=${#run[@]}
	for ((r = 1; r <= ROUNDS; r++)); do
		for ((j = 0; j < n; j++)); do
			t=${run[$(((j + r - 1) % n))]}
			run_rate "$t" "$rate" "$WARMUP" /dev/null
			run_rate "$t" "$rate" "$DURATION" "$out/round$r-$t.txt"
			log "round $r/$ROUNDS $t at $rate req/s: $(grep -h ' 50%' "$out/round$r-$t.txt" | tr -s ' ') (load $(loadavg))"
		done
	done
	echo "load average after the rounds at $rate req/s: $(loadavg)" >>"$RES/env.txt"
}
# 3a. The goal's rate: RATE_SHARE % of Kong without plugins, every target.
rate_phase "$RATE_RES" "$RATE" "$RATE_SHARE % of Kong-without-plugins' median $PLAIN_RPS req/s" "${targets[@]}"
# 3b. A rate the all-in-one plugin carries: LOW_SHARE % of its own
# throughput (the slower of its JWT and API-key targets), for the latency it
# adds when it is not the bottleneck.
RATE2=""
eg_rps=()
for t in eg-jwt eg-key; do [[ " ${targets[*]} " == *" $t "* ]] && eg_rps+=("$(median_rps "$t")"); done
if [ ${#eg_rps[@]} -gt 0 ]; then
	RATE2=$(python3 -c "import sys; print(max(1, int(min(map(float, sys.argv[2:])) * float(sys.argv[1]) / 100)))" "$LOW_SHARE" "${eg_rps[@]}")
	low=()
	for t in kong-plain empty eg-replay sep-jwt sep-key eg-jwt eg-key; do [[ " ${targets[*]} " == *" $t "* ]] && low+=("$t"); done
	rate_phase "$RATE2_RES" "$RATE2" "$LOW_SHARE % of the all-in-one plugin's own median throughput" "${low[@]}"
fi

# 4. Where a request's time goes: one accounted wrk run per target and
# round (the order rotating), the figures the medians over the rounds; then
# one more eg-jwt run under perf (not accounted: perf costs CPU too).
if [ -n "$PROFILE" ]; then
	procs=(-proc "kong=$KONG_WORKER" -proc "upstream=$UP_WORKER" -proc "redis=$REDIS_PID")
	for p in $(pgrep -f -- "-kong-prefix $KONG_PREFIX( |\$)"); do
		procs+=(-proc "plugin:$(cat "/proc/$p/comm")=$p")
	done
	account() { # target round
		local t=$1 r=$2 h
		mapfile -t h < <(hdr_of "$t")
		"$LOADRIG" cpu -target "$t" -out "$PROF/round$r-$t.json" -cmd-out "$PROF/round$r-$t.txt" -redis "$REDIS_ADDR" \
			"${procs[@]}" "${METRICS[@]}" -- \
			wrk -t"$THREADS" -c"$CONNECTIONS" -d"$PROFILE_DURATION" --latency "${h[@]}" "$(url_of "$t")"
	}
	n=${#targets[@]}
	for ((r = 1; r <= ROUNDS; r++)); do
		for ((j = 0; j < n; j++)); do
			t=${targets[$(((j + r - 1) % n))]}
			run_wrk "$t" "$WARMUP" /dev/null
			account "$t" "$r"
			log "accounted round $r/$ROUNDS $t: $(grep -h 'Requests/sec' "$PROF/round$r-$t.txt" | tr -s ' ') (load $(loadavg))"
		done
	done
	echo "load average after the accounted rounds: $(loadavg)" >>"$RES/env.txt"
	if [[ " ${targets[*]} " == *" eg-jwt "* ]] && command -v perf >/dev/null; then
		mapfile -t h < <(hdr_of eg-jwt)
		run_wrk eg-jwt "$WARMUP" /dev/null
		perf record -q -F 499 -g -p "$KONG_WORKER,$(pgrep -f -- "/edgeguard -kong-prefix $KONG_PREFIX" | head -n 1)" \
			-o "$PROF/perf-eg-jwt.data" -- sleep "${PROFILE_DURATION%s}" >/dev/null 2>&1 &
		perf_pid=$!
		wrk -t"$THREADS" -c"$CONNECTIONS" -d"$PROFILE_DURATION" "${h[@]}" "$(url_of eg-jwt)" >/dev/null
		wait "$perf_pid" || true
		perf report -i "$PROF/perf-eg-jwt.data" --stdio --no-children --sort comm,dso -g none --percent-limit 0.5 \
			>"$PROF/perf-eg-jwt-dso.txt" 2>/dev/null || true
		perf report -i "$PROF/perf-eg-jwt.data" --stdio --no-children --sort comm,sym -g none --percent-limit 0.4 \
			>"$PROF/perf-eg-jwt-sym.txt" 2>/dev/null || true
		perf report -i "$PROF/perf-eg-jwt.data" --stdio --children --comm edgeguard --sort sym -g none --percent-limit 1 \
			>"$PROF/perf-eg-jwt-go.txt" 2>/dev/null || true
	fi
fi

{
	cat "$RES/env.txt"
	echo
	echo "## wrk -t$THREADS -c$CONNECTIONS (saturation)"
	echo
	"$LOADRIG" table -kong -dir "$RES"
	if ls "$RATE_RES"/round*.txt >/dev/null 2>&1; then
		echo
		echo "## fixed rate $RATE req/s ($RATE_SHARE % of Kong without plugins; loadrig latency, open loop)"
		echo
		"$LOADRIG" table -kong -fixed-rate -dir "$RATE_RES"
	fi
	if [ -n "$RATE2" ] && ls "$RATE2_RES"/round*.txt >/dev/null 2>&1; then
		echo
		echo "## fixed rate $RATE2 req/s ($LOW_SHARE % of the all-in-one plugin's own throughput; loadrig latency, open loop)"
		echo
		"$LOADRIG" table -kong -fixed-rate -goal-rate=false -dir "$RATE2_RES"
	fi
	if [ -n "$PROFILE" ]; then
		echo
		echo "## where a request's time goes (CPU per request; medians of $ROUNDS accounted wrk runs per target)"
		echo
		"$LOADRIG" cpu-table -dir "$PROF"
		if [ -s "$PROF/perf-eg-jwt-dso.txt" ]; then
			echo
			echo "perf (Kong worker + edgeguard plugin server, eg-jwt): $PROF/perf-eg-jwt-dso.txt, $PROF/perf-eg-jwt-sym.txt, $PROF/perf-eg-jwt-go.txt"
		fi
	fi
} | tee "$DIR/load-report.md"
log "report: $DIR/load-report.md (raw output in $RES/, $RATE_RES/, $PROF/)"
