#!/usr/bin/env bash
# scripts/load-mtls.sh [flags] — the cost of mTLS on the hop Kong → service
# through the real Kong, plain HTTP and mTLS measured in the same run
# (`scripts/load.sh mtls`, `make load-mtls`; BENCHMARKS.md "mTLS on the Kong →
# service hop").
#
# Starts on free loopback ports, everything under .tmp/load/mtls/:
#   - bin/gen-secrets' development CA, the edge's client certificate and
#     llm-api's server certificate (as `make dev`);
#   - bench/cmd/mtlsupstream: one Go process answering the same small JSON on
#     a plain HTTP listener, on the services' mTLS listener (pkg/mtls) and on
#     a TLS listener without client certificates (the breakdown);
#   - Kong 3.9.3 (scripts/kong.sh) with ONE worker and the access log off, on
#     kong/kong.conf and a kong.yml of services without plugins: /plain →
#     http; /tls → https, the service's certificate verified, no client
#     certificate; /mtls → kong.yml's shape (the upstream llm-api with
#     host_header, the edge's client certificate from the env vault,
#     tls_verify against the CA); /mtls-inline-key → the same with the
#     certificate and key inline (bench only);
#   - a second Kong (one worker) whose client certificate comes from
#     kong.conf's client_ssl files instead: /mtls-client-ssl.
# Then, after checking that every target answers 200, wrk -tT -cC in ROUNDS
# interleaved rounds (the order rotates), a warm-up before every
# measurement; the report gives each target's req/s, p50, p99 and the median
# of its per-round ratios to plain.
# Kong keeps upstream connections alive (upstream_keepalive_max_requests
# 10000 by default): the handshake is paid once per connection, as in
# production. Stops everything it started. Report: .tmp/load/mtls/report.md.
#
# Flags: --rounds N (3) --duration D (10s) --warmup D (3s) --connections N (32)
#        --threads N (2)
# Env:   KONG_INSTALL_DIR / KONG_BIN … as scripts/kong.sh (a built Kong is reused).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

ROUNDS=3 DURATION=10s WARMUP=3s CONNECTIONS=32 THREADS=2
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=$2 ;;
	--duration) DURATION=$2 ;;
	--warmup) WARMUP=$2 ;;
	--connections) CONNECTIONS=$2 ;;
	--threads) THREADS=$2 ;;
	*) die "unknown flag $1 (see the header of $0)" ;;
	esac
	shift 2
done

DIR="$TMPROOT/load/mtls"
rm -rf "$DIR"
mkdir -p "$DIR/bin" "$DIR/results"
chmod 0755 "$DIR"
up_pid="" kong_started=""
cleanup() {
	if [ -n "$kong_started" ]; then
		"$ROOT/scripts/kong.sh" stop --dir "$DIR/kong" >/dev/null 2>&1 || true
		"$ROOT/scripts/kong.sh" stop --dir "$DIR/kong2" >/dev/null 2>&1 || true
	fi
	if [ -n "$up_pid" ]; then
		kill "$up_pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$up_pid" 2>/dev/null || break; sleep 0.1; done
	fi
}
trap cleanup EXIT

command -v wrk >/dev/null || apt_install wrk
for b in header-guard keycloak-jwt keycloak-apikey redis-ratelimit edgeguard client-ip gen-secrets; do
	[ -x "bin/$b" ] || die "bin/$b is missing: run make build"
done
log "building the upstream"
(cd bench && go build -trimpath -o "$DIR/bin/mtlsupstream" ./cmd/mtlsupstream)
S="$DIR/secrets"
bin/gen-secrets "$S" 2>/dev/null

"$DIR/bin/mtlsupstream" -cert "$S/llm_api_tls.crt" -key "$S/llm_api_tls.key" -client-ca "$S/mtls_ca.crt" \
	>"$DIR/upstream.env" 2>"$DIR/upstream.log" &
