#!/usr/bin/env bash
# A database branch per pull request, for any CI system running on the Velo
# host (docs/ci.md has the GitHub Actions workflow doing the same steps).
#
#   scripts/ci-branch.sh open PR [-- COMMAND...]   on a pull request opened or pushed to
#   scripts/ci-branch.sh close PR                  on a pull request closed or merged
#
# open makes PROJECT/pr-PR from PROJECT/main unless it is there already (a
# rerun, or the next push: the branch keeps its data), then runs COMMAND
# (the migrations, then the tests) with PGHOST, PGPORT, PGUSER, PGPASSWORD,
# PGDATABASE, PGSSLMODE, PGSSLROOTCERT and DATABASE_URL set to the branch.
# close deletes the branch if it exists. Both can be run again safely.
# PROJECT is $VELO_CI_PROJECT, default app; velo is $VELO, default velo.
set -euo pipefail

usage() {
	echo "usage: $0 open PR [-- COMMAND...] | close PR  (PR: the pull request's number)" >&2
	exit 2
}
[ $# -ge 2 ] || usage
action=$1 pr=$2
shift 2
[[ $pr =~ ^[0-9]{1,10}$ ]] || { echo "$0: the pull request number must be digits, got '$pr'" >&2; exit 2; }
velo=${VELO:-velo}
project=${VELO_CI_PROJECT:-app}
branch="$project/pr-$pr"

case $action in
open)
	if [ $# -gt 0 ]; then
		[ "$1" = "--" ] || usage
		shift
	fi
	"$velo" branch create "$branch" --if-not-exists
	[ $# -gt 0 ] || exit 0
	# The variables go to COMMAND only, not to this script's caller.
	eval "$("$velo" branch env "$branch")"
	exec "$@"
	;;
close)
	names=$("$velo" branch list "$project" -q)
	if grep -qxF "$branch" <<<"$names"; then
		"$velo" branch delete "$branch" --force
	else
		echo "$branch does not exist: nothing to delete"
	fi
	;;
*)
	usage
	;;
esac
