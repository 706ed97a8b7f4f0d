#!/usr/bin/env bash
# scripts/topology.sh up | down | env — the production shape on one machine:
# a load balancer (Debian nginx) in front of several DB-less Kong nodes on
# the same kong.yml, llm-api replicas behind every node's upstream, on the
# Redis given in REDIS_ADDR (a Redis Cluster: several addresses). What
# tests/e2e's topology suite runs; not for production.
#
#   up     scripts/dev.sh up --detach (the services, Kong node 1, Keycloak,
#          PostgreSQL and Redis unless given), then: llm-api replicas 2..R
#          (run/llm-api.env, new ports), the llm-api upstream of the rendered
#          kong.yml with every replica as a target (passive health checks)
#          loaded into node 1 (DB-less POST /config) and started on nodes
#          2..N (scripts/kong.sh, their own prefixes, ports and plugin-server
#          metrics ports), and nginx on the gateway port in front of them
#          (scripts/nginx.sh: connects from 127.0.0.2, the only address the
#          Kong nodes trust for X-Forwarded-For). Prints the env lines.
#   down   stop nginx, nodes 2..N, the replicas, then scripts/dev.sh down.
#   env    the running topology's env lines.
#
# Variables (besides scripts/dev.sh's):
#   TOPOLOGY_KONG_NODES        Kong nodes (default 2)
#   TOPOLOGY_LLM_API_REPLICAS  llm-api replicas (default 2)
# Env lines: dev.sh's, with GATEWAY_URL the balancer, and KONG_NODES=N,
# KONG_NODE_<i>_PROXY_URL / _ADMIN_URL / _DIR / _PREFIX / _ACCESS_LOG /
# _METRICS_EDGEGUARD, LLM_API_REPLICAS=R,
# LLM_API_<i>_URL / _INTERNAL_URL / _PIDFILE, BALANCER_URL, BALANCER_DIR.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DEV_DIR="${DEV_DIR:-$ROOT/.dev}"
export DEV_DIR
RUN="$DEV_DIR/run"
LOGS="$DEV_DIR/logs"
BIN="${EDGEGUARD_BIN:-$ROOT/bin}"
TOPO="$DEV_DIR/topology"
NODES="${TOPOLOGY_KONG_NODES:-2}"
REPLICAS="${TOPOLOGY_LLM_API_REPLICAS:-2}"
BIND=127.0.0.2

down() {
	"$ROOT/scripts/nginx.sh" stop --dir "$TOPO/nginx" >/dev/null 2>&1 || true
	"$ROOT/scripts/nginx.sh" stop --dir "$TOPO/nginx-internal" >/dev/null 2>&1 || true
	local d pid
	for d in "$DEV_DIR"/kong-*; do
		[ -d "$d" ] && "$ROOT/scripts/kong.sh" stop --dir "$d" --logs "$LOGS" >/dev/null 2>&1 || true
	done
	for pidf in "$RUN"/llm-api-*.pid; do
		[ -f "$pidf" ] || continue
		pid=$(cat "$pidf")
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL -- "-$pid" 2>/dev/null || true
		rm -f "$pidf"
	done
	"$ROOT/scripts/dev.sh" down || true
	rm -f "$TOPO/env"
}

# upstream_yml SRC DST VALIDATE_OLD VALIDATE_NEW FIRST TARGET...: the rendered
# kong.yml with the API-key validate URL moved to the internal balancer and
# every replica a target of the upstream that reaches llm-api's public
# listener (kong.yml's upstream llm-api: mTLS, host_header llm-api, the name
# every replica's certificate carries), whose one target is FIRST.
# Passive health checks take a replica out at its first connect failure (or
# 2 answers 502/503/504); an active TCP check every second brings it back.
upstream_yml() {
	python3 - "$@" <<'PY'
import sys, yaml
src, dst, validate_old, validate_new, first, *targets = sys.argv[1:]
cfg = yaml.safe_load(open(src))

def swap(v):
    """every validate_url of llm-api's internal listener → the internal balancer"""
    if isinstance(v, dict):
        return {k: swap(x) for k, x in v.items()}
    if isinstance(v, list):
        return [swap(x) for x in v]
    return validate_new if v == validate_old else v
cfg = swap(cfg)
ups = [u for u in cfg.get("upstreams", []) if [t.get("target") for t in u.get("targets", [])] == [first]]
if len(ups) != 1:
    sys.exit("%s has %d upstreams whose one target is %s, want 1 (llm-api)" % (src, len(ups), first))
ups[0]["algorithm"] = "round-robin"
ups[0]["targets"] = [{"target": t} for t in [first] + targets]
ups[0]["healthchecks"] = {"passive": {
    "type": "https",
    "healthy": {"successes": 1},
    "unhealthy": {"tcp_failures": 1, "http_failures": 2, "timeouts": 2, "http_statuses": [502, 503, 504]},
}, "active": {
    # a TCP connect every second brings a replica back (the public
    # listener has no unauthenticated health route, and it wants a client
    # certificate the health checker does not have)
    "type": "tcp", "timeout": 1, "concurrency": 2,
    "healthy": {"interval": 1, "successes": 1},
    "unhealthy": {"interval": 1, "tcp_failures": 1, "timeouts": 1},
}}
yaml.safe_dump(cfg, open(dst, "w"), sort_keys=False)
PY
}

