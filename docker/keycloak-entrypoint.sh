#!/bin/bash
# Entrypoint of docker/Dockerfile.keycloak. Keycloak reads secrets only from
# its environment (KC_DB_PASSWORD, KC_BOOTSTRAP_ADMIN_PASSWORD, and the realm
# import's ${JAN_*_CLIENT_SECRET} placeholders) and has no *_FILE variables,
# while compose and Kubernetes mount secrets as files. For every variable
# NAME_FILE whose NAME starts with KC_ or JAN_, this exports NAME with the
# file's content (trailing newline removed) and unsets NAME_FILE, then runs
# kc.sh with the arguments. Values never reach the command line (ps shows it).
set -euo pipefail
for var in $(compgen -e); do
	case "$var" in
	KC_*_FILE | JAN_*_FILE) ;;
	*) continue ;;
	esac
	name="${var%_FILE}"
	file="${!var}"
	if [ -n "${!name:-}" ]; then
		echo "edgeguard-entrypoint: both $name and $var are set" >&2
		exit 1
	fi
	if [ ! -r "$file" ]; then
		echo "edgeguard-entrypoint: $var: cannot read $file" >&2
		exit 1
	fi
	value="$(<"$file")"
	export "$name=$value"
	unset "$var"
done
exec /opt/keycloak/bin/kc.sh "$@"
