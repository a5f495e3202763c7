#!/usr/bin/env bash
# `make test` with two CPU hogs beside it (stress-ng --cpu 2), as on a
# small CI machine that is busy with other work: RUNS times in a row
# (default 1); stops at the first failure. Prints each run's time.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-1}"
command -v stress-ng >/dev/null || { echo "test-stress: stress-ng is missing: run \`sudo make deps\`" >&2; exit 1; }
hog=""
trap '[ -n "$hog" ] && kill "$hog" 2>/dev/null; wait 2>/dev/null || true' EXIT
for i in $(seq 1 "$runs"); do
	stress-ng --cpu 2 --timeout 0 --quiet &
	hog=$!
	start=$SECONDS
	make test
	kill "$hog"
	wait "$hog" 2>/dev/null || true
	hog=""
	echo "test-stress: run $i of $runs passed in $((SECONDS - start)) s (with stress-ng --cpu 2)"
done
