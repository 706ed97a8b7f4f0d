#!/usr/bin/env bash
# scripts/redis-cluster.sh start|stop|env|kill-master [ADDR]|restart-node [ADDR]
# — a throw-away Redis Cluster of 3 masters and 3 replicas (Debian
# redis-server in cluster mode, `redis-cli --cluster create`) on free loopback
# ports (lib.sh free_ports), data under .tmp/redis-cluster/node-<n>/
# (nodes.conf, redis.log). Takes about 3 s.
#
#   start         starts the six nodes and creates the cluster, or restarts
#                 the nodes of the running one that are down (idempotent);
#                 waits until every node says cluster_state:ok with all
#                 16384 slots served and every replica is in sync; prints
#                 REDIS_CLUSTER_ADDRS=127.0.0.1:p1,...,127.0.0.1:p6
#   env           prints REDIS_CLUSTER_ADDRS of the running cluster
#   kill-master   SIGKILLs a master (ADDR, default: the one serving slot 0)
#                 and prints its address; its replica takes over after
#                 cluster-node-timeout (2 s) and an election
#   restart-node  restarts ADDR (default: every node that is down); it
#                 rejoins from its nodes.conf (a killed master comes back as
#                 a replica of its successor) and start's checks are waited for
#   stop          kills every node
#
# Failover is quick on purpose: cluster-node-timeout 2000 ms and
# cluster-replica-validity-factor 0 (a replica may always be promoted, however
# long its link to the master was down); a master killed here is replaced in
# about 4 s. cluster-require-full-coverage no: while one master fails over,
# the other masters keep serving their slots. repl-diskless-sync-delay 0: a
# replica syncs at once (the default waits 5 s). pkg/testenv's
# StartRedisCluster starts private clusters with the same settings.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DIR="$TMPROOT/redis-cluster"
NODES=6
NODE_TIMEOUT_MS=2000
mkdir -p "$DIR"

