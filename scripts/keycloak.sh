#!/usr/bin/env bash
# scripts/keycloak.sh start|stop|env|admin-token — a throw-away Keycloak 26
# (the official distribution, org.keycloak:keycloak-quarkus-dist from Maven
# Central, run with `kc.sh start-dev` on Java 17) on free loopback ports, with
# edgeguard's provider (keycloak/provider, compiled here with javac) and the
# realm keycloak/realm-jan.json imported into an in-memory database.
#
#   start        start (or reuse the running instance) and print its env lines
#   stop         stop the instance this script started (its whole process group)
#   env          print the env lines of the running instance (exit 1 if none)
#   admin-token  print a master-realm admin access token (for curl in dev);
#                a secret: never paste it into logs or issues
#
# The env lines (KEY=value, one a line, for `eval "export $(…)"`):
#   KEYCLOAK_URL                  Keycloak on loopback (admin console, admin API, internal OIDC)
#   KEYCLOAK_ISSUER               the realm's issuer: <public URL>/realms/jan
#   KEYCLOAK_JWKS_URL             the realm's JWKS on loopback
#   KEYCLOAK_MANAGEMENT_URL       health and metrics (management port)
#   KEYCLOAK_REALM                jan
#   KEYCLOAK_ADMIN_USERNAME       the bootstrap admin of the master realm
#   KEYCLOAK_ADMIN_PASSWORD_FILE  its password (0600, generated per start)
#   KEYCLOAK_LLM_API_CLIENT_SECRET_FILE      secret of the llm-api client (0600, per start)
#   KEYCLOAK_GUEST_LOGIN_CLIENT_SECRET_FILE  secret of the guest-login client (0600, per start)
#   KEYCLOAK_LOG_FILE             Keycloak's log (tests grep it for the secrets they used)
# Secrets only ever travel as file paths; the values are handed to Keycloak in
# its environment (never on its command line, which `ps` shows).
#
# Settings (environment):
#   KEYCLOAK_PUBLIC_URL  the URL users reach Keycloak at, Keycloak's --hostname
#                        (the gateway's URL behind Kong);
#                        default: Keycloak's own loopback URL
#   KEYCLOAK_DIST_ZIP    a local copy of the distribution zip (offline
#                        machines); its SHA-256 must match the pinned one
#   EDGEGUARD_TMP        where data, logs and secrets live (default .tmp/)
#   KC_BOOTSTRAP_ADMIN_USERNAME  the bootstrap admin's name (default edgeguard-admin)
#   JAVA_OPTS_KC_HEAP, JAVA_OPTS_APPEND  JVM heap and extra flags (defaults:
#                        -Xms64m -Xmx512m; -XX:TieredStopAtLevel=1)
#
# Keycloak listens on 127.0.0.1 and believes X-Forwarded-* only from
# 127.0.0.1 (--proxy-trusted-addresses: the gateway's address on this
# machine; any other peer is its own client address).
#
# The zip is cached in .cache/keycloak/ (git-ignored, survives `make clean`);
# the unpacked distribution and the run directory live under $EDGEGUARD_TMP.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KC_VERSION=26.4.7
KC_ZIP_SHA256=dd9834c023460be856f731423d86228c23b5d002194a2064642bec0cc6573eaa
REALM=jan
ADMIN_USER="${KC_BOOTSTRAP_ADMIN_USERNAME:-edgeguard-admin}"
READY_TIMEOUT=180

CACHE="$ROOT/.cache/keycloak"
ZIP="$CACHE/keycloak-quarkus-dist-$KC_VERSION.zip"
BASE="$TMPROOT/keycloak"
DIST="$BASE/keycloak-$KC_VERSION"
RUN="$BASE/run"

running() { [ -f "$RUN/pid" ] && kill -0 "$(cat "$RUN/pid")" 2>/dev/null; }

# secret prints 32 random bytes as hex (64 characters: fits every password policy).
secret() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }

