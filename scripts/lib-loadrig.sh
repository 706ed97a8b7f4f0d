# shellcheck shell=bash
# scripts/lib-loadrig.sh — what the load runs through the real Kong share
# (scripts/load-kong.sh, scripts/load-topology.sh): loadrig_setup DIR RUN
# builds the rig and the empty plugin, starts (or reuses) Redis, an nginx
# upstream answering `return 200` and the rig (bench/cmd/loadrig serve: the
# JWKS, the validate endpoint, the JWT and keys, RUN/kong-bench.yml), and
# writes DIR/kong.conf (kong/kong.conf + the empty plugin's server) and
# DIR/kong-bin (the plugin servers). It sets LOADRIG, REDIS_ADDR, REDIS_PID,
# UP_PORT, UP_WORKER and, for the caller's cleanup, redis_started, up_pid,
# rig_pid. Source lib.sh first.

loadrig_setup() {
	local DIR=$1 RUN=$2
	mkdir -p "$DIR/bin" "$DIR/upstream/tmp" "$DIR/kong-bin"
	command -v wrk >/dev/null && command -v nginx >/dev/null || apt_install wrk nginx
	for b in header-guard keycloak-jwt keycloak-apikey redis-ratelimit edgeguard client-ip; do
		[ -x "bin/$b" ] || die "bin/$b missing: run make build (make load does)"
		ln -s "$ROOT/bin/$b" "$DIR/kong-bin/$b"
	done
	log "building the rig and the empty plugin"
	(cd bench && go build -trimpath -o "$DIR/bin/loadrig" ./cmd/loadrig &&
		go build -trimpath -o "$DIR/kong-bin/emptyplugin" ./cmd/emptyplugin)
	# its Kong name is its executable's name (a copy, not a link: the name comes
	# from /proc/self/exe)
	cp "$DIR/kong-bin/emptyplugin" "$DIR/kong-bin/emptyplugin-fast"
	LOADRIG="$DIR/bin/loadrig"

	if ! redis_env=$(scripts/redis.sh env); then
		redis_env=$(scripts/redis.sh start)
		redis_started=1
	fi
	eval "export $redis_env"
	REDIS_PID=$(cat "$TMPROOT/redis/pid")

	# The upstream: nginx, one worker, `return 200`, keep-alive without a
	# request cap (Kong keeps its upstream connections).
	UP_PORT=$(free_port)
	UP="$DIR/upstream"
	user_line=""
	[ "$(id -u)" -eq 0 ] && user_line="user $(id -un) $(id -gn);"
	cat >"$UP/nginx.conf" <<-EOF
	$user_line
	worker_processes 1;
	pid $UP/nginx.pid;
	error_log $UP/error.log warn;
	daemon off;
	events { worker_connections 4096; }
	http {
		access_log off;
		keepalive_requests 1000000;
		client_body_temp_path $UP/tmp/body;
		proxy_temp_path $UP/tmp/proxy;
		fastcgi_temp_path $UP/tmp/fastcgi;
		uwsgi_temp_path $UP/tmp/uwsgi;
		scgi_temp_path $UP/tmp/scgi;
		server {
			listen 127.0.0.1:$UP_PORT;
			default_type application/json;
			location / { return 200 '{"ok":true}\n'; }
		}
	}
	EOF
	nginx -p "$UP/" -e "$UP/error.log" -c "$UP/nginx.conf" &
	up_pid=$!
	wait_tcp 127.0.0.1 "$UP_PORT" 20 || die "the upstream nginx did not start (see $UP/error.log)"
	UP_WORKER=$(pgrep -P "$up_pid" | head -n 1)

	"$LOADRIG" serve -dir "$RUN" -kong-upstream "http://127.0.0.1:$UP_PORT" -redis "$REDIS_ADDR" \
		>"$DIR/rig.out" 2>"$DIR/rig.log" &
	rig_pid=$!
	for _ in $(seq 100); do [ -s "$RUN/rig.json" ] && break; sleep 0.1; done
	[ -s "$RUN/rig.json" ] || die "the rig did not start (see $DIR/rig.log)"

	# kong.conf: the project's, plus the empty plugin's server (no metrics
	# listener: it has none).
	python3 - kong/kong.conf "$DIR/kong.conf" <<-'PY'
	import re, sys
	src, dst = sys.argv[1:]
	out = []
	for line in open(src):
	    if re.match(r"^(plugins|pluginserver_names)\s*=", line):
	        line = line.rstrip("\n") + ", emptyplugin, emptyplugin-fast\n"
	    out.append(line)
	out.append("""
	# bench only (scripts/load-kong.sh): the empty plugin, the protocol's floor
	pluginserver_emptyplugin_socket = /kong_prefix/emptyplugin.socket
	pluginserver_emptyplugin_start_cmd = /usr/local/bin/emptyplugin -kong-prefix /kong_prefix
	pluginserver_emptyplugin_query_cmd = /usr/local/bin/emptyplugin -dump
	# the same plugin served with one write per exchange (bench/internal/pbserve)
	pluginserver_emptyplugin_fast_socket = /kong_prefix/emptyplugin-fast.socket
	pluginserver_emptyplugin_fast_start_cmd = /usr/local/bin/emptyplugin-fast -kong-prefix /kong_prefix -coalesce
	pluginserver_emptyplugin_fast_query_cmd = /usr/local/bin/emptyplugin-fast -dump
	""")
	open(dst, "w").write("".join(out))
	PY
}
