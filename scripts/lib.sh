# shellcheck shell=bash
# Shared helpers for the scripts that install and start real components.
# Data lives under .tmp/ (git-ignored); every server binds to loopback only.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TMPROOT="${EDGEGUARD_TMP:-$ROOT/.tmp}"
mkdir -p "$TMPROOT"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# free_port prints a TCP port that nothing listens on right now (the kernel
# picks it, so it never clashes with what is already running).
free_port() {
	python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# free_ports N prints N distinct free TCP ports, one a line (all bound at
# once, so no two are the same; one python3 start instead of N).
free_ports() {
	python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

# apt_install PKG... installs Debian packages that are missing (root or sudo).
apt_install() {
	local missing=()
	for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing ${missing[*]} from Debian"
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq >/dev/null || die "apt-get update failed"
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

# wait_tcp HOST PORT SECONDS waits until something accepts connections.
wait_tcp() {
	local host=$1 port=$2 secs=$3 i
	for ((i = 0; i < secs * 10; i++)); do
		(exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# npm_locked_version DIR PKG prints PKG's version pinned in DIR/package-lock.json.
npm_locked_version() {
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packages"]["node_modules/"+sys.argv[2]]["version"])' "$1/package-lock.json" "$2"
}

# npm_installed DIR PKG succeeds when DIR/node_modules holds PKG at its locked version.
npm_installed() {
	[ -f "$1/node_modules/$2/package.json" ] &&
		[ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$1/node_modules/$2/package.json")" = "$(npm_locked_version "$1" "$2")" ]
}

# npm_ci DIR installs DIR's locked packages (npm ci, no install scripts) into
# DIR/node_modules, with Node.js and npm from Debian when missing.
npm_ci() {
	local dir=$1 out
	out="$TMPROOT/npm-ci-$(basename "$dir").log"
	command -v node >/dev/null || apt_install nodejs
	command -v npm >/dev/null || apt_install npm
	log "npm ci in ${dir#"$ROOT"/}"
	if ! (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts) >"$out" 2>&1; then
		cat "$out" >&2
		die "'npm ci --no-audit --no-fund --ignore-scripts' in ${dir#"$ROOT"/} failed (output above)"
	fi
}
