#!/usr/bin/env bash
# scripts/kong.sh install | start | stop | env — the real Kong 3.9 on this
# machine, with edgeguard's go-pdk plugin servers, on loopback ports.
#
#   install   find or build Kong and print KONG_ENV_SH / KONG_CMD lines:
#               1. KONG_BIN (a `kong` executable of Kong 3.9.x), else
#               2. `kong` on PATH when it is Kong 3.9.x (Kong's packages, the image), else
#               3. a build from the source bundle KONG_SOURCE_BUNDLE (default
#                  ../shared/kong beside the repository) with its build.sh, into
#                  KONG_INSTALL_DIR (default .dev/components/kong/3.9.3-<bundle sha>),
#                  cached by the bundle's checksum (~2 min on 2 cores, once).
#             Neither: a clear error saying how to get Kong (exit 1).
#   start --dir DIR [--config kong.yml] [--conf kong.conf] [--bin DIR]
#         [--query-bin DIR] [--secrets DIR] [--rewrite OLD=NEW]...
#         [--services-ca FILE] [--proxy-port N] [--logs DIR]
#             render kong.conf and kong.yml for this machine into DIR and start
#             Kong as a non-root user (KONG_USER; as root default nobody) that
#             owns DIR's prefix and logs. What is rendered, nothing else:
#             every listener (proxy, admin, status, each plugin server's
#             -metrics-listen) on 127.0.0.1 and a free port (--proxy-port for
#             the proxy; 0 = free), the plugin servers' paths to --bin
#             (default bin/; --query-bin DIR: the schemas, query_cmd's
#             `<plugin> -dump`, from DIR instead, e.g. the real plugins'
#             schemas for stand-in servers in --bin such as tests/kong's
#             config capture), the prefix and logs into DIR, the rewrites in
#             kong.yml (in order; the local addresses of services, Redis,
#             JWKS and validate URLs), and /etc/kong/secrets/<f> to copies of
#             --secrets' files in DIR/secrets owned by the Kong user (0600),
#             and with --services-ca FILE kong.yml's one PEM certificate (the
#             placeholder services CA of ca_certificates) replaced by FILE's.
#             Every EDGEGUARD_<NAME>_FILE variable of the environment gives
#             Kong EDGEGUARD_<NAME> with that file's content, as the image's
#             entrypoint does (kong/entrypoint.sh): kong.yml's
#             {vault://env/edgeguard-edge-client-cert} and -key come from
#             EDGEGUARD_EDGE_CLIENT_CERT_FILE and EDGEGUARD_EDGE_CLIENT_KEY_FILE
#             (never on a command line).
#             Kong's logs go to --logs (default the prefix's logs/) as
#             kong-error.log and kong-access.log.
#             Waits for /status/ready and every plugin server's socket (Kong
#             is ready before its plugin servers are), then prints the env
#             lines below.
#   validate --dir DIR [start's options]   render as start does, then run
#             kong/validate.sh on it as the Kong user (kong check + a
#             throw-away kong start: what kong/Dockerfile runs at build time);
#             exit 1 when Kong refuses the configuration
#   stop --dir DIR   stop that Kong (kong stop, then its plugin servers) and keep its logs
#   env --dir DIR    print the env lines of the Kong running from DIR (exit 1 if none)
#
# Env lines (KEY=value):
#   KONG_PROXY_URL KONG_ADMIN_URL KONG_STATUS_URL   http://127.0.0.1:<port>
#   KONG_PREFIX      the runtime prefix (pids, sockets)
#   KONG_ERROR_LOG KONG_ACCESS_LOG   Kong's logs (plugin-server stderr is in the error log)
#   KONG_METRICS_<PLUGIN>  each plugin server's /metrics base URL (PLUGIN in upper case, _ for -)
#
# Kong's own KONG_<OPTION> variables in the environment still override the
# rendered kong.conf (e.g. KONG_TRUSTED_IPS=127.0.0.1 to trust the loopback
# peer's X-Forwarded-For, KONG_NGINX_WORKER_PROCESSES=1).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KONG_VERSION=3.9.3
PLUGIN_SERVERS=(header-guard keycloak-jwt keycloak-apikey redis-ratelimit edgeguard client-ip)
BUNDLE_DIR="${KONG_SOURCE_BUNDLE:-$ROOT/../shared/kong}"
READY_TIMEOUT=${KONG_READY_TIMEOUT:-60}