node_dir() { echo "$DIR/node-$1"; }
node_port() { cat "$(node_dir "$1")/port"; }
node_running() { local d; d=$(node_dir "$1"); [ -s "$d/pid" ] && kill -0 "$(cat "$d/pid" 2>/dev/null)" 2>/dev/null; }
cli() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}"; }
addrs() {
	local out="" i
	for i in $(seq "$NODES"); do out+="${out:+,}127.0.0.1:$(node_port "$i")"; done
	echo "$out"
}
# node_of ADDR prints the node number of 127.0.0.1:PORT (or PORT).
node_of() {
	local port=${1##*:} i
	for i in $(seq "$NODES"); do
		[ -f "$(node_dir "$i")/port" ] && [ "$(node_port "$i")" = "$port" ] && { echo "$i"; return 0; }
	done
	die "$1 is not a node of this cluster ($(addrs))"
}

start_node() {
	local d port bus
	d=$(node_dir "$1") port=$(cat "$(node_dir "$1")/port") bus=$(cat "$(node_dir "$1")/bus")
	rm -f "$d/pid"
	redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --save '' --appendonly no \
		--dir "$d" --pidfile "$d/pid" --logfile "$d/redis.log" \
		--cluster-enabled yes --cluster-config-file nodes.conf --cluster-port "$bus" \
		--cluster-node-timeout "$NODE_TIMEOUT_MS" --cluster-replica-validity-factor 0 \
		--cluster-require-full-coverage no --repl-diskless-sync-delay 0 >/dev/null
	wait_tcp 127.0.0.1 "$port" 20 || die "redis node $1 did not start (see $d/redis.log)"
	for _ in $(seq 50); do [ -s "$d/pid" ] && break; sleep 0.1; done
}

# healthy: every node up, cluster_state:ok with 16384 slots ok and 6 known
# nodes, 3 masters each with a replica whose link is up, and every node's
# view (CLUSTER NODES: gossip) agrees: 3 replicas, nothing failing.
healthy() {
	local i port info masters=0 synced=0
	for i in $(seq "$NODES"); do
		node_running "$i" || return 1
		port=$(node_port "$i")
		info=$(cli "$port" cluster info 2>/dev/null) || return 1
		grep -q '^cluster_state:ok' <<<"$info" || return 1
		grep -q '^cluster_slots_ok:16384' <<<"$info" || return 1
		grep -q "^cluster_known_nodes:$NODES" <<<"$info" || return 1
		info=$(cli "$port" cluster nodes 2>/dev/null) || return 1
		[ "$(awk '$3 ~ /slave/ && $3 !~ /fail/' <<<"$info" | wc -l)" -eq 3 ] || return 1
		[ "$(awk 'NF >= 8 && ($3 ~ /fail/ || $8 != "connected")' <<<"$info" | wc -l)" -eq 0 ] || return 1
		info=$(cli "$port" info replication 2>/dev/null) || return 1
		if grep -q '^role:master' <<<"$info"; then
			masters=$((masters + 1))
		elif grep -q '^master_link_status:up' <<<"$info"; then
			synced=$((synced + 1))
		fi
	done
	[ "$masters" -eq 3 ] && [ "$synced" -eq 3 ]
}

wait_healthy() {
	local i
	for ((i = 0; i < $1 * 10; i++)); do healthy && return 0; sleep 0.1; done
	return 1
}

# master_of_slot SLOT prints the address of the master serving SLOT, as the
# live nodes see it.
master_of_slot() {
	local i a
	for i in $(seq "$NODES"); do
		node_running "$i" || continue
		a=$(cli "$(node_port "$i")" cluster nodes 2>/dev/null | awk -v s="$1" '
			$3 ~ /master/ && $3 !~ /fail/ {
				for (f = 9; f <= NF; f++) {
					n = split($f, r, "-")
					if ($f ~ /^\[/) continue
					lo = r[1]; hi = (n > 1) ? r[2] : r[1]
					if (s + 0 >= lo + 0 && s + 0 <= hi + 0) { split($2, a, "@"); print a[1]; exit }
				}
			}')
		[ -n "$a" ] && { echo "$a"; return 0; }
	done
	return 1
}

create() {
	local i ports
	command -v redis-server >/dev/null || apt_install redis-server
	command -v redis-cli >/dev/null || apt_install redis-tools
	rm -rf "$DIR"/node-* "$DIR/env"
	# 12 distinct free ports: each node's client port and its cluster bus
	# port (the default, port + 10000, may be out of range or taken).
	mapfile -t ports < <(free_ports $((2 * NODES)))
	for i in $(seq "$NODES"); do
		mkdir -p "$(node_dir "$i")"
		echo "${ports[2 * i - 2]}" >"$(node_dir "$i")/port"
		echo "${ports[2 * i - 1]}" >"$(node_dir "$i")/bus"
	done
	for i in $(seq "$NODES"); do start_node "$i"; done
	local nodes=()
	for i in $(seq "$NODES"); do nodes+=("127.0.0.1:$(node_port "$i")"); done
	redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$DIR/create.log" 2>&1 ||
		{ cat "$DIR/create.log" >&2; die "redis-cli --cluster create failed (output above)"; }
	echo "REDIS_CLUSTER_ADDRS=$(addrs)" >"$DIR/env"
}

case "${1:-}" in
start)
	if [ -s "$DIR/env" ]; then
		for i in $(seq "$NODES"); do node_running "$i" || start_node "$i"; done
	else
		create
	fi
	wait_healthy 30 || die "redis cluster not healthy after 30 s (see $DIR/node-*/redis.log, $DIR/create.log)"
	cat "$DIR/env"
	;;
env)
	[ -s "$DIR/env" ] && cat "$DIR/env"
	;;
kill-master)
	[ -s "$DIR/env" ] || die "no cluster running (start it first)"
	addr=${2:-}
	if [ -z "$addr" ]; then
		addr=$(master_of_slot 0) || die "no live master serves slot 0"
	fi
	n=$(node_of "$addr")
	node_running "$n" || die "$addr is not running"
	role=$(cli "$(node_port "$n")" role | head -n 1)
	[ "$role" = master ] || die "$addr is a $role, not a master"
	kill -9 "$(cat "$(node_dir "$n")/pid")"
	rm -f "$(node_dir "$n")/pid"
	echo "127.0.0.1:$(node_port "$n")"
	;;
restart-node)
	[ -s "$DIR/env" ] || die "no cluster running (start it first)"
	if [ -n "${2:-}" ]; then
		n=$(node_of "$2")
		if node_running "$n"; then
			kill "$(cat "$(node_dir "$n")/pid")"
			for _ in $(seq 50); do node_running "$n" || break; sleep 0.1; done
		fi
		start_node "$n"
	else
		for i in $(seq "$NODES"); do node_running "$i" || start_node "$i"; done
	fi
	wait_healthy 30 || die "redis cluster not healthy after 30 s (see $DIR/node-*/redis.log)"
	cat "$DIR/env"
	;;
stop)
	for i in $(seq "$NODES"); do
		if node_running "$i"; then kill "$(cat "$(node_dir "$i")/pid")" || true; fi
	done
	for i in $(seq "$NODES"); do
		for _ in $(seq 50); do node_running "$i" || break; sleep 0.1; done
		rm -f "$(node_dir "$i")/pid"
	done
	rm -f "$DIR/env"
	;;
*) echo "usage: $0 start|stop|env|kill-master [ADDR]|restart-node [ADDR]" >&2; exit 2 ;;
esac
