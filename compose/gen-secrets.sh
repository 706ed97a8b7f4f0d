#!/usr/bin/env bash
# compose/gen-secrets.sh [DIR] — generate the secret files docker-compose.yml
# mounts, into compose/.secrets/ (git-ignored) by default. Existing files are
# kept, so a second run never rotates anything; delete a file (or the edge
# key pair together) to regenerate it. Needs Go (the repository's toolchain):
# the generator is tests/deploy/cmd/gen-secrets (package secretgen).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-$here/.secrets}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
cd "$here/../tests/deploy"
go run ./cmd/gen-secrets "$dir"
