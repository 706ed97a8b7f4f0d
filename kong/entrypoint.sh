#!/bin/bash
# Entrypoint of kong/Dockerfile, before the image's own /docker-entrypoint.sh.
# kong.yml takes the edge's client certificate and key for the mTLS hop to
# the services from Kong's env vault ({vault://env/edgeguard-edge-client-key}
# is the variable EDGEGUARD_EDGE_CLIENT_KEY), while compose and Kubernetes
# mount them as files. For every variable EDGEGUARD_<NAME>_FILE this exports
# EDGEGUARD_<NAME> with the file's content (trailing newline removed) and
# unsets the _FILE variable, then runs the image's entrypoint with the
# arguments. Values never reach a command line (ps shows those); Kong's env
# vault reads the environment once, at start: a new key needs a restart
# (kong/README.md "mTLS to the services"). scripts/kong.sh does the same for
# local runs.
set -euo pipefail
for var in $(compgen -e); do
	case "$var" in
	EDGEGUARD_*_FILE) ;;
	*) continue ;;
	esac
	name="${var%_FILE}"
	file="${!var}"
	if [ -n "${!name:-}" ]; then
		echo "edgeguard-kong-entrypoint: both $name and $var are set" >&2
		exit 1
	fi
	if [ ! -r "$file" ]; then
		echo "edgeguard-kong-entrypoint: $var: cannot read $file" >&2
		exit 1
	fi
	value="$(<"$file")"
	export "$name=$value"
	unset "$var"
done
exec /docker-entrypoint.sh "$@"
