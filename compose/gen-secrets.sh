#!/usr/bin/env bash
# compose/gen-secrets.sh [DIR] — generate the secret files docker-compose.yml
# mounts, into compose/.secrets/ (git-ignored) by default, and DIR/kong.yml:
# kong/kong.yml with the generated services CA (Kong's declarative config in
# compose). Existing files are kept, so a second run rotates no secret;
# delete a file (or the edge key pair together) to regenerate it. The mTLS
# certificates are the exception: one within two days of its end is renewed
# (then recreate the containers). Needs Go (the repository's toolchain): the
# generator is tests/deploy/cmd/gen-secrets (package secretgen).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-$here/.secrets}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
cd "$here/../tests/deploy"
go run ./cmd/gen-secrets -kong-yml "$here/../kong/kong.yml" "$dir"
