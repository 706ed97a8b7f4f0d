#!/usr/bin/env bash
# scripts/test.sh — what `make test` runs: starts the real components the
# integration tests need (stopping them afterwards), then every test of every
# module with -race. Integration tests read the components' addresses from the
# environment (EDGEGUARD_TEST_*, and KEYCLOAK_* as scripts/keycloak.sh prints
# them); under CI=true a missing component fails the run instead of skipping.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

started=()
cleanup() { for s in "${started[@]}"; do "$ROOT/scripts/$s.sh" stop || true; done; }
trap cleanup EXIT

# The real Kong 3.9 (scripts/kong.sh install: KONG_BIN, kong on PATH, or a
# build from the source bundle beside the repository, ~2 min the first time)
# for the gateway suites (tests/e2e through `scripts/dev.sh`, tests/kong).
# Built in the background while the other components start; without Kong
# the run fails (the Kong suites never skip).
konglog="$TMPROOT/kong-install.log"
scripts/kong.sh install >"$TMPROOT/kong-install.env" 2>"$konglog" &
kongpid=$!

# shellcheck disable=SC2046
eval "export $(scripts/redis.sh start)"; started+=(redis)
export EDGEGUARD_TEST_REDIS_ADDR="$REDIS_ADDR"
# A Redis Cluster of 3 masters and 3 replicas (~3 s) for the cluster suites
# of pkg/ratelimit, pkg/apikey, pkg/audit, llm-api and mcp-tools; the
# failover tests start private clusters of their own (pkg/testenv).
# shellcheck disable=SC2046
eval "export $(scripts/redis-cluster.sh start)"; started+=(redis-cluster)
export EDGEGUARD_TEST_REDIS_CLUSTER_ADDRS="$REDIS_CLUSTER_ADDRS"
# shellcheck disable=SC2046
eval "export $(scripts/postgres.sh start)"; started+=(postgres)
export EDGEGUARD_TEST_PG_DSN="$PG_DSN"
# Keycloak (realm jan) for tests/e2e and the keycloak-jwt integration test.
started+=(keycloak)
if kcenv=$(scripts/keycloak.sh start); then
	set -a
	eval "$kcenv"
	set +a
elif [ "${CI:-}" = "true" ]; then
	die "Keycloak did not start (the error is above); under CI=true its suites must run, never skip"
else
	log "WARNING: Keycloak did not start (the error is above): the Keycloak suites will SKIP"
fi

# Headless Chromium and playwright-core for edgectl's device-flow e2e test
# (cli/e2e) and the admins' security-key test (tests/e2e). If they cannot be
# installed, those tests fail under CI=true with the command and its error
# (EDGEGUARD_BROWSER_ERROR), and skip otherwise.
brlog="$TMPROOT/chromium-install.log"
if brenv=$(scripts/chromium.sh install 2>"$brlog"); then
	cat "$brlog" >&2
	set -a
	eval "$brenv"
	set +a
else
	cat "$brlog" >&2
	export EDGEGUARD_BROWSER_ERROR="'scripts/chromium.sh install' failed: $(tail -n 5 "$brlog" | tr '\n' ' ')"
	log "WARNING: $EDGEGUARD_BROWSER_ERROR"
fi

# The official openai SDK (npm, pinned) for tests/e2e's gateway suite; under
# CI=true a failed install fails that suite with the command and its error.
oalog="$TMPROOT/openai-install.log"
if oaenv=$(scripts/openai-sdk.sh install 2>"$oalog"); then
	cat "$oalog" >&2
	set -a
	eval "$oaenv"
	set +a
else
	cat "$oalog" >&2
	export EDGEGUARD_OPENAI_ERROR="'scripts/openai-sdk.sh install' failed: $(tail -n 5 "$oalog" | tr '\n' ' ')"
	log "WARNING: $EDGEGUARD_OPENAI_ERROR"
fi

