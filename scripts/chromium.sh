#!/usr/bin/env bash
# scripts/chromium.sh install|env — the headless browser of edgectl's
# device-flow end-to-end test (cli/e2e) and of the administrators' security-key
# test (tests/e2e, a virtual WebAuthn authenticator): Debian's `chromium` (/usr/bin/chromium)
# and npm's `playwright-core`, pinned in cli/e2e/browser/package-lock.json and
# installed with `npm ci` into cli/e2e/browser/node_modules (git-ignored).
# Nothing downloads a browser build of its own.
#
#   install  install what is missing (idempotent), check that Chromium starts
#            headless, and print the env lines
#   env      print the env lines (exit 1 when something is missing)
#
# The env lines (KEY=value, for `eval "export $(…)"`):
#   EDGEGUARD_CHROMIUM     the Chromium binary
#   EDGEGUARD_BROWSER_DIR  the folder with device.mjs, webauthn.mjs and node_modules
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CHROMIUM=/usr/bin/chromium
DIR="$ROOT/cli/e2e/browser"
PW_VERSION=$(npm_locked_version "$DIR" playwright-core)

installed_pw() { npm_installed "$DIR" playwright-core; }

print_env() {
	echo "EDGEGUARD_CHROMIUM=$CHROMIUM"
	echo "EDGEGUARD_BROWSER_DIR=$DIR"
}

case "${1:-}" in
install)
	[ -x "$CHROMIUM" ] || apt_install chromium
	[ -x "$CHROMIUM" ] || die "apt-get install chromium succeeded but $CHROMIUM is missing"
	installed_pw || npm_ci "$DIR"
	# Chromium must start headless here (a missing library fails at once).
	errf="$TMPROOT/chromium-version.err"
	if ! ver=$(timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking \
		--disable-component-update --disable-sync --version 2>"$errf"); then
		cat "$errf" >&2
		die "'$CHROMIUM --headless --version' failed (output above)"
	fi
	log "$ver, playwright-core $PW_VERSION"
	print_env
	;;
env)
	[ -x "$CHROMIUM" ] && installed_pw || exit 1
	print_env
	;;
*)
	echo "usage: $0 install|env" >&2
	exit 2
	;;
esac
