#!/usr/bin/env bash
# scripts/dev.sh up [--detach] | down | env — the whole edgeguard stack on one
# machine (what `make dev` and `make dev-down` run). Not for production.
#
#   up        start what is missing: Redis, PostgreSQL, Keycloak (realm jan,
#             hostname = the gateway), the stub LLM upstream, llm-api,
#             media-api, mcp-tools (their public listeners over mTLS: the
#             dev CA's server certificates, the edge's client certificate
#             required) and the real Kong 3.9 (scripts/kong.sh) on
#             kong/kong.yml with the six plugin servers, presenting the
#             edge's client certificate; wait until each is ready; print the
#             URLs and two commands to try.
#             In the foreground Ctrl-C stops everything it started; with
#             --detach it returns once ready (stop with `make dev-down`).
#   down      stop everything a detached `up` started.
#   env       print the running stack's env lines (exit 1 when none runs).
#
# Everything lives under DEV_DIR (default .dev/, git-ignored): secrets
# generated once (secrets/, kept across runs; the mTLS certificates live a
# week and are renewed by the run that finds them within two days of their
# end), logs (logs/), pid files (run/) and the components' data
# (components/, separate from `make test`'s .tmp/).
#
# Variables (all optional; config/README.md "make dev"):
#   DEV_DIR               where the stack's files live (default $ROOT/.dev)
#   DEV_GATEWAY_PORT      Kong's proxy port on 127.0.0.1 (default 8000; 0 = a
#                         free port). Keycloak's --hostname is
#                         http://localhost:<port>, so tokens carry that issuer.
#   REDIS_ADDR, PG_DSN    use this Redis / PostgreSQL instead of starting one
#                         (REDIS_ADDR a comma-separated list: a Redis Cluster's
#                         nodes; one address: a single Redis, kong.yml's redis
#                         records rendered with cluster: false)
#   KEYCLOAK_URL, KEYCLOAK_ISSUER, KEYCLOAK_LLM_API_CLIENT_SECRET_FILE,
#   KEYCLOAK_GUEST_LOGIN_CLIENT_SECRET_FILE
#                         use this Keycloak (scripts/keycloak.sh's env lines)
#                         instead of starting one
#   DEV_GATEWAY_VALIDATE_URL  the gateway's API-key validate URL (default:
#                         llm-api's internal listener; tests put a proxy there)
#   DEV_GATEWAY_TRUSTED_PROXIES  Kong's trusted_ips (default: kong.conf's, which
#                         trusts nobody: every client is its TCP peer)
#   DEV_KONG_PROXY_PORT   Kong's proxy port when another process (a load
#                         balancer: scripts/topology.sh) serves the gateway
#                         port (default: the gateway port)
#   KONG_BIN, KONG_SOURCE_BUNDLE, KONG_USER  which Kong and who runs it
#                         (scripts/kong.sh)
# Service variables exported by the caller (GUEST_LOGIN_LIMIT_PER_IP,
# LOG_LEVEL, …) reach the services unchanged; the script sets only what wires
# the stack together.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DEV_DIR="${DEV_DIR:-$ROOT/.dev}"
RUN="$DEV_DIR/run"
LOGS="$DEV_DIR/logs"
SECRETS="$DEV_DIR/secrets"
BIN="${EDGEGUARD_BIN:-$ROOT/bin}"
SERVICES=(stub-upstream llm-api media-api mcp-tools)

# components run scripts/<name>.sh with the stack's own data folder.
components() { EDGEGUARD_TMP="$DEV_DIR/components" "$ROOT/scripts/$1.sh" "${@:2}"; }

alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }
kong_alive() { "$ROOT/scripts/kong.sh" env --dir "$DEV_DIR/kong" --logs "$LOGS" >/dev/null 2>&1; }