# fetch_dist puts the pinned distribution zip into the cache and checks it.
fetch_dist() {
	mkdir -p "$CACHE"
	if [ -n "${KEYCLOAK_DIST_ZIP:-}" ] && [ ! -f "$ZIP" ]; then
		cp "$KEYCLOAK_DIST_ZIP" "$ZIP.part" && mv "$ZIP.part" "$ZIP"
	fi
	if [ ! -f "$ZIP" ]; then
		command -v mvn >/dev/null || apt_install maven
		log "downloading org.keycloak:keycloak-quarkus-dist:$KC_VERSION:zip from Maven Central"
		local out="$CACHE/mvn.log"
		if ! mvn -B -q dependency:copy -Dartifact="org.keycloak:keycloak-quarkus-dist:$KC_VERSION:zip" \
			-DoutputDirectory="$CACHE" -Dmdep.overWriteReleases=true >"$out" 2>&1; then
			cat "$out" >&2
			die "could not fetch the Keycloak $KC_VERSION distribution from Maven Central (mvn output above)"
		fi
		[ -f "$ZIP" ] || die "mvn reported success but $ZIP is missing"
	fi
	local sum
	sum=$(sha256sum "$ZIP" | cut -d' ' -f1)
	if [ "$sum" != "$KC_ZIP_SHA256" ]; then
		rm -f "$ZIP"
		die "Keycloak distribution checksum mismatch (got $sum, want $KC_ZIP_SHA256); removed the cached zip"
	fi
}

# ensure_java installs a Java 17 JDK from Debian when no Java ≥ 17 with
# javac (for keycloak/provider) is on PATH.
ensure_java() {
	local v=""
	if command -v java >/dev/null && command -v javac >/dev/null; then
		v=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
	fi
	if [ -z "$v" ] || [ "${v%%.*}" -lt 17 ]; then
		apt_install openjdk-17-jdk-headless
	fi
}

# install_provider compiles edgeguard's Keycloak provider (keycloak/provider:
# the flow condition of the realm's browser flow) against this distribution
# into its providers/ folder, unless the jar there is newer than every source.
install_provider() {
	local jar="$DIST/providers/edgeguard-keycloak.jar"
	if [ -f "$jar" ] && [ -z "$(find "$ROOT/keycloak/provider" -newer "$jar" -type f | head -n 1)" ]; then
		return 0
	fi
	log "building keycloak/provider into $jar"
	"$ROOT/keycloak/provider/build.sh" "$DIST" "$jar" || die "keycloak/provider/build.sh failed (javac output above)"
}

unpack() {
	[ -x "$DIST/bin/kc.sh" ] && return 0
	log "unpacking Keycloak $KC_VERSION into $DIST"
	rm -rf "$DIST" "$BASE/unpack"
	mkdir -p "$BASE/unpack"
	unzip -q "$ZIP" -d "$BASE/unpack" || die "unzip $ZIP failed"
	mv "$BASE/unpack/keycloak-$KC_VERSION" "$DIST"
	rmdir "$BASE/unpack"
}

# wait_ready polls /health/ready until Keycloak answers UP, or gives up.
wait_ready() {
	local url=$1 pid=$2 i
	for ((i = 0; i < READY_TIMEOUT * 2; i++)); do
		if curl -fsS -o /dev/null --max-time 2 "$url/health/ready" 2>/dev/null; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.5
	done
	return 1
}

stop_instance() {
	if [ -f "$RUN/pid" ]; then
		local pid
		pid=$(cat "$RUN/pid")
		# kc.sh runs java as a child: the whole group (setsid made pid its
		# leader) gets TERM, then KILL after 20 s.
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM -- "-$pid" 2>/dev/null || true
			for _ in $(seq 200); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			kill -KILL -- "-$pid" 2>/dev/null || true
		fi
	fi
	rm -rf "$RUN"
}

