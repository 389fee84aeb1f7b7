#!/usr/bin/env bash
# Figures of a physical import (docs/benchmarks.md, "Physical import"):
#   1. velo project create --from against pg_basebackup by hand into a plain
#      directory on the same filesystem (median of RUNS);
#   2. replay lag of the following main under pgbench on the source
#      (sampled every second for LAG_SECONDS, median and max);
#   3. velo branch create on the following main against one on an ordinary
#      main holding the same data (a --no-follow import), median of RUNS.
# Run as root on a host with Debian's postgresql-15 (pg_basebackup, pgbench)
# and btrfs-progs. It makes its own loop-mounted btrfs pool and its own
# "production" PostgreSQL 15 on 127.0.0.1, and removes both at the end.
#   usage: scripts/bench-import.sh [SCALE] [RUNS] [LAG_SECONDS]
# SCALE is pgbench's (68 ≈ 1 GB of databases). Needs VELO (the velo binary,
# default: go build).
set -euo pipefail
SCALE=${1:-68}
RUNS=${2:-3}
LAG_SECONDS=${3:-60}
PG=/usr/lib/postgresql/15/bin
WORK=$(mktemp -d /tmp/velo-bench-import-XXXXXX)
chmod 711 "$WORK"
PORT=18999
SUPER=bench-super-pw
REPL=bench-repl-pw
if [ -z "${VELO:-}" ]; then
	VELO=$WORK/velo
	go build -o "$VELO" ./cmd/velo
fi
export VELO_HOME=$WORK/home
cleanup() {
	set +e
	"$VELO" project delete fol --force >/dev/null 2>&1
	"$VELO" project delete nof --force >/dev/null 2>&1
	runuser -u postgres -- "$PG/pg_ctl" -D "$WORK/src" -m immediate -w stop >/dev/null 2>&1
	umount "$WORK/pool" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# The pool: btrfs on a loop file, roomy enough for three copies.
truncate -s 20G "$WORK/pool.img"
mkfs.btrfs -q -f "$WORK/pool.img"
mkdir -p "$WORK/pool"
mount -o loop,user_subvol_rm_allowed "$WORK/pool.img" "$WORK/pool"

# The source.
chown postgres "$WORK"
echo "$SUPER" >"$WORK/pw" && chown postgres "$WORK/pw"
runuser -u postgres -- "$PG/initdb" -D "$WORK/src" -U postgres --auth=scram-sha-256 --pwfile="$WORK/pw" >/dev/null
rm "$WORK/pw"
cat >>"$WORK/src/postgresql.conf" <<EOF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
max_wal_senders = 10
EOF
runuser -u postgres -- "$PG/pg_ctl" -D "$WORK/src" -l "$WORK/src.log" -w start >/dev/null
export PGPASSWORD=$SUPER
psql -X -q -h 127.0.0.1 -p $PORT -U postgres -c "CREATE ROLE repl LOGIN REPLICATION PASSWORD '$REPL'"
echo "loading pgbench scale $SCALE..." >&2
"$PG/pgbench" -q -i -s "$SCALE" -h 127.0.0.1 -p $PORT -U postgres postgres 2>/dev/null
SIZE=$(psql -X -At -h 127.0.0.1 -p $PORT -U postgres -c "SELECT pg_size_pretty(sum(pg_database_size(oid))) FROM pg_database")
echo "source: PostgreSQL $(psql -X -At -h 127.0.0.1 -p $PORT -U postgres -c 'SHOW server_version'), $SIZE" >&2
FROM="postgresql://repl@127.0.0.1:$PORT/postgres"

# 1. pg_basebackup by hand against velo project create --from.
echo "$REPL" | sed "s/^/127.0.0.1:$PORT:*:repl:/" >"$WORK/pgpass"
chmod 600 "$WORK/pgpass"
chown postgres "$WORK/pgpass"
hand=() velo=()
for i in $(seq "$RUNS"); do
	mkdir -p "$WORK/pool/plain" && chown postgres "$WORK/pool/plain"
	t0=$(now)
	runuser -u postgres -- env -u PGPASSWORD PGPASSFILE="$WORK/pgpass" "$PG/pg_basebackup" -D "$WORK/pool/plain/data" \
		-d "host=127.0.0.1 port=$PORT user=repl" --wal-method=stream --checkpoint=fast --no-password
	hand+=("$(echo "$(now) - $t0" | bc)")
	rm -rf "$WORK/pool/plain"
	t0=$(now)
	PGPASSWORD=$REPL "$VELO" project create fol --pool "$WORK/pool" --from "$FROM" >/dev/null 2>&1
	velo+=("$(echo "$(now) - $t0" | bc)")
	[ "$i" = "$RUNS" ] || "$VELO" project delete fol >/dev/null
done
H=$(printf '%s\n' "${hand[@]}" | median)
V=$(printf '%s\n' "${velo[@]}" | median)
echo "import: pg_basebackup by hand ${hand[*]} s (median $H); velo project create --from ${velo[*]} s (median $V); ratio $(echo "scale=2; $V / $H" | bc)"

# 2. Replay lag under pgbench.
"$PG/pgbench" -n -c 4 -j 2 -T "$LAG_SECONDS" -h 127.0.0.1 -p $PORT -U postgres postgres >"$WORK/pgbench.out" 2>&1 &
BENCH=$!
sleep 2
: >"$WORK/lag"
while kill -0 $BENCH 2>/dev/null; do
	"$VELO" project get fol --json | python3 -c 'import json,sys; s=json.load(sys.stdin)["source"]; print(s.get("lag_bytes",0), s.get("lag_seconds",0), s["state"])' >>"$WORK/lag"
	sleep 1
done
TPS=$(grep -o 'tps = [0-9.]*' "$WORK/pgbench.out" | head -1)
echo "replay lag under pgbench -c 4 ($TPS), $(wc -l <"$WORK/lag") samples: bytes median $(cut -d' ' -f1 "$WORK/lag" | median) max $(cut -d' ' -f1 "$WORK/lag" | sort -g | tail -1); seconds median $(cut -d' ' -f2 "$WORK/lag" | median) max $(cut -d' ' -f2 "$WORK/lag" | sort -g | tail -1); states $(cut -d' ' -f3- "$WORK/lag" | sort | uniq -c | tr '\n' ' ')"

# 3. branch create on the following main against an ordinary main.
PGPASSWORD=$REPL "$VELO" project create nof --pool "$WORK/pool" --from "$FROM" --no-follow >/dev/null 2>&1
fol=() nof=()
for i in $(seq "$RUNS"); do
	for p in fol nof; do
		t0=$(now)
		"$VELO" branch create $p/b$i >/dev/null 2>&1
		d=$(echo "$(now) - $t0" | bc)
		if [ $p = fol ]; then fol+=("$d"); else nof+=("$d"); fi
		"$VELO" branch delete $p/b$i >/dev/null 2>&1
	done
done
F=$(printf '%s\n' "${fol[@]}" | median)
N=$(printf '%s\n' "${nof[@]}" | median)
echo "branch create: following main ${fol[*]} s (median $F); ordinary main ${nof[*]} s (median $N); ratio $(echo "scale=2; $F / $N" | bc)"