down() {
	local s pid
	"$ROOT/scripts/kong.sh" stop --dir "$DEV_DIR/kong" --logs "$LOGS" >/dev/null 2>&1 || true
	for s in mcp-tools media-api llm-api stub-upstream; do
		if alive "$s"; then
			pid=$(cat "$RUN/$s.pid")
			kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
			for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -KILL -- "-$pid" 2>/dev/null || true
		fi
		rm -f "$RUN/$s.pid"
	done
	# The components this stack started (never ones it was given).
	for s in keycloak postgres redis; do
		if [ -f "$RUN/started-$s" ]; then
			components "$s" stop >/dev/null 2>&1 || true
			rm -f "$RUN/started-$s"
		fi
	done
	rm -f "$RUN/env"
}

# start NAME CMD... runs a service in its own process group, logs to logs/NAME.log.
start() {
	local name=$1
	shift
	setsid "$@" </dev/null >"$LOGS/$name.log" 2>&1 &
	echo $! >"$RUN/$name.pid"
}

# wait_http NAME URL SECONDS [HEADER] polls URL until it answers 200.
wait_http() {
	local name=$1 url=$2 secs=$3 i hdr=()
	[ -n "${4:-}" ] && hdr=(-H "$4")
	for ((i = 0; i < secs * 5; i++)); do
		curl -fsS -o /dev/null --max-time 2 "${hdr[@]}" "$url" 2>/dev/null && return 0
		if [ -f "$RUN/$name.pid" ] && ! alive "$name"; then
			tail -n 20 "$LOGS/$name.log" >&2 || true
			die "$name exited (log tail above; full log $LOGS/$name.log)"
		fi
		sleep 0.2
	done
	tail -n 20 "$LOGS/$name.log" >&2 || true
	die "$name was not ready at $url within ${secs}s (log $LOGS/$name.log)"
}

