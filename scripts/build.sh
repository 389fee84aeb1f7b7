#!/usr/bin/env bash
# Builds velo into OUT (default bin/velo) with what velo --version shows:
# VERSION (default dev), the commit and whether the tree had changes. They
# are read from git here and given with -ldflags rather than left to go
# build's VCS stamping, which fails under sudo in a checkout another user
# owns (git's "dubious ownership") and is absent in a git worktree.
#   scripts/build.sh [OUT]      VERSION=1.2.3 scripts/build.sh
# Extra go build environment (CGO_ENABLED, GOARCH) passes through.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
out=${1:-bin/velo}
git=(git -c "safe.directory=$PWD")
commit=$("${git[@]}" rev-parse HEAD 2>/dev/null || true)
modified=false
if [ -n "$commit" ] && [ -n "$("${git[@]}" status --porcelain 2>/dev/null)" ]; then
	modified=true
fi
pkg=github.com/velohq/velo/internal/cli
go build -trimpath -buildvcs=false \
	-ldflags "-X $pkg.Version=${VERSION:-dev} -X $pkg.Commit=$commit -X $pkg.Modified=$modified" \
	-o "$out" ./cmd/velo