# run_user NAME: who Kong runs as. Root: KONG_USER (default nobody), since
# nginx workers spawn the plugin servers and they must own their sockets;
# anyone else: themselves.
kong_user() {
	if [ "$(id -u)" -eq 0 ]; then
		local u=${KONG_USER:-nobody}
		[ "$u" = root ] && die "KONG_USER=root: Kong must run as a non-root user (its plugin servers cannot create their sockets otherwise)"
		echo "$u"
	else
		id -un
	fi
}
as_kong_user() {
	local u
	u=$(kong_user)
	if [ "$(id -u)" -eq 0 ]; then
		setpriv --reuid="$u" --regid="$(id -gn "$u")" --clear-groups -- "$@"
	else
		"$@"
	fi
}

# is_kong39 CMD: CMD is a Kong 3.9.x.
is_kong39() {
	local v
	v=$("$@" version 2>/dev/null | tail -n 1) || return 1
	[[ $v == 3.9.* || $v == *" 3.9."* ]]
}

# install_kong prints KONG_ENV_SH (a kong-env.sh to source, may be empty) and
# KONG_CMD (the kong executable).
install_kong() {
	if [ -n "${KONG_BIN:-}" ]; then
		is_kong39 "$KONG_BIN" || die "KONG_BIN=$KONG_BIN is not a Kong 3.9.x ('$KONG_BIN version' says: $("$KONG_BIN" version 2>&1 | tail -n 1))"
		printf 'KONG_ENV_SH=\nKONG_CMD=%s\n' "$KONG_BIN"
		return 0
	fi
	if command -v kong >/dev/null && is_kong39 kong; then
		printf 'KONG_ENV_SH=\nKONG_CMD=%s\n' "$(command -v kong)"
		return 0
	fi
	local tarball="$BUNDLE_DIR/kong-$KONG_VERSION-sources.tar.gz"
	if [ ! -f "$tarball" ] || [ ! -x "$BUNDLE_DIR/build.sh" ]; then
		die "no Kong 3.9: set KONG_BIN to a Kong 3.9.x 'kong' executable, put one on PATH (Kong's Debian/RPM packages or the kong:3.9.3 image), or set KONG_SOURCE_BUNDLE to the folder holding kong-$KONG_VERSION-sources.tar.gz and build.sh (looked in $BUNDLE_DIR)"
	fi
	local sum
	sum=$(sha256sum "$tarball" | cut -d' ' -f1)
	if [ -f "$BUNDLE_DIR/SHA256SUMS.txt" ] && ! grep -q "^$sum  kong-$KONG_VERSION-sources.tar.gz" "$BUNDLE_DIR/SHA256SUMS.txt"; then
		die "$tarball does not match its SHA256SUMS.txt (got $sum)"
	fi
	local prefix="${KONG_INSTALL_DIR:-$ROOT/.dev/components/kong/$KONG_VERSION-${sum:0:12}}"
	if ! grep -q '^complete' "$prefix/.kong-build-state" 2>/dev/null; then
		mkdir -p "$(dirname "$prefix")"
		local blog="$(dirname "$prefix")/build-$KONG_VERSION-${sum:0:12}.log"
		log "building Kong $KONG_VERSION from $tarball into $prefix (about 2 minutes on 2 cores, once; log $blog)"
		# build.sh takes a lock on the prefix: a second caller waits for the first.
		if ! "$BUNDLE_DIR/build.sh" "$tarball" "$prefix" >"$blog" 2>&1; then
			if grep -q '^complete' "$prefix/.kong-build-state" 2>/dev/null; then
				: # another caller finished it meanwhile
			else
				tail -n 40 "$blog" >&2
				die "building Kong from $tarball failed (log tail above, full log $blog)"
			fi
		fi
	fi
	printf 'KONG_ENV_SH=%s\nKONG_CMD=%s\n' "$prefix/kong-env.sh" "$prefix/bin/kong"
}

# kong_run ARGS...: the kong CLI as the Kong user, with the install's environment.
kong_run() {
	kong_run_env "$KONG_CMD" "$@"
}

# kong_run_env CMD...: CMD as the Kong user, with the install's environment.
kong_run_env() {
	(
		set +u
		[ -n "$KONG_ENV_SH" ] && . "$KONG_ENV_SH"
		PATH="$(dirname "$KONG_CMD"):$PATH"
		cd "$DIR"
		as_kong_user env HOME="$DIR" PATH="$PATH" "$@"
	)
}

