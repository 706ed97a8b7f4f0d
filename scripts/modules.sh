#!/usr/bin/env bash
# scripts/modules.sh — the Go modules of the workspace, one per line, as
# go.work lists them (the single source for make and the test, bench and
# fuzz scripts: a new module in go.work is tested without further edits).
set -euo pipefail
cd "$(dirname "$0")/.."
go work edit -json | python3 -c 'import json,sys; print("\n".join(u["DiskPath"].removeprefix("./") for u in json.load(sys.stdin)["Use"]))'
