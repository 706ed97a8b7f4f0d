#!/usr/bin/env bash
# scripts/load.sh kong|wrk|soak [flags] — the edge's load figures (bench/README.md).
#
#   kong  (make load): the real Kong 3.9 with one worker — no plugins, an empty
#         Go plugin, Kong's Lua jwt + rate-limiting (redis), edgeguard's
#         separate plugins and the all-in-one plugin; interleaved wrk rounds,
#         a fixed-rate p50, where a request's CPU goes. scripts/load-kong.sh
#         (its header lists the flags).
#   wrk   (make load-devgateway): wrk on loopback against the stub upstream direct, nginx
#         as a plain reverse proxy to it (the floor), bin/devgateway with no
#         plugins, and the full edgeguard chain with a JWT and with an API key;
#         a warm-up before every measurement, ROUNDS interleaved rounds (the
#         order rotates), the table of ratios to nginx at the end.
#         Then the same rounds at a fixed rate (loadrig latency, open loop):
#         the p99 of a gateway under a given load rather than at saturation.
#         Flags: --rounds N (5) --duration D (10s) --warmup D (3s)
#                --connections N (32) --threads N (2) --latency-rate N (500)
#   soak  (make soak): a fixed request rate through the full chain with 10 %
#         invalid tokens and 10 % random API keys (bench/cmd/loadrig soak).
#         Flags: --duration D (10m) --rate N (200) --warmup D (15s)
#
# Installs wrk and nginx (Debian) when missing; starts Redis (scripts/redis.sh,
# reused when already running), bin/stub-upstream, the rig (JWKS + validate
# endpoint) and bin/devgateway — and nginx for wrk, as the current user with
# its own conf, pid and temp paths — on free loopback ports, everything under
# .tmp/load/, and stops what it started. Reports go to .tmp/load/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

mode=${1:-}
[ "$mode" = kong ] || [ "$mode" = wrk ] || [ "$mode" = soak ] || { echo "usage: $0 kong|wrk|soak [flags]" >&2; exit 2; }
shift
[ "$mode" = kong ] && exec "$ROOT/scripts/load-kong.sh" "$@"
ROUNDS=5 DURATION=10s WARMUP=3s CONNECTIONS=32 THREADS=2 RATE=200 LATENCY_RATE=500
[ "$mode" = soak ] && DURATION=10m WARMUP=15s
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=$2 ;;
	--duration) DURATION=$2 ;;
	--warmup) WARMUP=$2 ;;
	--connections) CONNECTIONS=$2 ;;
	--threads) THREADS=$2 ;;
	--rate) RATE=$2 ;;
	--latency-rate) LATENCY_RATE=$2 ;;
	*) die "unknown flag $1" ;;
	esac
	shift 2
done

DIR="$TMPROOT/load"
RUN="$DIR/run"
rm -rf "$RUN" "$DIR/results" "$DIR/results-rate" "$DIR/nginx"
mkdir -p "$RUN" "$DIR/results" "$DIR/results-rate" "$DIR/bin"

pids=()
redis_started=""
nginx_pid=""
stub_pid=""
cleanup() {
	local p
	[ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
	[ -n "$stub_pid" ] && kill "$stub_pid" 2>/dev/null || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}" $nginx_pid $stub_pid; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	done
	[ -n "$redis_started" ] && "$ROOT/scripts/redis.sh" stop || true
}
trap cleanup EXIT

if [ "$mode" = wrk ]; then
	command -v wrk >/dev/null && command -v nginx >/dev/null || apt_install wrk nginx
fi
for b in devgateway stub-upstream; do
	[ -x "bin/$b" ] || die "bin/$b missing: run make build (make load and make soak do)"
done
log "building the rig"
(cd bench && go build -trimpath -o "$DIR/bin/loadrig" ./cmd/loadrig)

if ! redis_env=$(scripts/redis.sh env); then
	redis_env=$(scripts/redis.sh start)
	redis_started=1
fi
eval "export $redis_env"

