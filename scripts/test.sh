#!/usr/bin/env bash
# Runs every test: unit tests, the storage conformance suites on loop-mounted
# btrfs and XFS and a zfs-fuse pool, the runtime suite, and the end-to-end
# tests of the velo binary, after checking go.mod is tidy, go vet and
# staticcheck. Needs root for mounts and for running Postgres as the
# postgres user. Set VELO_TEST_REQUIRE=all to turn skips into failures.
set -euo pipefail
cd "$(dirname "$0")/.."
export VELO_PG_BIN="${VELO_PG_BIN:-/opt/velo/pg17/bin}"
# go.mod must say what the code imports (direct, indirect): go mod tidy.
go mod tidy -diff || { echo "test.sh: go.mod or go.sum is not tidy; run go mod tidy" >&2; exit 1; }
go vet ./...
# staticcheck is part of the tests (scripts/install-deps.sh installs it).
staticcheck="$(command -v staticcheck || echo "$(go env GOPATH)/bin/staticcheck")"
if [ ! -x "$staticcheck" ]; then
	echo "test.sh: staticcheck is not installed; run scripts/install-deps.sh" >&2
	exit 1
fi
"$staticcheck" ./...
exec go test -count=1 -timeout 45m "$@" ./...
