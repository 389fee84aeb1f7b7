#!/usr/bin/env bash
# Builds the Debian package velo_VERSION_amd64.deb into OUTDIR (default
# dist/) with nfpm (github.com/goreleaser/nfpm/v2, from the Go module proxy,
# run with go run at a pinned version): the binary, a man page per command,
# the bash, zsh and fish completions and the systemd unit velo@.service.
#   scripts/package.sh [OUTDIR]        VERSION=1.2.3 scripts/package.sh
# VERSION defaults to the newest v* tag (without its v) or 0.0.0, followed
# by ~git.DATE.COMMIT when the commit is not that tag.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
nfpm_version=v2.48.0
out=${1:-dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)

git=(git -c "safe.directory=$PWD")
commit=$("${git[@]}" rev-parse HEAD 2>/dev/null || true)
if [ -z "${VERSION:-}" ]; then
	tag=$("${git[@]}" describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null || true)
	VERSION=${tag#v}
	VERSION=${VERSION:-0.0.0}
	if [ -z "$tag" ] || [ "$("${git[@]}" rev-list -n1 "$tag")" != "$commit" ]; then
		VERSION="$VERSION~git.$("${git[@]}" log -1 --format=%cd --date=format:%Y%m%d).${commit:0:12}"
	fi
fi
[[ $VERSION =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || { echo "package.sh: VERSION '$VERSION' is not a Debian version (it must start with a digit)" >&2; exit 2; }
# Reproducible: the man pages' date and the files' times are the commit's.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$("${git[@]}" log -1 --format=%ct 2>/dev/null || date +%s)}

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
echo "==> building velo $VERSION"
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 VERSION=$VERSION scripts/build.sh "$build/velo"
"$build/velo" man "$build/man" >/dev/null
gzip -9n "$build"/man/*.1
mkdir -p "$build/completions"
"$build/velo" completion bash >"$build/completions/velo"
"$build/velo" completion zsh >"$build/completions/_velo"
"$build/velo" completion fish >"$build/completions/velo.fish"

cat >"$build/nfpm.yaml" <<YAML
name: velo
arch: amd64
platform: linux
version: "$VERSION"
version_schema: none
section: database
priority: optional
maintainer: Velo <velo@velohq.dev>
description: |
  Postgres with instant branching, on one Linux host.
  Every branch is a full, writable copy of its parent's data, made by a
  copy-on-write clone (ZFS, btrfs, XFS reflink), running as its own server.
homepage: https://github.com/velohq/velo
license: Apache-2.0
depends:
  - postgresql | postgresql-15 | postgresql-16 | postgresql-17
recommends:
  - postgresql-client
  - btrfs-progs
  - xfsprogs
  - zfsutils-linux | zfs-fuse
contents:
  - src: $build/velo
    dst: /usr/bin/velo
    file_info: {mode: 0755}
  - src: $build/man/*.1.gz
    dst: /usr/share/man/man1/
  - src: $build/completions/velo
    dst: /usr/share/bash-completion/completions/velo
  - src: $build/completions/_velo
    dst: /usr/share/zsh/vendor-completions/_velo
  - src: $build/completions/velo.fish
    dst: /usr/share/fish/vendor_completions.d/velo.fish
  - src: packaging/velo@.service
    dst: /lib/systemd/system/velo@.service
  - src: README.md
    dst: /usr/share/doc/velo/README.md
YAML
echo "==> packaging with nfpm $nfpm_version"
go run "github.com/goreleaser/nfpm/v2/cmd/nfpm@$nfpm_version" package --config "$build/nfpm.yaml" --packager deb --target "$out/velo_${VERSION}_amd64.deb"
echo "$out/velo_${VERSION}_amd64.deb"
