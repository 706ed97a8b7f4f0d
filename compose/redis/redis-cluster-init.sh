#!/bin/sh
# Creates edgeguard's Redis Cluster (3 masters, 3 replicas) from six nodes
# started by redis-node.sh, once: compose's one-shot service redis-init,
# Kubernetes' Job redis-cluster-init (k8s/platform/redis.yaml carries this
# file, byte for byte, in the ConfigMap redis-cluster). Idempotent: run it
# again and it only waits for the existing cluster to be healthy.
#
#   REDIS_NODES         required: the six nodes' names, space-separated (the
#                       names they announce; compose: redis-1 … redis-6)
#   REDIS_SECRETS_DIR   redis_password (default /run/secrets)
#   REDIS_INIT_TIMEOUT  seconds to wait for the nodes, then for the cluster
#                       (default 180)
#
# Steps: wait until every node resolves and answers PING; if every node is
# blank (no slot assigned, knows only itself), `redis-cli --cluster create`
# with their current addresses and --cluster-replicas 1 (redis-cli puts each
# replica on another address than its master); if the cluster exists, create
# nothing. Then wait until every node reports cluster_state:ok, all 16384
# slots, six known nodes. Exit 0 when healthy; 1 (with what is wrong) when
# not within the timeout or when the nodes are half in a cluster: a node
# that lost its nodes.conf is re-added by hand (README: `redis-cli --cluster
# add-node … --cluster-slave`, then CLUSTER FORGET its old id).
set -eu

: "${REDIS_NODES:?REDIS_NODES: the nodes names, space-separated}"
secrets=${REDIS_SECRETS_DIR:-/run/secrets}
timeout=${REDIS_INIT_TIMEOUT:-180}
REDISCLI_AUTH=$(cat "$secrets/redis_password")
export REDISCLI_AUTH # redis-cli's password, never on its command line

say() { echo "redis-cluster-init: $*" >&2; }
resolve() { getent hosts "$1" | awk '{ print $1; exit }'; }
cli() { h=$1; shift; redis-cli --no-auth-warning -h "$h" -p 6379 "$@"; }
field() { cli "$1" cluster info | tr -d '\r' | sed -n "s/^$2://p"; }

deadline=$(($(date +%s) + timeout))
wait_until() { # wait_until WHAT CMD...: retry CMD until it succeeds or the time is up
	what=$1; shift
	until "$@"; do
		[ "$(date +%s)" -lt "$deadline" ] || { say "timed out waiting for $what"; return 1; }
		sleep 2
	done
}

all_up() {
	for n in $REDIS_NODES; do
		[ -n "$(resolve "$n")" ] && [ "$(cli "$n" ping 2>/dev/null)" = PONG ] || return 1
	done
}
all_blank() {
	for n in $REDIS_NODES; do
		[ "$(field "$n" cluster_slots_assigned)" = 0 ] && [ "$(field "$n" cluster_known_nodes)" = 1 ] || return 1
	done
}
all_ok() {
	count=$(echo $REDIS_NODES | wc -w)
	for n in $REDIS_NODES; do
		[ "$(field "$n" cluster_state)" = ok ] && [ "$(field "$n" cluster_slots_ok)" = 16384 ] &&
			[ "$(field "$n" cluster_known_nodes)" = "$count" ] || return 1
	done
}

wait_until "every node to answer PING ($REDIS_NODES)" all_up
if all_blank; then
	addrs=""
	for n in $REDIS_NODES; do addrs="$addrs $(resolve "$n"):6379"; done
	say "creating the cluster:$addrs"
	# shellcheck disable=SC2086
	redis-cli --no-auth-warning --cluster create $addrs --cluster-replicas 1 --cluster-yes
else
	say "the nodes are in a cluster already: nothing to create"
fi
if ! wait_until "cluster_state:ok on every node" all_ok; then
	for n in $REDIS_NODES; do
		say "$n: $(cli "$n" cluster info 2>&1 | tr -d '\r' | grep -E '^cluster_(state|slots_assigned|slots_ok|known_nodes):' | tr '\n' ' ')"
	done
	exit 1
fi
say "healthy: cluster_state:ok on every node"
