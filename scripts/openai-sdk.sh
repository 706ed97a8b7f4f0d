#!/usr/bin/env bash
# scripts/openai-sdk.sh install|env — the official openai SDK (npm `openai`,
# pinned in tests/e2e/openai/package-lock.json) for the gateway suite of
# tests/e2e, installed with `npm ci` into tests/e2e/openai/node_modules
# (git-ignored). Node.js and npm come from Debian when missing.
#
# The env line (for `eval "export $(…)"`):
#   EDGEGUARD_OPENAI_DIR  the folder with client.mjs and node_modules
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DIR="$ROOT/tests/e2e/openai"
VERSION=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packages"]["node_modules/openai"]["version"])' "$DIR/package-lock.json")

installed() {
	[ -f "$DIR/node_modules/openai/package.json" ] &&
		[ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$DIR/node_modules/openai/package.json")" = "$VERSION" ]
}

case "${1:-}" in
install)
	command -v node >/dev/null || apt_install nodejs
	command -v npm >/dev/null || apt_install npm
	if ! installed; then
		log "npm ci in tests/e2e/openai (openai $VERSION)"
		out="$TMPROOT/npm-ci-openai.log"
		if ! (cd "$DIR" && npm ci --no-audit --no-fund --ignore-scripts) >"$out" 2>&1; then
			cat "$out" >&2
			die "'npm ci --no-audit --no-fund --ignore-scripts' in tests/e2e/openai failed (output above)"
		fi
	fi
	echo "EDGEGUARD_OPENAI_DIR=$DIR"
	;;
env)
	installed || exit 1
	echo "EDGEGUARD_OPENAI_DIR=$DIR"
	;;
*)
	echo "usage: $0 install|env" >&2
	exit 2
	;;
esac
