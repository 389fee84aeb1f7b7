#!/usr/bin/env bash
# Velo against what users do without it, side by side, on this machine:
# builds velo and velo-bench, then runs velo-bench (as root: it makes
# loop-mounted pools and a zfs-fuse pool). Flags go to velo-bench, e.g.
#   scripts/bench.sh --sizes 100MB,1GB,3GB --reps 5 --out docs/bench
# The whole default run (three sizes, four drivers) takes about an hour.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/velo" ./cmd/velo
go build -o "$bin/velo-bench" ./cmd/velo-bench
"$bin/velo-bench" --velo "$bin/velo" "$@"