STUB_PORT=$(free_port)
start_stub() {
	bin/stub-upstream -addr "127.0.0.1:$STUB_PORT" 2>>"$DIR/stub.log" &
	stub_pid=$!
	wait_tcp 127.0.0.1 "$STUB_PORT" 20 || die "stub upstream did not start (see $DIR/stub.log)"
}
# The stub records every request it serves (a test aid), so its memory grows
# with the load: each wrk measurement gets a fresh one.
restart_stub() {
	if [ -n "$stub_pid" ]; then
		kill "$stub_pid" 2>/dev/null || true
		wait "$stub_pid" 2>/dev/null || true
	fi
	start_stub
}
start_stub

"$DIR/bin/loadrig" serve -dir "$RUN" -stub "http://127.0.0.1:$STUB_PORT" -redis "$REDIS_ADDR" \
	>"$DIR/rig.out" 2>"$DIR/rig.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$RUN/rig.json" ] && break; sleep 0.1; done
[ -s "$RUN/rig.json" ] || die "the rig did not start (see $DIR/rig.log)"

GW_PORT=$(free_port)
# The gateway's access log (one JSON line per request) goes to /dev/null in
# wrk runs (nginx's too), to a file in the soak, which checks it for secrets.
gw_log=/dev/null
[ "$mode" = soak ] && gw_log="$DIR/devgateway.log"
bin/devgateway --config "$RUN/kong.yml" --listen "127.0.0.1:$GW_PORT" --trusted-proxies 127.0.0.1 \
	>"$gw_log" 2>"$DIR/devgateway.err" &
gw_pid=$!
pids+=($gw_pid)
wait_tcp 127.0.0.1 "$GW_PORT" 30 || die "devgateway did not start (see $DIR/devgateway.err)"

JWT=$(cat "$RUN/jwt")
KEY=$(head -n 1 "$RUN/apikeys")
# expect STATUS URL [HEADER]: one request, the status must match.
expect() {
	local want=$1 url=$2 got
	shift 2
	got=$(curl -s -o /dev/null -w '%{http_code}' "$@" "$url") || true
	[ "$got" = "$want" ] || die "$url answered $got, want $want (logs in $DIR)"
}
expect 200 "http://127.0.0.1:$GW_PORT/plain"
expect 200 "http://127.0.0.1:$GW_PORT/chain" -H "Authorization: Bearer $JWT"
expect 200 "http://127.0.0.1:$GW_PORT/chain" -H "Authorization: Bearer $KEY"
expect 401 "http://127.0.0.1:$GW_PORT/chain"

if [ "$mode" = soak ]; then
	report="$DIR/soak-report.md"
	status=0
	load_before=$(cut -d' ' -f1-3 /proc/loadavg)
	"$DIR/bin/loadrig" soak -dir "$RUN" -gateway "http://127.0.0.1:$GW_PORT" -pid "$gw_pid" \
		-rate "$RATE" -duration "$DURATION" -warmup "$WARMUP" -out "$report" || status=$?
	# The gateway logged every request: no credential may appear in it.
	for s in "$JWT" $(cat "$RUN/apikeys") "$(cat "$RUN/internal_token")"; do
		if grep -qF -- "$s" "$gw_log" "$DIR/devgateway.err"; then
			log "FAIL: a credential of the run appears in the gateway's logs"
			status=1
		fi
	done
	echo "Load average (1/5/15 min) before: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)." | tee -a "$report"
	log "report: $report"
	exit $status
fi

