#!/usr/bin/env bash
# scripts/redis.sh start|stop|env — a throw-away Redis 7 (Debian redis-server)
# on a free loopback port, data under .tmp/redis. Idempotent: "start" reuses a
# running instance. "env" prints REDIS_ADDR=host:port of the running instance.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DIR="$TMPROOT/redis"
mkdir -p "$DIR"

running() { [ -f "$DIR/pid" ] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null; }

case "${1:-}" in
start)
	if running; then cat "$DIR/env"; exit 0; fi
	command -v redis-server >/dev/null || apt_install redis-server
	# Debian's package starts a system service on 6379; we never use it.
	port=$(free_port)
	redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --save '' --appendonly no \
		--dir "$DIR" --pidfile "$DIR/pid" --logfile "$DIR/redis.log" >/dev/null
	wait_tcp 127.0.0.1 "$port" 20 || die "redis did not start (see $DIR/redis.log)"
	for _ in $(seq 50); do [ -s "$DIR/pid" ] && break; sleep 0.1; done
	echo "REDIS_ADDR=127.0.0.1:$port" >"$DIR/env"
	cat "$DIR/env"
	;;
stop)
	if running; then kill "$(cat "$DIR/pid")" && rm -f "$DIR/pid" "$DIR/env"; fi
	;;
env)
	running && cat "$DIR/env"
	;;
*) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
