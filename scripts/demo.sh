#!/usr/bin/env bash
# The seed's demo: a project, a branch, isolation both ways, and a reset.
# Arguments are passed to `velo project create` (e.g. --pool /mnt/pool).
set -euo pipefail
VELO="${VELO:-velo}"

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }
sql() { # sql BRANCH SQL: run SQL on a branch with psql, password from velo
	local port pw
	port=$("$VELO" branch password "$1" --json | sed -n 's/.*"port": \([0-9]*\).*/\1/p')
	pw=$("$VELO" branch password "$1" --json | sed -n 's/.*"password": "\([^"]*\)".*/\1/p')
	say "psql -h localhost -p $port -U postgres -c \"$2\"   # $1"
	PGPASSWORD="$pw" psql -X -h localhost -p "$port" -U postgres -d postgres -c "$2"
}

# check BRANCH SQL WANT: fail the demo unless the query gives WANT.
check() {
	local port pw got
	port=$("$VELO" branch password "$1" --json | sed -n 's/.*"port": \([0-9]*\).*/\1/p')
	pw=$("$VELO" branch password "$1" --json | sed -n 's/.*"password": "\([^"]*\)".*/\1/p')
	got=$(PGPASSWORD="$pw" psql -X -At -h localhost -p "$port" -U postgres -d postgres -c "$2" | paste -sd, -)
	if [ "$got" != "$3" ]; then
		echo "demo: $1 gave $got, expected $3" >&2
		exit 1
	fi
}

if "$VELO" project get demo >/dev/null 2>&1; then
	echo "(deleting the demo project left by an earlier run)"
	"$VELO" project delete demo --force >/dev/null
fi

run "$VELO" project create demo "$@"
sql demo/main "CREATE TABLE users (id SERIAL PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('Alice'), ('Bob'), ('Charlie'); SELECT * FROM users;"
run "$VELO" branch create demo/dev
sql demo/dev "INSERT INTO users (name) VALUES ('Dave'), ('Eve'); DELETE FROM users WHERE name = 'Bob'; SELECT * FROM users;"
run "$VELO" status
sql demo/main "SELECT * FROM users;"
sql demo/dev "SELECT * FROM users;"
check demo/main "SELECT name FROM users ORDER BY id" "Alice,Bob,Charlie"
check demo/dev "SELECT name FROM users ORDER BY id" "Alice,Charlie,Dave,Eve"
run "$VELO" branch reset demo/dev
sql demo/dev "SELECT * FROM users;"
check demo/dev "SELECT name FROM users ORDER BY id" "Alice,Bob,Charlie"

printf '\nDone: demo/main has Bob; demo/dev was reset to it. Try: velo branch create demo/feature; velo status\n'