up() {
	local detach=false
	[ "${1:-}" = "--detach" ] && detach=true
	if [ -f "$RUN/env" ] && kong_alive; then
		log "the dev stack already runs (make dev-down stops it)"
		cat "$RUN/env"
		return 0
	fi
	for b in "${SERVICES[@]}" gen-secrets; do
		[ -x "$BIN/$b" ] || die "$BIN/$b is missing: run make build (make dev does)"
	done
	command -v curl >/dev/null || apt_install curl
	mkdir -p "$RUN" "$LOGS" "$DEV_DIR/media"
	down # leftovers of a crashed run
	# Interrupted while starting: stop what has started so far.
	trap 'log "interrupted: stopping"; down; exit 130' INT TERM
	# A failed start (die) stops what has started so far, too.
	trap 'rc=$?; if [ $rc -ne 0 ]; then log "start failed: stopping what started"; down; fi' EXIT
	local t0=$SECONDS

	# The gateway's port first: Keycloak's hostname and the issuer depend on it.
	local gwport="${DEV_GATEWAY_PORT:-8000}"
	[ "$gwport" = 0 ] && gwport=$(free_port)
	if (exec 3<>"/dev/tcp/127.0.0.1/$gwport") 2>/dev/null; then
		die "port $gwport on 127.0.0.1 is in use: stop what listens there or set DEV_GATEWAY_PORT"
	fi
	local gw="http://localhost:$gwport"
	# Kong's own proxy port: the gateway's, unless a balancer takes that one
	# (scripts/topology.sh: DEV_KONG_PROXY_PORT).
	local kongport="${DEV_KONG_PROXY_PORT:-$gwport}"

	# Secrets, generated once (kept across runs; delete the folder to renew).
	"$BIN/gen-secrets" "$SECRETS" >/dev/null

	# Kong (built from the source bundle on the first run, ~2 min) and
	# Keycloak take longest: started first, in the background.
	"$ROOT/scripts/kong.sh" install >"$RUN/kong-install.env" 2>"$LOGS/kong-install.log" &
	local kongpid=$!

	local kcenv="$RUN/keycloak.env" kcpid=""
	if [ -n "${KEYCLOAK_URL:-}" ]; then
		: "${KEYCLOAK_ISSUER:?KEYCLOAK_URL is set: KEYCLOAK_ISSUER must be too}"
		: "${KEYCLOAK_LLM_API_CLIENT_SECRET_FILE:?KEYCLOAK_URL is set: KEYCLOAK_LLM_API_CLIENT_SECRET_FILE must be too}"
		: "${KEYCLOAK_GUEST_LOGIN_CLIENT_SECRET_FILE:?KEYCLOAK_URL is set: KEYCLOAK_GUEST_LOGIN_CLIENT_SECRET_FILE must be too}"
	else
		touch "$RUN/started-keycloak"
		(KEYCLOAK_PUBLIC_URL="$gw" components keycloak start >"$kcenv") &
		kcpid=$!
	fi
	if [ -z "${REDIS_ADDR:-}" ]; then
		touch "$RUN/started-redis"
		eval "$(components redis start)"
	fi
	if [ -z "${PG_DSN:-}" ]; then
		touch "$RUN/started-postgres"
		eval "$(components postgres start)"
	fi
	if [ -n "$kcpid" ]; then
		wait "$kcpid" || die "Keycloak did not start (the error is above)"
		set -a
		eval "$(cat "$kcenv")"
		set +a
	fi

	# The database URL is a secret file too (it carries the password).
	(umask 077 && printf '%s\n' "$PG_DSN" >"$SECRETS/dev_database_url")

	local p_stub p_llm p_llm_int p_media p_media_int p_mcp p_mcp_int
	p_stub=$(free_port) p_llm=$(free_port) p_llm_int=$(free_port) p_media=$(free_port)
	p_media_int=$(free_port) p_mcp=$(free_port) p_mcp_int=$(free_port)
	local jwks="$KEYCLOAK_URL/realms/jan/protocol/openid-connect/certs"

	# What every service shares: dev mode, loopback listeners, the gateway
	# as the only trusted proxy, the edge's public keys, the CA of the
	# edge's client certificate (mTLS on the public listener; the identity
	# is TLS_CLIENT_IDENTITY's default, the URI SAN gen-secrets issues).
	local common=(
		STRICT="${STRICT:-false}"
		TRUSTED_PROXIES=127.0.0.1
		EDGE_IDENTITY_JWKS_FILE="$SECRETS/edge_identity.jwks.json"
		AUTH_ISSUER="$KEYCLOAK_ISSUER"
		AUTH_JWKS_URL="$jwks"
		TLS_CLIENT_CA_FILE="$SECRETS/mtls_ca.crt"
	)
	# Each service's own certificate (for its name, which Kong verifies) and key.
	local tls_llm=(TLS_CERT_FILE="$SECRETS/llm_api_tls.crt" TLS_KEY_FILE="$SECRETS/llm_api_tls.key")
	local tls_media=(TLS_CERT_FILE="$SECRETS/media_api_tls.crt" TLS_KEY_FILE="$SECRETS/media_api_tls.key")
	local tls_mcp=(TLS_CERT_FILE="$SECRETS/mcp_tools_tls.crt" TLS_KEY_FILE="$SECRETS/mcp_tools_tls.key")
	start stub-upstream "$BIN/stub-upstream" -addr "127.0.0.1:$p_stub"
	# llm-api's environment is kept (run/llm-api.env, no secret values: file
	# paths) so scripts/topology.sh can start replicas of the same service
	# (the same certificate: Kong verifies the name llm-api).
	local llm_env=("${common[@]}" "${tls_llm[@]}"
		DATABASE_URL_FILE="$SECRETS/dev_database_url" REDIS_ADDR="$REDIS_ADDR"
		KEYCLOAK_URL="$KEYCLOAK_URL" KEYCLOAK_CLIENT_SECRET_FILE="$KEYCLOAK_LLM_API_CLIENT_SECRET_FILE"
		GUEST_LOGIN_CLIENT_SECRET_FILE="$KEYCLOAK_GUEST_LOGIN_CLIENT_SECRET_FILE"
		API_KEY_PEPPER_FILE="$SECRETS/api_key_pepper" INTERNAL_TOKEN_FILE="$SECRETS/internal_token"
		LLM_UPSTREAM_URL="http://127.0.0.1:$p_stub/v1"
		LLM_BUDGETS_FILE="${LLM_BUDGETS_FILE:-$ROOT/config/budgets/dev.yaml}")
	printf '%s\n' "${llm_env[@]}" >"$RUN/llm-api.env"
	start llm-api env "${llm_env[@]}" \
		LISTEN_ADDR="127.0.0.1:$p_llm" INTERNAL_LISTEN_ADDR="127.0.0.1:$p_llm_int" \
		"$BIN/llm-api"
	start media-api env "${common[@]}" "${tls_media[@]}" \
		LISTEN_ADDR="127.0.0.1:$p_media" INTERNAL_LISTEN_ADDR="127.0.0.1:$p_media_int" \
		MEDIA_STORAGE_DIR="$DEV_DIR/media" MEDIA_URL_SIGNING_KEY_FILE="$SECRETS/media_url_signing_key" \
		MEDIA_PUBLIC_BASE_URL="$gw" \
		"$BIN/media-api"
	start mcp-tools env "${common[@]}" "${tls_mcp[@]}" \
		LISTEN_ADDR="127.0.0.1:$p_mcp" INTERNAL_LISTEN_ADDR="127.0.0.1:$p_mcp_int" \
		"$BIN/mcp-tools"
	wait_http llm-api "http://127.0.0.1:$p_llm_int/readyz" 60
	wait_http media-api "http://127.0.0.1:$p_media_int/readyz" 30
	wait_http mcp-tools "http://127.0.0.1:$p_mcp_int/readyz" 30

	# The gateway: the real Kong on kong/kong.yml as is, its container names
	# and secret paths rendered to this machine (scripts/kong.sh): the
	# services' upstream targets on loopback (their certificates are still
	# verified against the upstreams' host names), the dev CA as the services
	# CA, the edge's client certificate and key through Kong's env vault.
	wait "$kongpid" || { cat "$LOGS/kong-install.log" >&2; die "no Kong (the error is above)"; }
	local validate="${DEV_GATEWAY_VALIDATE_URL:-http://127.0.0.1:$p_llm_int/internal/api-keys/validate}"
	[ -n "${DEV_GATEWAY_TRUSTED_PROXIES:-}" ] && export KONG_TRUSTED_IPS="$DEV_GATEWAY_TRUSTED_PROXIES"
	# REDIS_ADDR may list several addresses (a Redis Cluster): kong.yml's
	# flow lists [redis:6379] become [a,b,…] and stay cluster: true. One
	# address is a single Redis here (the deployments' one seed name is a
	# cluster node): its records get cluster: false.
	local redis_rw=(--rewrite "redis:6379=$REDIS_ADDR")
	[[ $REDIS_ADDR == *,* ]] || redis_rw+=(--rewrite "cluster: true=cluster: false")
	EDGEGUARD_EDGE_CLIENT_CERT_FILE="$SECRETS/edge_client.crt" EDGEGUARD_EDGE_CLIENT_KEY_FILE="$SECRETS/edge_client.key" \
		"$ROOT/scripts/kong.sh" start --dir "$DEV_DIR/kong" --logs "$LOGS" --proxy-port "$kongport" --secrets "$SECRETS" \
		--services-ca "$SECRETS/mtls_ca.crt" \
		--rewrite "http://llm-api:8081/internal/api-keys/validate=$validate" \
		--rewrite "target: llm-api:8080=target: 127.0.0.1:$p_llm" \
		--rewrite "target: media-api:8080=target: 127.0.0.1:$p_media" \
		--rewrite "target: mcp-tools:8080=target: 127.0.0.1:$p_mcp" \
		--rewrite "dpop_public_base_url: http://localhost:8000=dpop_public_base_url: $gw" \
		--rewrite "http://localhost:8000/realms/jan=$KEYCLOAK_ISSUER" \
		--rewrite "http://keycloak:8080=$KEYCLOAK_URL" \
		"${redis_rw[@]}" \
		--rewrite "/etc/kong/secrets/redis_password=" \
		--rewrite "http://otel-collector:4318=http://127.0.0.1:4318" >"$RUN/kong.env" ||
		die "Kong did not start (the error is above)"
	# With the public host: kong.yml routes Keycloak only for it.
	wait_http kong "http://127.0.0.1:$kongport/realms/jan/.well-known/openid-configuration" 60 "Host: localhost:$gwport"

	cat >"$RUN/env" <<EOF
GATEWAY_URL=http://127.0.0.1:$kongport
GATEWAY_PUBLIC_URL=$gw
KEYCLOAK_URL=$KEYCLOAK_URL
KEYCLOAK_ISSUER=$KEYCLOAK_ISSUER
REDIS_ADDR=$REDIS_ADDR
LLM_API_URL=https://127.0.0.1:$p_llm
LLM_API_INTERNAL_URL=http://127.0.0.1:$p_llm_int
MEDIA_API_URL=https://127.0.0.1:$p_media
MEDIA_API_INTERNAL_URL=http://127.0.0.1:$p_media_int
MCP_TOOLS_URL=https://127.0.0.1:$p_mcp
MCP_TOOLS_INTERNAL_URL=http://127.0.0.1:$p_mcp_int
MTLS_CA_FILE=$SECRETS/mtls_ca.crt
EDGE_CLIENT_CERT_FILE=$SECRETS/edge_client.crt
EDGE_CLIENT_KEY_FILE=$SECRETS/edge_client.key
STUB_UPSTREAM_URL=http://127.0.0.1:$p_stub
DEV_LOGS=$LOGS
DEV_SECRETS=$SECRETS
$(cat "$RUN/kong.env")
EOF
	# From here Ctrl-C is the normal way to stop (exit 0); set before the env
	# lines go out, since whoever reads them may interrupt at once.
	trap - EXIT
	$detach || trap 'log "stopping"; down; exit 0' INT TERM
	banner "$gw" "$gwport" $((SECONDS - t0)) >&2
	cat "$RUN/env"
	$detach && return 0

	# Foreground: until Ctrl-C, or until a process dies (then stop the rest).
	while true; do
		if ! kong_alive; then
			tail -n 20 "$LOGS/kong-error.log" >&2 || true
			log "Kong exited (error log tail above): stopping the stack"
			down
			exit 1
		fi
		for s in "${SERVICES[@]}"; do
			if ! alive "$s"; then
				tail -n 20 "$LOGS/$s.log" >&2 || true
				log "$s exited (log tail above): stopping the stack"
				down
				exit 1
			fi
		done
		sleep 1
	done
}