up() {
	command -v python3 >/dev/null && python3 -c 'import yaml' 2>/dev/null || apt_install python3-yaml
	mkdir -p "$TOPO"
	down >/dev/null 2>&1 || true
	trap 'rc=$?; if [ $rc -ne 0 ]; then log "start failed: stopping what started"; down; fi' EXIT
	local gwport="${DEV_GATEWAY_PORT:-8000}"
	[ "$gwport" = 0 ] && gwport=$(free_port)
	local kong1
	kong1=$(free_port)
	# Node 1 and the services, through dev.sh; Kong trusts only the balancer.
	DEV_GATEWAY_PORT="$gwport" DEV_KONG_PROXY_PORT="$kong1" DEV_GATEWAY_TRUSTED_PROXIES="$BIND/32" \
		"$ROOT/scripts/dev.sh" up --detach >"$TOPO/dev.env" || die "scripts/dev.sh up failed (above)"
	# shell variables only: never exported (KONG_PREFIX & co. would steer
	# the other nodes' kong to node 1's prefix)
	# shellcheck disable=SC1091
	. "$TOPO/dev.env"
	local first="${LLM_API_URL#http://}"
	first="${first#https://}"

	# llm-api replicas 2..R: the same environment, their own listeners.
	local i port iport targets=() out=()
	mapfile -t llm_env <"$RUN/llm-api.env"
	out+=("LLM_API_REPLICAS=$REPLICAS" "LLM_API_1_URL=$LLM_API_URL" "LLM_API_1_INTERNAL_URL=$LLM_API_INTERNAL_URL"
		"LLM_API_1_PIDFILE=$RUN/llm-api.pid")
	for ((i = 2; i <= REPLICAS; i++)); do
		port=$(free_port) iport=$(free_port)
		setsid env "${llm_env[@]}" LISTEN_ADDR="127.0.0.1:$port" INTERNAL_LISTEN_ADDR="127.0.0.1:$iport" \
			"$BIN/llm-api" </dev/null >"$LOGS/llm-api-$i.log" 2>&1 &
		echo $! >"$RUN/llm-api-$i.pid"
		targets+=("127.0.0.1:$port")
		out+=("LLM_API_${i}_URL=https://127.0.0.1:$port" "LLM_API_${i}_INTERNAL_URL=http://127.0.0.1:$iport"
			"LLM_API_${i}_PIDFILE=$RUN/llm-api-$i.pid")
		for _ in $(seq 300); do
			curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$iport/readyz" 2>/dev/null && break
			kill -0 "$(cat "$RUN/llm-api-$i.pid")" 2>/dev/null || { tail -n 20 "$LOGS/llm-api-$i.log" >&2; die "llm-api replica $i exited"; }
			sleep 0.2
		done
	done

	# llm-api's internal listeners (the edge's API-key validate endpoint)
	# behind a balancer of their own, as a Kubernetes Service puts them.
	local iargs=(--upstream "${LLM_API_INTERNAL_URL#http://}")
	for ((i = 2; i <= REPLICAS; i++)); do
		iargs+=(--upstream "$(printf '%s\n' "${out[@]}" | sed -n "s|^LLM_API_${i}_INTERNAL_URL=http://||p")")
	done
	"$ROOT/scripts/nginx.sh" start --dir "$TOPO/nginx-internal" --bind 127.0.0.1 "${iargs[@]}" >"$TOPO/nginx-internal.env" ||
		die "the internal balancer did not start (above)"
	local ilb
	ilb=$(sed -n 's/^NGINX_URL=//p' "$TOPO/nginx-internal.env")
	local vold="$LLM_API_INTERNAL_URL/internal/api-keys/validate"

	# One kong.yml for every node: node 1's rendering, llm-api as an upstream.
	upstream_yml "$DEV_DIR/kong/kong.yml" "$TOPO/kong.yml" "$vold" "$ilb/internal/api-keys/validate" "$first" "${targets[@]}" ||
		die "rendering the upstream failed"
	curl -fsS -o "$TOPO/config-reload.json" -X POST "$KONG_ADMIN_URL/config" -F "config=@$TOPO/kong.yml" ||
		die "node 1 refused the topology's kong.yml (POST /config)"
	out+=("KONG_NODES=$NODES" "KONG_NODE_1_PROXY_URL=$GATEWAY_URL" "KONG_NODE_1_ADMIN_URL=$KONG_ADMIN_URL"
		"KONG_NODE_1_DIR=$DEV_DIR/kong" "KONG_NODE_1_PREFIX=$KONG_PREFIX" "KONG_NODE_1_ACCESS_LOG=$KONG_ACCESS_LOG"
		"KONG_NODE_1_METRICS_EDGEGUARD=$KONG_METRICS_EDGEGUARD")
	local upstreams=("${GATEWAY_URL#http://}") envf
	for ((i = 2; i <= NODES; i++)); do
		envf="$TOPO/kong-$i.env"
		# the same client certificate as node 1 (Kong's env vault; the
		# rendered kong.yml already carries the services CA)
		KONG_TRUSTED_IPS="$BIND/32" EDGEGUARD_EDGE_CLIENT_CERT_FILE="$DEV_DIR/secrets/edge_client.crt" \
			EDGEGUARD_EDGE_CLIENT_KEY_FILE="$DEV_DIR/secrets/edge_client.key" \
			"$ROOT/scripts/kong.sh" start --dir "$DEV_DIR/kong-$i" --logs "$LOGS/kong-$i" \
			--config "$TOPO/kong.yml" >"$envf" || die "Kong node $i did not start (above)"
		local purl
		purl=$(sed -n 's/^KONG_PROXY_URL=//p' "$envf")
		upstreams+=("${purl#http://}")
		out+=("KONG_NODE_${i}_PROXY_URL=$purl" "KONG_NODE_${i}_DIR=$DEV_DIR/kong-$i"
			"KONG_NODE_${i}_ADMIN_URL=$(sed -n 's/^KONG_ADMIN_URL=//p' "$envf")"
			"KONG_NODE_${i}_PREFIX=$(sed -n 's/^KONG_PREFIX=//p' "$envf")"
			"KONG_NODE_${i}_ACCESS_LOG=$(sed -n 's/^KONG_ACCESS_LOG=//p' "$envf")"
			"KONG_NODE_${i}_METRICS_EDGEGUARD=$(sed -n 's/^KONG_METRICS_EDGEGUARD=//p' "$envf")")
	done

	# The balancer on the gateway port.
	local nargs=() u
	for u in "${upstreams[@]}"; do nargs+=(--upstream "$u"); done
	"$ROOT/scripts/nginx.sh" start --dir "$TOPO/nginx" --listen-port "$gwport" --bind "$BIND" "${nargs[@]}" >"$TOPO/nginx.env" ||
		die "nginx did not start (above)"
	curl -fsS -o /dev/null --max-time 5 -H "Host: localhost:$gwport" "http://127.0.0.1:$gwport/realms/jan/.well-known/openid-configuration" ||
		die "the balancer does not reach Kong"

	{
		grep -v '^GATEWAY_URL=' "$TOPO/dev.env"
		echo "GATEWAY_URL=http://127.0.0.1:$gwport"
		echo "BALANCER_URL=http://127.0.0.1:$gwport"
		echo "BALANCER_DIR=$TOPO/nginx"
		printf '%s\n' "${out[@]}"
	} >"$TOPO/env"
	trap - EXIT
	cat "$TOPO/env"
}

case "${1:-}" in
up) up ;;
down) down ;;
env) [ -f "$TOPO/env" ] && cat "$TOPO/env" ;;
*)
	echo "usage: $0 up | down | env" >&2
	exit 2
	;;
esac
