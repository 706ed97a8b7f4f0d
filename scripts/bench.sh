#!/usr/bin/env bash
# scripts/bench.sh — what `make bench` runs: every benchmark of every module,
# COUNT runs each (default 5), against a throw-away Redis for the Redis ones.
# Raw output goes to .tmp/bench/<module>.txt (feed it to benchstat); the
# figures in BENCHMARKS.md are ratios within one run of this script.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
COUNT=${COUNT:-5}
BENCHTIME=${BENCHTIME:-1s}
out="$TMPROOT/bench"
mkdir -p "$out"

trap '"$ROOT/scripts/redis.sh" stop || true; "$ROOT/scripts/postgres.sh" stop || true' EXIT
# shellcheck disable=SC2046
eval "export $(scripts/redis.sh start)"
# shellcheck disable=SC2046
eval "export $(scripts/postgres.sh start)"
export EDGEGUARD_TEST_PG_DSN="$PG_DSN"

for m in $("$ROOT/scripts/modules.sh"); do
	log "benchmarks in $m (count $COUNT, benchtime $BENCHTIME)"
	(cd "$m" && go test -run '^$' -bench . -benchmem -count "$COUNT" -benchtime "$BENCHTIME" ./...) | tee "$out/$(echo "$m" | tr '/.' '__').txt"
done
log "raw results in $out"
