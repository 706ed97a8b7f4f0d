#!/usr/bin/env bash
# scripts/promtool.sh install|env — Prometheus's `promtool`, which checks the
# alert rules of deploy/monitoring (plugins/internal/pluginmetrics tests).
# It comes from Debian's `prometheus` package, unpacked under .tmp/promtool
# with `apt-get download` + `dpkg-deb -x`: installing the package would also
# start a Prometheus server (Debian's service), which the tests do not want.
# Only promtool (a static binary) is used.
#
#   install  fetch and unpack what is missing (idempotent), check that it runs,
#            and print the env line
#   env      print the env line (exit 1 when promtool is missing)
#
# The env line (KEY=value, for `eval "export $(…)"`):
#   EDGEGUARD_PROMTOOL     the promtool binary
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DIR="$TMPROOT/promtool"
BIN="$DIR/bin/promtool"

case "${1:-}" in
install)
	if [ ! -x "$BIN" ]; then
		command -v dpkg-deb >/dev/null || die "dpkg-deb is missing (Debian's dpkg)"
		mkdir -p "$DIR"
		rm -f "$DIR"/prometheus_*.deb
		if ! (cd "$DIR" && apt-get download prometheus >/dev/null 2>&1); then
			# no package lists yet: refresh them (root or sudo), then retry
			sudo=""
			[ "$(id -u)" -eq 0 ] || sudo="sudo"
			$sudo apt-get update -qq >/dev/null || die "apt-get update failed"
			(cd "$DIR" && apt-get download prometheus >/dev/null) || die "apt-get download prometheus failed"
		fi
		deb=$(ls "$DIR"/prometheus_*.deb | head -n 1)
		rm -rf "$DIR/root"
		dpkg-deb -x "$deb" "$DIR/root" || die "dpkg-deb -x $deb failed"
		mkdir -p "$DIR/bin"
		mv "$DIR/root/usr/bin/promtool" "$BIN" || die "$deb has no usr/bin/promtool"
		rm -rf "$DIR/root" "$deb" # the server and its web assets are not used
	fi
	"$BIN" --version >/dev/null 2>&1 || die "$BIN does not run"
	echo "EDGEGUARD_PROMTOOL=$BIN"
	;;
env)
	[ -x "$BIN" ] || exit 1
	echo "EDGEGUARD_PROMTOOL=$BIN"
	;;
*) echo "usage: $0 install|env" >&2; exit 2 ;;
esac
