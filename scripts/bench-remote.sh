#!/usr/bin/env bash
# Figures of a second host (docs/benchmarks.md, "A second host"):
#   1. velo snapshot push of host A's main (SCALE pgbench data);
#   2. velo project create --from-archive on host B against pg_basebackup
#      of host A's main by hand into a plain directory of host B's pool,
#      both over loopback (median of RUNS, alternated);
#   3. the time from a commit on host A to it being visible on a following
#      host B (--follow), with host A's velo serve uploading every second
#      and archive_timeout 1 s (SAMPLES commits, median and max).
# Run as root with btrfs-progs, versitygw (scripts/install-deps.sh) and
# Debian's postgresql-15 (host A's project is PostgreSQL 15, so that its
# pg_basebackup can copy it). It makes two loop-mounted btrfs pools (host
# A's, host B's), two VELO_HOMEs and a versitygw on 127.0.0.1, and removes
# them at the end.
#   usage: scripts/bench-remote.sh [SCALE] [RUNS] [SAMPLES]
# SCALE is pgbench's (68 ≈ 1 GB). Needs VELO (the velo binary, default: go build).
set -euo pipefail
SCALE=${1:-68}
RUNS=${2:-3}
SAMPLES=${3:-10}
PG=/usr/lib/postgresql/15/bin
GW=$(command -v versitygw || echo "$(go env GOPATH)/bin/versitygw")
WORK=$(mktemp -d /tmp/velo-bench-remote-XXXXXX)
chmod 711 "$WORK"
if [ -z "${VELO:-}" ]; then
	VELO=$WORK/velo
	go build -o "$VELO" ./cmd/velo
fi
A=$WORK/a B=$WORK/b
cleanup() {
	set +e
	[ -n "${SERVE:-}" ] && kill "$SERVE" 2>/dev/null && wait "$SERVE" 2>/dev/null
	for p in r live; do VELO_HOME=$B/home "$VELO" project delete $p --force >/dev/null 2>&1; done
	VELO_HOME=$A/home "$VELO" project delete demo --force >/dev/null 2>&1
	[ -n "${GWPID:-}" ] && kill "$GWPID" 2>/dev/null && wait "$GWPID" 2>/dev/null
	umount "$A/pool" "$B/pool" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

for h in "$A" "$B"; do
	mkdir -p "$h/pool" "$h/home" && chmod 711 "$h" "$h/home"
	truncate -s 12G "$h/pool.img"
	mkfs.btrfs -q -f "$h/pool.img"
	mount -o loop,user_subvol_rm_allowed "$h/pool.img" "$h/pool"
done

# The store, on loopback; its keys in the environment only.
export AWS_ACCESS_KEY_ID=bench$RANDOM AWS_SECRET_ACCESS_KEY=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
export AWS_REGION=us-east-1 AWS_CONFIG_FILE=$WORK/none AWS_SHARED_CREDENTIALS_FILE=$WORK/none AWS_EC2_METADATA_DISABLED=true
mkdir -p "$WORK/gw/bench" "$WORK/meta"
ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
	"$GW" --port 127.0.0.1:17070 posix --sidecar "$WORK/meta" "$WORK/gw" >"$WORK/gw.log" 2>&1 &
GWPID=$!
EP=http://127.0.0.1:17070
until curl -s -o /dev/null "$EP/"; do sleep 0.1; done

# Host A: a project archiving to the bucket, loaded with pgbench.
export VELO_HOME=$A/home
"$VELO" project create demo --pool "$A/pool" --pg-version 15 --archive s3://bench/demo --archive-endpoint $EP --archive-timeout 1s >/dev/null
PW=$("$VELO" branch password demo/main --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["password"])')
PORT=$("$VELO" branch get demo/main --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])')
export PGPASSWORD=$PW
echo "loading pgbench scale $SCALE..." >&2
"$PG/pgbench" -q -i -s "$SCALE" -h 127.0.0.1 -p "$PORT" -U postgres postgres 2>/dev/null
SIZE=$(psql -X -At -h 127.0.0.1 -p "$PORT" -U postgres -c "SELECT pg_size_pretty(sum(pg_database_size(oid))) FROM pg_database")
echo "host A: PostgreSQL $(psql -X -At -h 127.0.0.1 -p "$PORT" -U postgres -c 'SHOW server_version'), $SIZE; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# 1. snapshot push.
t0=$(now)
"$VELO" snapshot create demo/main --push >/dev/null 2>"$WORK/push.err" || { cat "$WORK/push.err"; exit 1; }
PUSH=$(echo "$(now) - $t0" | bc)
"$VELO" wal push demo >/dev/null
echo "snapshot create --push: $PUSH s ($(du -sh "$WORK/gw/bench/demo/snapshots" | cut -f1) in the bucket)"

