#!/usr/bin/env bash
# scripts/load.sh kong|topology|mtls|soak [flags] — the edge's load figures (bench/README.md).
#
#   kong  (make load): the real Kong 3.9 with one worker — no plugins, an empty
#         Go plugin, Kong's Lua jwt + rate-limiting (redis), edgeguard's
#         separate plugins and the all-in-one plugin; interleaved wrk rounds,
#         a fixed-rate p50, where a request's CPU goes. scripts/load-kong.sh
#         (its header lists the flags).
#   topology  throughput through the nginx balancer with one vs two Kong
#         nodes (scripts/load-topology.sh; its header lists the flags).
#   mtls  (make load-mtls): the hop Kong → service plain and over mTLS in one
#         run (scripts/load-mtls.sh; its header lists the flags).
#   soak  (make soak): a fixed request rate through the full chain with 10 %
#         invalid tokens and 10 % random API keys (bench/cmd/loadrig soak).
#         Flags: --duration D (10m) --rate N (200) --warmup D (15s)
#
# soak starts Redis (scripts/redis.sh, reused when already running),
# bin/stub-upstream, the rig (JWKS + validate endpoint) and the real Kong
# (scripts/kong.sh) on free loopback ports, everything under .tmp/load/, and
# stops what it started. Reports go to .tmp/load/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

mode=${1:-}
[ "$mode" = kong ] || [ "$mode" = topology ] || [ "$mode" = mtls ] || [ "$mode" = soak ] || { echo "usage: $0 kong|topology|mtls|soak [flags]" >&2; exit 2; }
shift
[ "$mode" = kong ] && exec "$ROOT/scripts/load-kong.sh" "$@"
[ "$mode" = topology ] && exec "$ROOT/scripts/load-topology.sh" "$@"
[ "$mode" = mtls ] && exec "$ROOT/scripts/load-mtls.sh" "$@"
DURATION=10m WARMUP=15s RATE=200
while [ $# -gt 0 ]; do
	case "$1" in
	--duration) DURATION=$2 ;;
	--warmup) WARMUP=$2 ;;
	--rate) RATE=$2 ;;
	*) die "unknown flag $1" ;;
	esac
	shift 2
done

DIR="$TMPROOT/load"
RUN="$DIR/run"
rm -rf "$RUN"
mkdir -p "$RUN" "$DIR/results" "$DIR/results-rate" "$DIR/bin"

pids=()
redis_started=""
stub_pid=""
cleanup() {
	local p
	[ -n "$stub_pid" ] && kill "$stub_pid" 2>/dev/null || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}" $stub_pid; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	done
	[ -n "$redis_started" ] && "$ROOT/scripts/redis.sh" stop || true
}
trap cleanup EXIT

[ -x bin/stub-upstream ] || die "bin/stub-upstream missing: run make build (make soak does)"
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
start_stub

"$DIR/bin/loadrig" serve -dir "$RUN" -stub "http://127.0.0.1:$STUB_PORT" -redis "$REDIS_ADDR" \
	>"$DIR/rig.out" 2>"$DIR/rig.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$RUN/rig.json" ] && break; sleep 0.1; done
[ -s "$RUN/rig.json" ] || die "the rig did not start (see $DIR/rig.log)"

# The soak runs through the real Kong (scripts/kong.sh) on the rig's
# kong.yml, its secrets by their production paths (copied for Kong's
# user); the memory sampled is the edgeguard plugin server's. Kong's
# logs (the plugin servers' lines included) are checked for secrets.
sed "s#$RUN/#/etc/kong/secrets/#g" "$RUN/kong.yml" >"$DIR/kong-soak.yml"
kong_run="$DIR/kong"
# The generator's peer is trusted: valid requests come from 50 client
# addresses (X-Forwarded-For), hostile ones from one (the failure limit).
kongenv=$(KONG_TRUSTED_IPS=127.0.0.1 scripts/kong.sh start --dir "$kong_run" --logs "$DIR" --config "$DIR/kong-soak.yml" --secrets "$RUN") ||
	die "Kong did not start (the error is above)"
stop_kong() { scripts/kong.sh stop --dir "$kong_run" >/dev/null 2>&1 || true; }
trap 'stop_kong; cleanup' EXIT
GW_PORT=$(sed -n 's#^KONG_PROXY_URL=http://127.0.0.1:##p' <<<"$kongenv")
kprefix=$(sed -n 's#^KONG_PREFIX=##p' <<<"$kongenv")
gw_pid=$(pgrep -f -- "edgeguard -kong-prefix $kprefix" | head -n 1)
[ -n "$gw_pid" ] || die "no edgeguard plugin server under $kprefix"
gw_logs=("$DIR/kong-error.log" "$DIR/kong-access.log")

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

report="$DIR/soak-report.md"
status=0
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
"$DIR/bin/loadrig" soak -dir "$RUN" -gateway "http://127.0.0.1:$GW_PORT" -pid "$gw_pid" \
	-rate "$RATE" -duration "$DURATION" -warmup "$WARMUP" -out "$report" || status=$?
# Kong logged every request: no credential may appear in its logs.
for s in "$JWT" $(cat "$RUN/apikeys") "$(cat "$RUN/internal_token")"; do
	if grep -qF -- "$s" "${gw_logs[@]}"; then
		log "FAIL: a credential of the run appears in the gateway's logs"
		status=1
	fi
done
echo "Load average (1/5/15 min) before: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)." | tee -a "$report"
log "report: $report"
exit $status

