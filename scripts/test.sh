#!/usr/bin/env bash
# Runs every test: unit tests, the storage conformance suites on loop-mounted
# btrfs and XFS and a zfs-fuse pool, the runtime suite, and the end-to-end
# tests of the velo binary. Needs root for mounts and for running Postgres
# as the postgres user. Set VELO_TEST_REQUIRE=all to turn skips into failures.
set -euo pipefail
cd "$(dirname "$0")/.."
export VELO_PG_BIN="${VELO_PG_BIN:-/opt/velo/pg17/bin}"
go vet ./...
exec go test -count=1 -timeout 45m "$@" ./...
