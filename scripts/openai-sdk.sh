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
installed() { npm_installed "$DIR" openai; }

case "${1:-}" in
install)
	installed || npm_ci "$DIR"
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
