#!/usr/bin/env bash
# Quick start on a fresh Debian or Ubuntu machine: installs what is missing,
# makes a storage pool when there is none, builds velo into /usr/local/bin
# and runs the demo. Run as root, with or without sudo; as another user it
# only builds velo into bin/ and runs the demo with what the host has.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

if [ "$(id -u)" -eq 0 ]; then
	# Root's own home, even where sudo keeps the caller's HOME: the Go
	# build cache and the demo's ~/.velo must not be root's files in the
	# user's home.
	HOME=$(getent passwd root | cut -d: -f6)
	export HOME
	scripts/install-deps.sh
fi
echo "==> building velo"
if [ "$(id -u)" -eq 0 ]; then
	# Built outside the checkout, which may be the sudo user's.
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	scripts/build.sh "$tmp/velo"
	install -m 0755 "$tmp/velo" /usr/local/bin/velo
	VELO=/usr/local/bin/velo
	mkdir -p /usr/share/bash-completion/completions /usr/local/share/man/man1
	"$VELO" completion bash >/usr/share/bash-completion/completions/velo
	"$VELO" man /usr/local/share/man/man1 >/dev/null
	echo "==> installed $VELO, its bash completion and man pages (man velo)"
else
	scripts/build.sh bin/velo
	VELO="$PWD/bin/velo"
fi

# A pool: the host's ZFS pool if it has exactly one, else a loop-mounted
# btrfs image under /var/lib/velo (as root), else $VELO_HOME/data.
POOL_ARGS=()
if [ "$(zpool list -H -o name 2>/dev/null | wc -l)" -eq 1 ]; then
	echo "==> using ZFS pool $(zpool list -H -o name)"
elif [ "$(id -u)" -eq 0 ]; then
	pool=/var/lib/velo/pool
	if ! mountpoint -q "$pool"; then
		echo "==> making a 20 GB btrfs pool at $pool (a sparse image file)"
		mkdir -p /var/lib/velo "$pool"
		[ -f /var/lib/velo/pool.img ] || { truncate -s 20G /var/lib/velo/pool.img; mkfs.btrfs -q /var/lib/velo/pool.img; }
		mount -o loop,user_subvol_rm_allowed /var/lib/velo/pool.img "$pool"
		chmod 0755 "$pool"
	fi
	POOL_ARGS=(--pool "$pool")
fi

VELO="$VELO" scripts/demo.sh "${POOL_ARGS[@]}"