banner() {
	local gw=$1 port=$2 secs=$3
	cat <<EOF

edgeguard dev stack ready in ${secs}s (Kong 3.9 with the edgeguard plugins; dev secrets, not for production)

  gateway (Kong)             $gw              OpenAI-compatible API at $gw/v1
  Keycloak account console   $gw/realms/jan/account   (through the gateway)
  Keycloak admin console     $KEYCLOAK_URL/admin/   (loopback only; user ${KEYCLOAK_ADMIN_USERNAME:-edgeguard-admin},
                             password in ${KEYCLOAK_ADMIN_PASSWORD_FILE:-the file scripts/keycloak.sh prints})
  logs                       $LOGS/   (Kong: kong-error.log, kong-access.log)
  stop                       Ctrl-C (or make dev-down after make dev DETACH=1)

Try it (a guest token, then a chat completion with it):
# --- try ---
TOKEN=\$(curl -s -X POST http://localhost:$port/auth/guest-login | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
curl -s http://localhost:$port/v1/chat/completions -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' -d '{"model":"stub-model","messages":[{"role":"user","content":"hello"}]}'
# --- end ---

EOF
}

case "${1:-}" in
up) up "${2:-}" ;;
down) down ;;
env) [ -f "$RUN/env" ] && kong_alive && cat "$RUN/env" ;;
*)
	echo "usage: $0 up [--detach] | down | env" >&2
	exit 2
	;;
esac