# render_conf SRC DST: kong.conf for this machine (see the header).
render_conf() {
	python3 - "$1" "$2" "$PREFIX" "$DIR/kong.yml" "$BINDIR" "$QUERYBIN" "$LOGS" "$proxy_port" "$admin_port" "$status_port" "$(IFS=,; echo "${PLUGIN_SERVERS[*]}")" "${metrics_ports[@]}" <<'PY'
import re, sys
src, dst, prefix, yml, bindir, querybin, logs, proxy, admin, status, names, *metrics = sys.argv[1:]
mport = dict(zip(names.split(","), metrics))  # PLUGIN_SERVERS, in order
out, seen = [], set()
for line in open(src):
    m = re.match(r"^(\w+)\s*=\s*(.*?)\s*$", line)
    if not m:
        out.append(line)
        continue
    key, val = m.group(1), m.group(2)
    seen.add(key)
    if key == "prefix":
        val = prefix + "/"
    elif key == "declarative_config":
        val = yml
    elif key == "proxy_listen":
        val = "127.0.0.1:" + proxy
    elif key == "admin_listen":
        val = "127.0.0.1:" + admin
    elif key == "status_listen":
        val = "127.0.0.1:" + status
    elif key in ("proxy_access_log",):
        val = re.sub(r"^\S+", logs + "/kong-access.log", val)
    elif key in ("proxy_error_log", "admin_error_log"):
        val = logs + "/kong-error.log"
    elif key.startswith("pluginserver_") and key.endswith(("_socket", "_start_cmd", "_query_cmd")):
        val = val.replace("/kong_prefix", prefix)
        val = re.sub(r"/usr/local/bin/", (querybin if key.endswith("_query_cmd") else bindir) + "/", val)
        def metrics_flag(mm):
            name = key[len("pluginserver_"):].rsplit("_start_cmd", 1)[0].replace("_", "-")
            return "-metrics-listen 127.0.0.1:" + mport[name]
        val = re.sub(r"-metrics-listen \S+", metrics_flag, val)
    out.append("%s = %s\n" % (key, val))
for need in ("prefix", "declarative_config", "proxy_listen", "admin_listen", "status_listen"):
    if need not in seen:
        sys.exit("kong.conf has no %s line" % need)
open(dst, "w").write("".join(out))
PY
}

# render_yml SRC DST CA REWRITE...: kong.yml with the rewrites applied in
# order (literal replacements, like the deployment's own templating would
# do), then, when CA names a file, its one PEM certificate replaced by CA's
# (the rule of bin/gen-secrets -kong-yml, tests/deploy/secretgen
# RenderKongYML).
render_yml() {
	python3 - "$@" <<'PY'
import re, sys
src, dst, ca, *rw = sys.argv[1:]
text = open(src).read()
for r in rw:
    old, sep, new = r.partition("=")
    if not sep or not old:
        sys.exit("--rewrite %r: want OLD=NEW" % r)
    if old not in text:
        sys.exit("--rewrite %r: %r is not in %s" % (r, old, src))
    text = text.replace(old, new)
if ca:
    pem = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)
    blocks = pem.findall(open(ca).read())
    if len(blocks) != 1:
        sys.exit("--services-ca %s: want exactly one PEM certificate, found %d" % (ca, len(blocks)))
    found = list(pem.finditer(text))
    if len(found) != 1:
        sys.exit("--services-ca: %s holds %d PEM certificates, want exactly one (the services CA)" % (src, len(found)))
    m = found[0]
    indent = text[text.rfind("\n", 0, m.start()) + 1:m.start()]
    if indent.strip():
        sys.exit("--services-ca: the PEM certificate of %s does not start its line" % src)
    text = text[:m.start()] + ("\n" + indent).join(blocks[0].split("\n")) + text[m.end():]
open(dst, "w").write(text)
PY
}

# export_file_env: every EDGEGUARD_<NAME>_FILE of the environment becomes
# EDGEGUARD_<NAME> with the file's content (kong/entrypoint.sh's rule), for
# Kong's env vault.
export_file_env() {
	local v name
	for v in $(compgen -e | grep -E '^EDGEGUARD_[A-Z0-9_]+_FILE$' || true); do
		name=${v%_FILE}
		[ -r "${!v}" ] || die "$v=${!v}: not a readable file"
		export "$name"="$(cat "${!v}")"
	done
}

env_lines() {
	cat "$DIR/env"
}