up_pid=$!
for _ in $(seq 50); do grep -q TLS_ADDR "$DIR/upstream.env" 2>/dev/null && break; sleep 0.1; done
# shellcheck disable=SC1091
. "$DIR/upstream.env"
[ -n "${TLS_ADDR:-}" ] || die "the upstream did not start (log $DIR/upstream.log)"

python3 - "$DIR" "$PLAIN_ADDR" "$TLS_ADDR" "$TLS_SERVER_ONLY_ADDR" "$S" <<'PY'
import sys
out, plain, tls, one, sec = sys.argv[1:]
ind = lambda text, n: ("\n" + " " * n).join(text.strip().split("\n"))
ca = ind(open(sec + "/mtls_ca.crt").read(), 4)
cert_inline = ind(open(sec + "/edge_client.crt").read(), 4)
key_inline = ind(open(sec + "/edge_client.key").read(), 4)
CERT, CERT_INLINE, CA = "b1dcda4c-f24b-4228-8171-824b1b91a2c2", "b1dcda4c-f24b-4228-8171-824b1b91a2c3", "73ba1bf4-0460-42b8-ac38-f6c5436dc7a8"
common = f'''_format_version: "3.0"
ca_certificates:
- id: {CA}
  cert: |
    {ca}
upstreams:
- {{name: llm-api, host_header: llm-api, targets: [{{target: "{tls}"}}]}}
- {{name: tls-only, host_header: llm-api, targets: [{{target: "{one}"}}]}}
'''
route = lambda n: f"  routes: [{{name: {n}, paths: [/{n}], strip_path: false}}]\n"
# the main Kong: kong.yml's shape (key and certificate from the env vault),
# and for the breakdown TLS without a client certificate and a key inline
# (bench only: an inline key is what kong.yml must never hold)
open(out + "/kong.yml", "w").write(common + f'''certificates:
- id: {CERT}
  cert: "{{vault://env/edgeguard-edge-client-cert}}"
  key: "{{vault://env/edgeguard-edge-client-key}}"
- id: {CERT_INLINE}
  cert: |
    {cert_inline}
  key: |
    {key_inline}
services:
- name: plain
  url: http://{plain}
''' + route("plain") + f'''- name: tls
  protocol: https
  host: tls-only
  tls_verify: true
  ca_certificates: [{CA}]
''' + route("tls") + f'''- name: mtls
  protocol: https
  host: llm-api
  client_certificate: {CERT}
  tls_verify: true
  ca_certificates: [{CA}]
''' + route("mtls") + f'''- name: mtls-inline-key
  protocol: https
  host: llm-api
  client_certificate: {CERT_INLINE}
  tls_verify: true
  ca_certificates: [{CA}]
''' + route("mtls-inline-key"))
# the second Kong: the client certificate from kong.conf's client_ssl files
# (nginx's proxy_ssl_certificate for every upstream), no certificates entity
open(out + "/kong-client-ssl.yml", "w").write(common + f'''services:
- name: mtls-client-ssl
  protocol: https
  host: llm-api
  tls_verify: true
  ca_certificates: [{CA}]
''' + route("mtls-client-ssl"))
PY
chmod 0644 "$DIR/kong.yml" "$DIR/kong-client-ssl.yml"
install -m 0644 "$S/edge_client.crt" "$DIR/client-ssl.crt"
install -m 0644 "$S/edge_client.key" "$DIR/client-ssl.key"

log "starting Kong twice (one worker each, access log off)"
kong_started=1
KONG_NGINX_WORKER_PROCESSES=1 KONG_PROXY_ACCESS_LOG=off \
	EDGEGUARD_EDGE_CLIENT_CERT_FILE="$S/edge_client.crt" EDGEGUARD_EDGE_CLIENT_KEY_FILE="$S/edge_client.key" \
	"$ROOT/scripts/kong.sh" start --dir "$DIR/kong" --config "$DIR/kong.yml" >"$DIR/kong.env"