# promtool (from Debian's prometheus package) for the alert-rule check of
# deploy/monitoring; unset, that test skips locally and fails under CI=true.
ptlog="$TMPROOT/promtool-install.log"
if ptenv=$(scripts/promtool.sh install 2>"$ptlog"); then
	set -a
	eval "$ptenv"
	set +a
else
	cat "$ptlog" >&2
	log "WARNING: 'scripts/promtool.sh install' failed: the promtool check of the alert rules will SKIP (fail under CI=true)"
fi

if ! wait "$kongpid"; then
	cat "$konglog" >&2
	die "no Kong 3.9 for the gateway suites (the error is above; scripts/kong.sh install)"
fi
cat "$konglog" >&2

export EDGEGUARD_BIN="$ROOT/bin"
# The whole run's secret sweep: tests register the secrets they use
# (pkg/testenv.RecordSecret) here, every module's output is kept, and
# bin/secret-sweep fails the run if a registered secret — or anything shaped
# like a signed JWT or a valid API key — is in any of it or in the
# components' logs.
SWEEP="$TMPROOT/sweep"
rm -rf "$SWEEP"
(umask 077 && mkdir -p "$SWEEP/secrets" "$SWEEP/logs")
export EDGEGUARD_TEST_SECRETS_DIR="$SWEEP/secrets"
# Kong's logs of the Kong suites (tests/kong) join the sweep.
export EDGEGUARD_TEST_KONG_LOGS_DIR="$SWEEP/logs/kong"
mkdir -p "$EDGEGUARD_TEST_KONG_LOGS_DIR"
chmod 0755 "$SWEEP" "$SWEEP/logs" "$EDGEGUARD_TEST_KONG_LOGS_DIR"
status=0
for m in $("$ROOT/scripts/modules.sh"); do
	log "go test -race ./... in $m"
	(cd "$m" && go test -race -count=1 -timeout 10m ./... 2>&1) | tee "$SWEEP/logs/$(echo "$m" | tr '/.' '__').log" || status=1
done
# Allocation counts of paths that take scratch buffers from a sync.Pool are
# asserted without -race (the race detector makes the pool drop a random
# quarter of what is put back).
log "go test ./pkg/... -run Allocat (without -race)"
(cd pkg && go test -count=1 -run 'Allocat' ./... 2>&1) | tee "$SWEEP/logs/pkg-allocs.log" || status=1
# Every audit event the suites left on the test Redis joins the sweep
# (pkg/audit: an event never carries a secret; audit tests keep their
# streams when EDGEGUARD_TEST_SECRETS_DIR is set).
rhost=${REDIS_ADDR%:*} rport=${REDIS_ADDR##*:}
for k in $(redis-cli -h "$rhost" -p "$rport" --scan --pattern '*audit*' 2>/dev/null); do
	redis-cli -h "$rhost" -p "$rport" XRANGE "$k" - + >>"$SWEEP/logs/audit-streams.log" 2>/dev/null || true
done
# ... and on the cluster: each node scanned (a key lives on one master and
# its replica), each stream read once (-c follows the redirect to its master).
IFS=, read -ra cnodes <<<"$REDIS_CLUSTER_ADDRS"
for k in $(for n in "${cnodes[@]}"; do redis-cli -h "${n%:*}" -p "${n##*:}" --scan --pattern '*audit*' 2>/dev/null; done | sort -u); do
	redis-cli -c -h "${cnodes[0]%:*}" -p "${cnodes[0]##*:}" XRANGE "$k" - + >>"$SWEEP/logs/audit-streams.log" 2>/dev/null || true
done
logs=("$SWEEP/logs")
for f in "${KEYCLOAK_LOG_FILE:-}" "$TMPROOT/redis/redis.log" "$TMPROOT"/redis-cluster/node-*/redis.log; do
	[ -n "$f" ] && [ -r "$f" ] && logs+=("$f")
done
"$ROOT/bin/secret-sweep" -secrets "$SWEEP/secrets" "${logs[@]}" || status=1
exit $status
