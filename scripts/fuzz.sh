#!/usr/bin/env bash
# scripts/fuzz.sh [FUZZTIME] — runs every Fuzz* target of every module for
# FUZZTIME (default 20s) each. New failing inputs land in the package's
# testdata/fuzz/ and must be committed with the fix.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
t=${1:-20s}
for m in $("$ROOT/scripts/modules.sh"); do
	(
		cd "$m"
		for pkg in $(go list ./...); do
			dir=$(go list -f '{{.Dir}}' "$pkg")
			for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
				log "fuzz $pkg $f for $t"
				go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg"
			done
		done
	)
done