KONG_NGINX_WORKER_PROCESSES=1 KONG_PROXY_ACCESS_LOG=off \
	KONG_CLIENT_SSL=on KONG_CLIENT_SSL_CERT="$DIR/client-ssl.crt" KONG_CLIENT_SSL_CERT_KEY="$DIR/client-ssl.key" \
	"$ROOT/scripts/kong.sh" start --dir "$DIR/kong2" --config "$DIR/kong-client-ssl.yml" >"$DIR/kong2.env"
PROXY2=$(sed -n 's/^KONG_PROXY_URL=//p' "$DIR/kong2.env")
# shellcheck disable=SC1091
. "$DIR/kong.env"
TARGETS=(plain tls mtls mtls-inline-key mtls-client-ssl)
url_of() { if [ "$1" = mtls-client-ssl ]; then echo "$PROXY2/$1"; else echo "$KONG_PROXY_URL/$1"; fi; }
for t in "${TARGETS[@]}"; do
	code=$(curl -s -o /dev/null -w '%{http_code}' "$(url_of "$t")")
	[ "$code" = 200 ] || die "/$t answered $code (Kong's error logs: $KONG_ERROR_LOG, $DIR/kong2)"
done

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
{
	echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, warm-up $WARMUP before each, $ROUNDS rounds, order rotating"
	echo "$(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2); $(go version | cut -d' ' -f3); $(nproc) CPUs; load average before: $(loadavg)"
} >"$DIR/results/env.txt"
n=${#TARGETS[@]}
for r in $(seq "$ROUNDS"); do
	for i in $(seq 0 $((n - 1))); do
		t=${TARGETS[$(((i + r - 1) % n))]}
		log "round $r: $t"
		wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$(url_of "$t")" >/dev/null
		wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$(url_of "$t")" >"$DIR/results/round$r-$t.txt"
	done
done
echo "load average after: $(loadavg)" >>"$DIR/results/env.txt"

python3 - "$DIR/results" "$ROUNDS" "$DIR/upstream.log" >"$DIR/report.md" <<'PY'
import re, statistics, sys
res, rounds, uplog = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def parse(path):
    t = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", t).group(1))
    def pct(p):
        m = re.search(r"^\s+%s%%\s+([0-9.]+)(us|ms|s)\s*$" % p, t, re.M)
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    errs = (int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return rps, pct(50), pct(99), errs
targets = [("plain", "Kong → service, plain HTTP (baseline)"),
           ("tls", "TLS, service certificate verified, no client certificate"),
           ("mtls", "**mTLS as shipped**: kong.yml certificates entity, cert and key from the env vault"),
           ("mtls-inline-key", "mTLS, the same entity with cert and key inline (bench only: never in kong.yml)"),
           ("mtls-client-ssl", "mTLS, kong.conf client_ssl files (nginx proxy_ssl_certificate; a second Kong)")]
data = {t: [parse(f"{res}/round{r}-{t}.txt") for r in range(1, rounds + 1)] for t, _ in targets}
print(open(f"{res}/env.txt").read().strip().replace("\n", "  \n"))
print()
print("| target | req/s (median) | min–max | ratio to plain (median of rounds) | p50 | p99 | errors |")
print("|---|---|---|---|---|---|---|")
for t, label in targets:
    rs = [d[0] for d in data[t]]
    ratios = [d[0] / p[0] for d, p in zip(data[t], data["plain"])]
    print(f"| {label} | {statistics.median(rs):.0f} | {min(rs):.0f}–{max(rs):.0f} | {statistics.median(ratios):.3f}× "
          f"({', '.join(f'{x:.2f}' for x in ratios)}) | {statistics.median(d[1] for d in data[t]):.2f} ms | "
          f"{statistics.median(d[2] for d in data[t]):.2f} ms | {sum(d[3] for d in data[t])} |")
PY
cat "$DIR/report.md"
