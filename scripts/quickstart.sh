#!/usr/bin/env bash
# Quick start on a fresh Debian or Ubuntu machine: installs what is missing,
# makes a storage pool when there is none, builds velo into /usr/local/bin
# and runs the demo. Run as root (or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

if [ "$(id -u)" -eq 0 ]; then
	scripts/install-deps.sh
fi
echo "==> building velo"
go build -o bin/velo ./cmd/velo
if [ "$(id -u)" -eq 0 ]; then
	install -m 0755 bin/velo /usr/local/bin/velo
	VELO=/usr/local/bin/velo
else
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