# nginx: the current user, its own prefix, conf, pid, temp paths and error
# log (-e: nothing under /var/log), HTTP/1.1 keep-alive to the upstream (its
# best configuration for this, so the floor is not an easy one).
NGINX_PORT=$(free_port)
NG="$DIR/nginx"
mkdir -p "$NG/tmp"
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user $(id -un) $(id -gn);"
cat >"$NG/nginx.conf" <<EOF
$user_line
worker_processes auto;
pid $NG/nginx.pid;
error_log $NG/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
	access_log /dev/null;
	client_body_temp_path $NG/tmp/body;
	proxy_temp_path $NG/tmp/proxy;
	fastcgi_temp_path $NG/tmp/fastcgi;
	uwsgi_temp_path $NG/tmp/uwsgi;
	scgi_temp_path $NG/tmp/scgi;
	upstream stub {
		server 127.0.0.1:$STUB_PORT;
		keepalive 64;
	}
	server {
		listen 127.0.0.1:$NGINX_PORT;
		location / {
			proxy_pass http://stub;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
EOF
nginx -p "$NG/" -e "$NG/error.log" -c "$NG/nginx.conf" &
nginx_pid=$!
wait_tcp 127.0.0.1 "$NGINX_PORT" 20 || die "nginx did not start (see $NG/error.log)"
expect 200 "http://127.0.0.1:$NGINX_PORT/v1/models"
expect 200 "http://127.0.0.1:$STUB_PORT/v1/models"

url_of() {
	case "$1" in
	stub) echo "http://127.0.0.1:$STUB_PORT/v1/models" ;;
	nginx) echo "http://127.0.0.1:$NGINX_PORT/v1/models" ;;
	gw-plain) echo "http://127.0.0.1:$GW_PORT/plain" ;;
	gw-jwt | gw-key) echo "http://127.0.0.1:$GW_PORT/chain" ;;
	esac
}
run_wrk() { # target duration out
	local t=$1 d=$2 out=$3 h=()
	case "$t" in
	gw-jwt) h=(-H "Authorization: Bearer $JWT") ;;
	gw-key) h=(-H "Authorization: Bearer $KEY") ;;
	esac
	wrk -t"$THREADS" -c"$CONNECTIONS" -d"$d" --latency "${h[@]}" "$(url_of "$t")" >"$out"
}
run_rate() { # target duration out
	local t=$1 d=$2 out=$3 h=()
	case "$t" in
	gw-jwt) h=(-H "Authorization: Bearer $JWT") ;;
	gw-key) h=(-H "Authorization: Bearer $KEY") ;;
	esac
	"$DIR/bin/loadrig" latency -url "$(url_of "$t")" -rate "$LATENCY_RATE" -duration "$d" "${h[@]}" >"$out"
}

targets=(stub nginx gw-plain gw-jwt gw-key)
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "machine: $(nproc) CPUs, $(uname -m), load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "wrk: -t$THREADS -c$CONNECTIONS -d$DURATION --latency, warm-up $WARMUP before each, $ROUNDS rounds"
	echo "versions: $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2), $(nginx -v 2>&1), $(go version | cut -d' ' -f3)"
} >"$DIR/results/env.txt"
cat "$DIR/results/env.txt" >&2
for ((r = 1; r <= ROUNDS; r++)); do
	n=${#targets[@]}
	for ((j = 0; j < n; j++)); do
		t=${targets[$(((j + r - 1) % n))]}
		restart_stub
		run_wrk "$t" "$WARMUP" /dev/null
		run_wrk "$t" "$DURATION" "$DIR/results/round$r-$t.txt"
		log "round $r/$ROUNDS $t: $(grep -h 'Requests/sec' "$DIR/results/round$r-$t.txt" | tr -s ' ')"
	done
done
echo "load average after the wrk rounds: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$DIR/results/env.txt"
for ((r = 1; r <= ROUNDS; r++)); do
	n=${#targets[@]}
	for ((j = 0; j < n; j++)); do
		t=${targets[$(((j + r - 1) % n))]}
		restart_stub
		run_rate "$t" "$WARMUP" /dev/null
		run_rate "$t" "$DURATION" "$DIR/results-rate/round$r-$t.txt"
		log "round $r/$ROUNDS $t at $LATENCY_RATE req/s: $(grep -h '99%' "$DIR/results-rate/round$r-$t.txt" | tr -s ' ')"
	done
done
echo "load average after the fixed-rate rounds: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$DIR/results/env.txt"
{
	cat "$DIR/results/env.txt"
	echo
	echo "## wrk -t$THREADS -c$CONNECTIONS (saturation)"
	echo
	"$DIR/bin/loadrig" table -dir "$DIR/results"
	echo
	echo "## fixed rate $LATENCY_RATE req/s (loadrig latency, open loop)"
	echo
	"$DIR/bin/loadrig" table -fixed-rate -dir "$DIR/results-rate"
} | tee "$DIR/load-report.md"
log "report: $DIR/load-report.md (raw wrk output in $DIR/results/)"
