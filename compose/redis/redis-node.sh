#!/bin/sh
# One node of edgeguard's Redis Cluster (3 masters, 3 replicas): compose runs
# it as redis-1..redis-6 (docker-compose.yml), Kubernetes as the StatefulSet
# redis (k8s/platform/redis.yaml carries this file, byte for byte, in the
# ConfigMap redis-cluster). Runs in the redis:7.4 image (POSIX sh, getent).
#
#   REDIS_ANNOUNCE_HOSTNAME  required: the name every client and peer reaches
#                            this node by (compose: its service name;
#                            Kubernetes: <pod>.redis.<namespace>.svc.<domain>).
#                            Announced as cluster-announce-hostname with
#                            cluster-preferred-endpoint-type hostname: CLUSTER
#                            SLOTS and MOVED name nodes by these stable names,
#                            not by addresses that change on a restart.
#   REDIS_SECRETS_DIR        redis_users.acl (the password as its SHA-256
#                            only) and redis_password (default /run/secrets)
#   REDIS_DATA_DIR           the node's identity, nodes.conf, kept across
#                            restarts on a volume (default /data)
#   arguments                more redis-server options (e.g. --bind)
#
# Keys are not persisted (no RDB, no AOF: rate-limit buckets, DPoP jti,
# revocation notices and not yet consumed audit events are short-lived); the
# cluster's shape is (nodes.conf). A replica authenticates to its master as
# the ACL user default with the password, read from the secret file and
# given to redis-server on stdin: never on a command line.
#
# Addresses change when containers or pods are recreated; nodes.conf holds
# the old ones. Before starting, every node line of nodes.conf that carries a
# host name gets the address that name resolves to now (a peer not resolvable
# yet keeps its old address and, when it starts, finds this node by name in
# turn); this node's own line gets its own current address.
#
# Failover: a master that stops answering for cluster-node-timeout (5 s) is
# replaced by its replica (cluster-replica-validity-factor 0: whatever its
# replication lag, availability first: the data is short-lived);
# cluster-require-full-coverage no: the other masters keep serving meanwhile
# (scripts/redis-cluster.sh, the topology suite's cluster, uses 2 s).
set -eu
set -f # nodes.conf's migrating-slot fields look like [1234->-id]: no globbing

: "${REDIS_ANNOUNCE_HOSTNAME:?REDIS_ANNOUNCE_HOSTNAME: the name this node is reached by}"
secrets=${REDIS_SECRETS_DIR:-/run/secrets}
data=${REDIS_DATA_DIR:-/data}

resolve() { getent hosts "$1" | awk '{ print $1; exit }'; }

# repoint FILE: nodes.conf with every named node at its current address.
repoint() {
	conf=$1
	self=$(resolve "$(hostname)")
	: >"$conf.repoint"
	while IFS= read -r line; do
		set -- $line
		if [ $# -ge 3 ] && [ "$1" != vars ]; then
			addr=$2 flags=$3 host=""
			case $addr in *,*) host=${addr#*,} host=${host%%,*} ;; esac
			case ",$flags," in
			*,myself,*) ip=$self ;;
			*) ip=""; [ -z "$host" ] || ip=$(resolve "$host") ;;
			esac
			if [ -n "$ip" ]; then
				hostport=${addr%%@*}
				new="$ip:${hostport##*:}@${addr#*@}"
				[ "$new" = "$addr" ] || echo "redis-node: nodes.conf: ${host:-myself} now at $ip" >&2
				line="$1 $new ${line#"$1 $addr "}"
			fi
		fi
		printf '%s\n' "$line" >>"$conf.repoint"
	done <"$conf"
	mv "$conf.repoint" "$conf"
}

[ -s "$data/nodes.conf" ] && repoint "$data/nodes.conf"

exec redis-server - \
	--dir "$data" --aclfile "$secrets/redis_users.acl" --save "" --appendonly no \
	--cluster-enabled yes --cluster-config-file nodes.conf \
	--cluster-announce-hostname "$REDIS_ANNOUNCE_HOSTNAME" --cluster-preferred-endpoint-type hostname \
	--cluster-node-timeout 5000 --cluster-replica-validity-factor 0 --cluster-require-full-coverage no \
	--masteruser default "$@" <<CONF
masterauth $(cat "$secrets/redis_password")
CONF