start() {
	if running && [ -f "$RUN/env" ]; then
		cat "$RUN/env"
		return 0
	fi
	stop_instance # leftovers of a crashed run
	command -v curl >/dev/null || apt_install curl
	command -v unzip >/dev/null || apt_install unzip
	ensure_java
	fetch_dist
	unpack
	install_provider

	# A fresh in-memory database each start; the realm file is imported on
	# start (Keycloak skips a realm that already exists).
	rm -rf "$DIST/data"
	mkdir -p "$DIST/data/import"
	cp "$ROOT/keycloak/realm-jan.json" "$DIST/data/import/realm-jan.json"

	(umask 077 && mkdir -p "$RUN")
	local port mport url public
	port=$(free_port)
	mport=$(free_port)
	while [ "$mport" = "$port" ]; do mport=$(free_port); done
	url="http://127.0.0.1:$port"
	public="${KEYCLOAK_PUBLIC_URL:-$url}"
	public="${public%/}"
	(
		umask 077
		secret >"$RUN/admin-password"
		secret >"$RUN/llm-api-client-secret"
		secret >"$RUN/guest-login-client-secret"
	)

	log "starting Keycloak $KC_VERSION on $url (hostname $public; log $RUN/keycloak.log)"
	local t0=$SECONDS
	# setsid: kc.sh and its java child form their own process group, which
	# stop kills as a whole. The secrets reach Keycloak only through its
	# environment (the realm import resolves ${JAN_*_CLIENT_SECRET}).
	KC_BOOTSTRAP_ADMIN_USERNAME="$ADMIN_USER" \
		KC_BOOTSTRAP_ADMIN_PASSWORD="$(cat "$RUN/admin-password")" \
		JAN_LLM_API_CLIENT_SECRET="$(cat "$RUN/llm-api-client-secret")" \
		JAN_GUEST_LOGIN_CLIENT_SECRET="$(cat "$RUN/guest-login-client-secret")" \
		JAVA_OPTS_KC_HEAP="${JAVA_OPTS_KC_HEAP:--Xms64m -Xmx512m}" \
		JAVA_OPTS_APPEND="${JAVA_OPTS_APPEND:--XX:TieredStopAtLevel=1}" \
		setsid "$DIST/bin/kc.sh" start-dev \
		--import-realm \
		--db=dev-mem \
		--http-enabled=true \
		--http-host=127.0.0.1 \
		--http-port="$port" \
		--http-management-port="$mport" \
		--health-enabled=true \
		--hostname="$public" \
		--hostname-admin="$url" \
		--hostname-backchannel-dynamic=true \
		--proxy-headers=xforwarded \
		--proxy-trusted-addresses=127.0.0.1 \
		--cache=local \
		</dev/null >"$RUN/keycloak.log" 2>&1 &
	local pid=$!
	echo "$pid" >"$RUN/pid"

	if ! wait_ready "http://127.0.0.1:$mport" "$pid"; then
		tail -n 40 "$RUN/keycloak.log" >&2 || true
		stop_instance
		die "Keycloak exited or was not ready within ${READY_TIMEOUT}s (log tail above)"
	fi
	log "Keycloak ready after $((SECONDS - t0))s"

	cat >"$RUN/env" <<EOF
KEYCLOAK_URL=$url
KEYCLOAK_ISSUER=$public/realms/$REALM
KEYCLOAK_JWKS_URL=$url/realms/$REALM/protocol/openid-connect/certs
KEYCLOAK_MANAGEMENT_URL=http://127.0.0.1:$mport
KEYCLOAK_REALM=$REALM
KEYCLOAK_ADMIN_USERNAME=$ADMIN_USER
KEYCLOAK_ADMIN_PASSWORD_FILE=$RUN/admin-password
KEYCLOAK_LLM_API_CLIENT_SECRET_FILE=$RUN/llm-api-client-secret
KEYCLOAK_GUEST_LOGIN_CLIENT_SECRET_FILE=$RUN/guest-login-client-secret
KEYCLOAK_LOG_FILE=$RUN/keycloak.log
EOF
	cat "$RUN/env"
}

# admin_token prints a master-realm admin token (password grant on admin-cli;
# the password goes to curl through stdin, not its command line).
admin_token() {
	running || die "Keycloak is not running (scripts/keycloak.sh start)"
	local url
	url=$(sed -n 's/^KEYCLOAK_URL=//p' "$RUN/env")
	{
		printf 'grant_type=password&client_id=admin-cli&username=%s&password=' "$ADMIN_USER"
		cat "$RUN/admin-password"
	} | curl -fsS --data-binary @- -H 'Content-Type: application/x-www-form-urlencoded' \
		"$url/realms/master/protocol/openid-connect/token" |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

case "${1:-}" in
start) start ;;
stop) stop_instance ;;
env)
	running && [ -f "$RUN/env" ] || exit 1
	cat "$RUN/env"
	;;
admin-token) admin_token ;;
*)
	echo "usage: $0 start|stop|env|admin-token" >&2
	exit 2
	;;
esac
