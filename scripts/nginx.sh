#!/usr/bin/env bash
# scripts/nginx.sh start | stop | reload | env — a Debian nginx as the load
# balancer in front of Kong nodes, on loopback (the production shape:
# docs/architecture.md "A request's path"; tests/topology).
#
#   start --dir DIR --upstream HOST:PORT [--upstream HOST:PORT]...
#         [--listen-port N] [--bind ADDR] [--tls-cert FILE --tls-key FILE]
#             render DIR/nginx.conf and start nginx (prefix DIR, daemon):
#             it listens on 127.0.0.1:<N> (0 or unset: a free port) and
#             spreads requests over the upstreams (Kong proxies) with
#             passive health checks (max_fails=1 fail_timeout=2s: a dead node
#             leaves the rotation after one failure and the request is
#             retried on the next one when nothing was sent yet). It
#             connects to them FROM --bind (default 127.0.0.2, Linux routes
#             all of 127/8 on loopback), so Kong can trust exactly the
#             balancer (trusted_ips = 127.0.0.2/32) and a client's own
#             X-Forwarded-For never chooses its address. It appends the peer
#             to X-Forwarded-For, sends X-Forwarded-Proto/-Host, never buffers
#             (SSE streams pass as they come) and keeps connections to Kong
#             alive. With --tls-cert and --tls-key (PEM files, read by nginx
#             at start) it terminates TLS (1.2 and 1.3) on that port, as the
#             production balancer does: clients speak https, Kong gets plain
#             http with X-Forwarded-Proto: https (what DPoP's htu check is
#             built around: docs/architecture.md "The edge pipeline").
#             Without them it listens in plain http, as before. Prints the
#             env lines below.
#   reload --dir DIR [start's options]   render again and reload (nginx -s reload)
#   stop --dir DIR    stop it (logs stay in DIR/logs)
#   env --dir DIR     print the env lines of the nginx running from DIR
#
# Env lines: NGINX_URL=http(s)://127.0.0.1:<port>  NGINX_ERROR_LOG  NGINX_ACCESS_LOG
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cmd=${1:-}
shift || true
dir="" port=0 bind=127.0.0.2 tls_cert="" tls_key=""
upstreams=()
while [ $# -gt 0 ]; do
	case "$1" in
	--dir) dir=$2; shift 2 ;;
	--upstream) upstreams+=("$2"); shift 2 ;;
	--listen-port) port=$2; shift 2 ;;
	--bind) bind=$2; shift 2 ;;
	--tls-cert) tls_cert=$2; shift 2 ;;
	--tls-key) tls_key=$2; shift 2 ;;
	*) die "unknown option $1" ;;
	esac
done
[ -n "$dir" ] || die "--dir is required"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

if [ -n "$tls_cert$tls_key" ] && { [ -z "$tls_cert" ] || [ -z "$tls_key" ]; }; then
	die "--tls-cert and --tls-key go together"
fi

running() { [ -f "$dir/nginx.pid" ] && kill -0 "$(cat "$dir/nginx.pid")" 2>/dev/null; }

env_lines() {
	local scheme=http
	[ -f "$dir/tls" ] && scheme=https
	cat <<EOF
NGINX_URL=$scheme://127.0.0.1:$(cat "$dir/port")
NGINX_ERROR_LOG=$dir/logs/error.log
NGINX_ACCESS_LOG=$dir/logs/access.log
EOF
}

render() {
	[ ${#upstreams[@]} -gt 0 ] || die "at least one --upstream is required"
	command -v nginx >/dev/null || apt_install nginx
	if [ "$port" = 0 ]; then
		if [ -f "$dir/port" ]; then port=$(cat "$dir/port"); else port=$(free_port); fi
	fi
	echo "$port" >"$dir/port"
	mkdir -p "$dir/logs" "$dir/tmp"
	# workers (nobody when root) write temp files; the master opens the logs
	chmod 0777 "$dir/tmp"
	local servers="" u
	for u in "${upstreams[@]}"; do
		servers+="		server $u max_fails=1 fail_timeout=2s;"$'\n'
	done
	local user=""
	[ "$(id -u)" -eq 0 ] && user="user nobody nogroup;"
	local listen="listen 127.0.0.1:$port reuseport backlog=4096;" tls=""
	rm -f "$dir/tls"
	if [ -n "$tls_cert" ]; then
		[ -r "$tls_cert" ] && [ -r "$tls_key" ] || die "--tls-cert/--tls-key: cannot read $tls_cert or $tls_key"
		tls_cert=$(cd "$(dirname "$tls_cert")" && pwd)/$(basename "$tls_cert")
		tls_key=$(cd "$(dirname "$tls_key")" && pwd)/$(basename "$tls_key")
		listen="listen 127.0.0.1:$port ssl reuseport backlog=4096;"
		tls="ssl_certificate $tls_cert;
		ssl_certificate_key $tls_key;
		ssl_protocols TLSv1.2 TLSv1.3;
		ssl_session_cache shared:tls:1m;"
		touch "$dir/tls"
	fi
	cat >"$dir/nginx.conf" <<EOF
# rendered by scripts/nginx.sh — the load balancer in front of the Kong nodes
$user
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log notice;
events { worker_connections 4096; }
http {
	access_log $dir/logs/access.log;
	client_body_temp_path $dir/tmp/body;
	proxy_temp_path $dir/tmp/proxy;
	fastcgi_temp_path $dir/tmp/fastcgi;
	uwsgi_temp_path $dir/tmp/uwsgi;
	scgi_temp_path $dir/tmp/scgi;
	server_tokens off;
	client_max_body_size 21m;
	upstream kong {
$servers		keepalive 64;
	}
	server {
		$listen
		$tls
		location / {
			proxy_pass http://kong;
			proxy_bind $bind;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host \$http_host;
			proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Proto \$scheme;
			proxy_set_header X-Forwarded-Host \$http_host;
			proxy_buffering off;
			proxy_request_buffering off;
			proxy_read_timeout 300s;
			proxy_connect_timeout 2s;
			proxy_next_upstream error timeout;
			proxy_next_upstream_tries 2;
		}
	}
}
EOF
	nginx -t -q -p "$dir" -c "$dir/nginx.conf" 2>"$dir/logs/check.log" || {
		cat "$dir/logs/check.log" >&2
		die "nginx refused the configuration (above)"
	}
}

case "$cmd" in
start)
	if running; then env_lines; exit 0; fi
	render
	nginx -p "$dir" -c "$dir/nginx.conf" || die "nginx did not start (see $dir/logs/error.log)"
	wait_tcp 127.0.0.1 "$port" 20 || die "nginx is not listening on $port (see $dir/logs/error.log)"
	env_lines
	;;
reload)
	running || die "no nginx runs from $dir"
	render
	nginx -p "$dir" -c "$dir/nginx.conf" -s reload
	env_lines
	;;
stop)
	if running; then
		pid=$(cat "$dir/nginx.pid")
		nginx -p "$dir" -c "$dir/nginx.conf" -s quit 2>/dev/null || kill "$pid"
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	;;
env)
	running && env_lines
	;;
*)
	echo "usage: $0 start|reload|stop|env --dir DIR [--upstream HOST:PORT]... [--listen-port N] [--bind ADDR] [--tls-cert FILE --tls-key FILE]" >&2
	exit 2
	;;
esac