running() {
	[ -f "$DIR/env" ] && [ -f "$PREFIX/pids/nginx.pid" ] && kill -0 "$(cat "$PREFIX/pids/nginx.pid")" 2>/dev/null
}

parse_args() {
	DIR="" CONFIG="$ROOT/kong/kong.yml" CONF="$ROOT/kong/kong.conf" BINDIR="${EDGEGUARD_BIN:-$ROOT/bin}"
	QUERYBIN="" SECRETS_SRC="" PROXY_PORT=0 REWRITES=() LOGS="" SERVICES_CA=""
	while [ $# -gt 0 ]; do
		case "$1" in
		--dir) DIR=$2; shift 2 ;;
		--config) CONFIG=$2; shift 2 ;;
		--conf) CONF=$2; shift 2 ;;
		--bin) BINDIR=$2; shift 2 ;;
		--query-bin) QUERYBIN=$2; shift 2 ;;
		--secrets) SECRETS_SRC=$2; shift 2 ;;
		--rewrite) REWRITES+=("$2"); shift 2 ;;
		--services-ca) SERVICES_CA=$2; shift 2 ;;
		--proxy-port) PROXY_PORT=$2; shift 2 ;;
		--logs) LOGS=$2; shift 2 ;;
		*) die "unknown argument $1 (see the header of $0)" ;;
		esac
	done
	[ -n "$DIR" ] || die "--dir is required"
	[ -n "$QUERYBIN" ] || QUERYBIN=$BINDIR
	mkdir -p "$DIR"
	DIR=$(cd "$DIR" && pwd)
	# Unix socket paths are limited to 107 bytes: a deep DIR gets its
	# prefix under /tmp (recorded in DIR/prefix-path).
	if [ -f "$DIR/prefix-path" ]; then
		PREFIX=$(cat "$DIR/prefix-path")
	elif [ ${#DIR} -gt 60 ]; then
		PREFIX=$(mktemp -d /tmp/edgeguard-kong.XXXXXX)
		echo "$PREFIX" >"$DIR/prefix-path"
	else
		PREFIX="$DIR/prefix"
		echo "$PREFIX" >"$DIR/prefix-path"
	fi
	[ -n "$LOGS" ] || LOGS="$PREFIX/logs"
	mkdir -p "$LOGS"
	LOGS=$(cd "$LOGS" && pwd)
}

stop() {
	if [ -f "$PREFIX/pids/nginx.pid" ]; then
		local pid
		pid=$(cat "$PREFIX/pids/nginx.pid")
		if kill -0 "$pid" 2>/dev/null; then
			if [ -f "$DIR/install.env" ]; then
				# shellcheck disable=SC1091
				. "$DIR/install.env"
				kong_run stop -p "$PREFIX" >/dev/null 2>&1 || true
			fi
			for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -TERM "$pid" 2>/dev/null || true
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	# The plugin servers Kong started (it stops them itself; this catches an
	# nginx that was killed).
	local p
	for p in $(pgrep -f -- "-kong-prefix $PREFIX( |\$)" 2>/dev/null || true); do kill -TERM "$p" 2>/dev/null || true; done
	rm -f "$DIR/env"
}

# render installs Kong if needed and renders DIR's kong.conf, kong.yml and
# secrets for the Kong user (see the header).
render() {
	install_kong >"$DIR/install.env"
	# shellcheck disable=SC1091
	. "$DIR/install.env"

	local user group s
	user=$(kong_user)
	group=$(id -gn "$user")
	proxy_port=$PROXY_PORT
	[ "$proxy_port" = 0 ] && proxy_port=$(free_port)
	admin_port=$(free_port) status_port=$(free_port)
	metrics_ports=()
	for s in "${PLUGIN_SERVERS[@]}"; do metrics_ports+=("$(free_port)"); done

	rm -rf "$PREFIX" "$DIR/secrets"
	mkdir -p "$PREFIX/logs" "$DIR/secrets" "$LOGS"
	touch "$LOGS/kong-error.log" "$LOGS/kong-access.log"
	local rewrites=("${REWRITES[@]}")
	if [ -n "$SECRETS_SRC" ]; then
		local f base
		for f in $(grep -o '/etc/kong/secrets/[A-Za-z0-9._-]*' "$CONFIG" | sort -u); do
			base=${f##*/}
			[ -f "$SECRETS_SRC/$base" ] && install -m 0600 "$SECRETS_SRC/$base" "$DIR/secrets/$base"
		done
		rewrites+=("/etc/kong/secrets/=$DIR/secrets/")
	fi
	render_yml "$CONFIG" "$DIR/kong.yml" "$SERVICES_CA" "${rewrites[@]}" || die "rendering $CONFIG failed (message above)"
	render_conf "$CONF" "$DIR/kong.conf" || die "rendering $CONF failed (message above)"
	chmod 0644 "$DIR/kong.yml" "$DIR/kong.conf"
	if [ "$(id -u)" -eq 0 ]; then
		chown -R "$user:$group" "$PREFIX" "$DIR/secrets"
		chown "$user:$group" "$LOGS/kong-error.log" "$LOGS/kong-access.log"
		chmod 0755 "$DIR"
	fi
	chmod 0700 "$DIR/secrets"
	as_kong_user test -r "$DIR/kong.yml" -a -x "$BINDIR/edgeguard" ||
		die "user $user cannot read $DIR or run $BINDIR/edgeguard (the parent directories must be readable by it; KONG_USER picks another user)"

}

start() {
	if running; then
		env_lines
		return 0
	fi
	stop # leftovers of a crashed run
	command -v curl >/dev/null || apt_install curl
	local s
	for s in "${PLUGIN_SERVERS[@]}"; do
		[ -x "$BINDIR/$s" ] || die "$BINDIR/$s is missing: run make build"
		[ -x "$QUERYBIN/$s" ] || die "$QUERYBIN/$s is missing: run make build"
	done
	render
	export_file_env
	if ! kong_run start -c "$DIR/kong.conf" >"$DIR/start.out" 2>&1; then
		cat "$DIR/start.out" >&2
		tail -n 30 "$LOGS/kong-error.log" >&2 2>/dev/null || true
		die "kong start failed (output above; error log $LOGS/kong-error.log)"
	fi
	local i
	for ((i = 0; i < READY_TIMEOUT * 5; i++)); do
		curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$status_port/status/ready" 2>/dev/null && break
		sleep 0.2
	done
	if ! curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$status_port/status/ready" 2>/dev/null; then
		tail -n 30 "$LOGS/kong-error.log" >&2 2>/dev/null || true
		stop
		die "Kong was not ready within ${READY_TIMEOUT}s (error log tail above)"
	fi
	# /status/ready does not wait for the plugin servers: until a server has
	# created its socket, Kong answers that plugin's routes 500 (measured).
	local missing
	for ((i = 0; i < READY_TIMEOUT * 5; i++)); do
		missing=""
		for s in "${PLUGIN_SERVERS[@]}"; do [ -S "$PREFIX/$s.socket" ] || missing="$missing $s"; done
		[ -z "$missing" ] && break
		sleep 0.2
	done
	if [ -n "$missing" ]; then
		tail -n 30 "$LOGS/kong-error.log" >&2 2>/dev/null || true
		stop
		die "the plugin servers$missing created no socket in $PREFIX within ${READY_TIMEOUT}s (error log tail above)"
	fi
	{
		echo "KONG_PROXY_URL=http://127.0.0.1:$proxy_port"
		echo "KONG_ADMIN_URL=http://127.0.0.1:$admin_port"
		echo "KONG_STATUS_URL=http://127.0.0.1:$status_port"
		echo "KONG_PREFIX=$PREFIX"
		echo "KONG_ERROR_LOG=$LOGS/kong-error.log"
		echo "KONG_ACCESS_LOG=$LOGS/kong-access.log"
		local j=0
		for s in "${PLUGIN_SERVERS[@]}"; do
			echo "KONG_METRICS_$(echo "$s" | tr 'a-z-' 'A-Z_')=http://127.0.0.1:${metrics_ports[$j]}"
			j=$((j + 1))
		done
	} >"$DIR/env"
	env_lines
}

# validate: kong/validate.sh on DIR's rendered kong.conf and kong.yml, as
# the Kong user (what kong/Dockerfile runs at build time).
validate() {
	stop
	render
	export_file_env
	kong_run_env sh "$ROOT/kong/validate.sh" "$DIR/kong.conf" "$PREFIX"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
install) install_kong ;;
start) parse_args "$@"; start ;;
validate) parse_args "$@"; validate ;;
stop) parse_args "$@"; stop ;;
env) parse_args "$@"; running && env_lines ;;
*)
	echo "usage: $0 install | start --dir DIR [options] | validate --dir DIR [options] | stop --dir DIR | env --dir DIR" >&2
	exit 2
	;;
esac
