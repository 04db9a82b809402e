#!/bin/sh
# QEMU's own QMP client library, for the host test that drives luoinit with a
# client nobody here wrote (tests/host/test_qemu_qmp.py): python/qemu/qmp and
# scripts/qmp/qmp-shell from Debian's qemu source package, unmodified.
#   qemu_qmp.sh OUTDIR     OUTDIR/python/qemu/qmp/*, OUTDIR/scripts/qmp/qmp-shell
# The source comes through a private apt config (build/apt/qemu-src, deb-src
# trixie only); the machine's own apt sources are never touched. Cached: once
# OUTDIR/.stamp exists nothing is downloaded again. Output goes to
# build/qemu-qmp.log; one line per step on stdout.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: qemu_qmp.sh OUTDIR}
build=$top/build
apt_dir=$build/apt/qemu-src
dl=$build/dl/qemu-src
log=$build/qemu-qmp.log

[ -f "$out/.stamp" ] && exit 0

mkdir -p "$build"
: > "$log"
step() { echo "qemu-qmp: $*"; echo "=== $*" >> "$log"; }
fail() { echo "qemu-qmp: FAILED, last lines of $log:" >&2; tail -n 30 "$log" >&2; exit 1; }

set -- -o Dir::Etc::sourcelist="$apt_dir/sources.list" -o Dir::Etc::sourceparts=/dev/null \
       -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache" \
       -o APT::Sandbox::User=root
if ! ls "$dl"/qemu_*.orig.tar.* >/dev/null 2>&1; then
	step "download Debian's qemu source (trixie)"
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$dl"
	echo "deb-src http://deb.debian.org/debian trixie main" > "$apt_dir/sources.list"
	apt-get "$@" update -qq >> "$log" 2>&1 || fail
	rm -f "$dl"/qemu_*
	(cd "$dl" && apt-get "$@" source --download-only -qq qemu) >> "$log" 2>&1 || fail
fi
orig=$(ls "$dl"/qemu_*.orig.tar.* | head -n 1)
step "extract python/qemu/qmp and qmp-shell from $(basename "$orig")"
rm -rf "$out" "$out.tmp"
mkdir -p "$out.tmp"
tar -xf "$orig" -C "$out.tmp" --strip-components=1 --wildcards \
	'*/python/qemu/qmp/*' '*/scripts/qmp/qmp-shell' >> "$log" 2>&1 || fail
[ -f "$out.tmp/python/qemu/qmp/__init__.py" ] && [ -f "$out.tmp/scripts/qmp/qmp-shell" ] || {
	echo "qemu-qmp: $(basename "$orig") has no python/qemu/qmp or scripts/qmp/qmp-shell" >&2
	exit 1
}
basename "$orig" > "$out.tmp/.source"
touch "$out.tmp/.stamp"
mv "$out.tmp" "$out"
step "done: $out"
