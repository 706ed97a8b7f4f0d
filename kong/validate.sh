#!/bin/sh
# kong/validate.sh KONG_CONF PREFIX — validate a Kong configuration (kong.conf
# and the declarative kong.yml it names) with Kong itself.
#
# `kong config parse` would be the tool, but in Kong 3.9.x it crashes whenever
# plugin servers are configured ("attempt to index upvalue 'kong'",
# kong/runloop/plugin_servers/init.lua captures `local kong = kong` before the
# CLI sets it; fixed in 3.10). So this does what `kong start` does: `kong
# check` on the settings, then a throw-away start, which loads every plugin
# schema (each pluginserver_*_query_cmd, i.e. our `-dump`) and refuses a
# kong.yml that fails Kong's or our schemas; then it stops Kong and empties
# PREFIX. No request is served and no upstream, Redis or Keycloak is needed:
# plugin configurations are provisioned on their first request.
#
# Used by kong/Dockerfile (build-time check of the image) and by tests/kong
# (which runs it against the real Kong here, with a good and a bad kong.yml).
set -eu
[ $# -eq 2 ] || { echo "usage: $0 KONG_CONF PREFIX" >&2; exit 2; }
conf=$1 prefix=$2
kong check "$conf"
if ! kong start -c "$conf"; then
	echo "validate: kong start refused $conf (above)" >&2
	kong stop -p "$prefix" >/dev/null 2>&1 || true
	exit 1
fi
kong health -p "$prefix"
kong stop -p "$prefix"
# Leave an empty prefix (the image's is a tmpfs / emptyDir at run time).
find "$prefix" -mindepth 1 -delete 2>/dev/null || true
echo "validate: Kong accepted $conf and its declarative config"