# 2. --from-archive on host B against pg_basebackup by hand, alternated.
hand=() velo=()
for i in $(seq "$RUNS"); do
	sync
	mkdir -p "$B/pool/plain" && chown postgres "$B/pool/plain"
	t0=$(now)
	runuser -u postgres -- env PGPASSWORD="$PW" "$PG/pg_basebackup" -D "$B/pool/plain/data" \
		-d "host=127.0.0.1 port=$PORT user=postgres" --wal-method=stream --checkpoint=fast --no-password
	hand+=("$(echo "$(now) - $t0" | bc)")
	rm -rf "$B/pool/plain"
	sync
	t0=$(now)
	VELO_HOME=$B/home "$VELO" project create r --pool "$B/pool" --from-archive s3://bench/demo --archive-endpoint $EP >/dev/null 2>"$WORK/r.err" || { cat "$WORK/r.err"; exit 1; }
	velo+=("$(echo "$(now) - $t0" | bc)")
	VELO_HOME=$B/home "$VELO" project delete r --force >/dev/null
done
H=$(printf '%s\n' "${hand[@]}" | median)
V=$(printf '%s\n' "${velo[@]}" | median)
echo "restore: pg_basebackup by hand ${hand[*]} s (median $H); velo project create --from-archive ${velo[*]} s (median $V); ratio $(echo "scale=2; $V / $H" | bc); load $(cut -d' ' -f1-3 /proc/loadavg)"

# 3. Commit on A to visible on a following B.
VELO_HOME=$B/home "$VELO" project create live --pool "$B/pool" --from-archive s3://bench/demo --archive-endpoint $EP --follow >/dev/null
BPORT=$(VELO_HOME=$B/home "$VELO" branch get live/main --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])')
"$VELO" serve --listen 127.0.0.1:17071 --http 127.0.0.1:17072 --upload-interval 1s >"$WORK/serve.log" 2>&1 &
SERVE=$!
psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres -c "CREATE TABLE IF NOT EXISTS probe (n int)"
lags=()
for n in $(seq "$SAMPLES"); do
	t0=$(now)
	psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres -c "INSERT INTO probe VALUES ($n)"
	until [ "$(psql -X -At -h 127.0.0.1 -p "$BPORT" -U postgres -c "SELECT count(*) FROM probe WHERE n = $n" 2>/dev/null)" = 1 ]; do sleep 0.2; done
	lags+=("$(echo "$(now) - $t0" | bc)")
done
echo "commit on A visible on B (--follow, archive_timeout 1 s, uploads every 1 s): ${lags[*]} s; median $(printf '%s\n' "${lags[@]}" | median), max $(printf '%s\n' "${lags[@]}" | sort -g | tail -1); load $(cut -d' ' -f1-3 /proc/loadavg)"

# 4. Uploads under pgbench: host A writes for 30 s while velo serve uploads
# every second; the archive's lag (the oldest file not uploaded) sampled
# every 2 s, then the time until nothing waits.
archive() { "$VELO" status --json | python3 -c 'import json,sys
a=[p for p in json.load(sys.stdin)["projects"] if p["name"]=="demo"][0]["archive"]
print(a["in_bucket_bytes"], a["local_only"], a["lag_seconds"])'; }
lsn() { psql -X -At -h 127.0.0.1 -p "$PORT" -U postgres -c "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"; }
read -r b0 _ _ < <(archive)
l0=$(lsn)
t0=$(now)
"$PG/pgbench" -n -c 4 -j 2 -T 30 -h 127.0.0.1 -p "$PORT" -U postgres postgres >"$WORK/pgbench.log" 2>&1 &
PB=$!
ulags=()
while kill -0 "$PB" 2>/dev/null; do
	read -r _ _ lag < <(archive)
	ulags+=("$lag")
	sleep 2
done
wait "$PB"
t1=$(now)
l1=$(lsn)
psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres -c "SELECT pg_switch_wal()" >/dev/null
until read -r b1 waiting _ < <(archive) && [ "$waiting" = 0 ] && [ "$b1" -gt "$b0" ]; do sleep 0.5; done
t2=$(now)
tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/pgbench.log" | head -1)
echo "uploads under pgbench (-c 4 -j 2 -T 30, $tps TPS): WAL written $(( (l1 - l0) >> 20 )) MB ($(echo "scale=1; ($l1 - $l0) / 1048576 / ($t1 - $t0)" | bc) MB/s); uploaded $(( (b1 - b0) >> 20 )) MB, all in the bucket $(echo "scale=1; $t2 - $t1" | bc) s after pgbench ended ($(echo "scale=1; ($b1 - $b0) / 1048576 / ($t2 - $t0)" | bc) MB/s overall); lag sampled every 2 s: median $(printf '%s\n' "${ulags[@]}" | median) s, max $(printf '%s\n' "${ulags[@]}" | sort -g | tail -1) s; load $(cut -d' ' -f1-3 /proc/loadavg)"
