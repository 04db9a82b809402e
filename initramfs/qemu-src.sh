#!/bin/sh
# Fetch and unpack Debian's qemu source package (pinned below; Debian's
# patches applied by dpkg-source).
#   qemu-src.sh unpack [SRCDIR]   download (kept in build/dl/qemu) and unpack;
#                                 SRCDIR defaults to build/qemu-src. Prints the
#                                 tree's path last. An unpacked tree of the
#                                 pinned version is left alone.
#   qemu-src.sh version           print the version used (the build's cache key):
#                                 the pin, or, once trixie no longer has it,
#                                 the newest of the same 10.0 series there
#                                 (with a warning to update the pin)
# The tree is Debian's, unchanged: initramfs/build-qemu.sh unpacks its own
# copy to patch, and tests may use build/qemu-src/python/qemu/qmp from here.
# Sources come through a private apt config (build/apt/trixie, deb-src only);
# the machine's own apt sources are never touched. Log: build/qemu-src.log.
#
# Why trixie's 10.0.x: it is Debian stable's QEMU, kept there (with security
# fixes) for years, so the pin stays downloadable longer than sid's 10.2/11.x;
# it is the release the host tests' Debian QEMU (10.0 from bookworm-backports)
# comes from, so both speak the same machine types and migration stream; and
# 10.0 already has cpr-reboot and x-ignore-shared.
set -eu

QEMU_VER=1:10.0.13+ds-0+deb13u1

top=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:?usage: qemu-src.sh unpack [SRCDIR] | version}
srcdir=${2:-}
build=$top/build
log=$build/qemu-src.log
apt_dir=$build/apt/trixie
dl=$build/dl/qemu

set -- -o Dir::Etc::sourcelist="$apt_dir/sources.list" -o Dir::Etc::sourceparts=/dev/null \
       -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache" \
       -o APT::Sandbox::User=root -o Acquire::Check-Valid-Until=false

# The version to build: the pin while the archive has it (a stable point
# release or security update replaces it there). Decided once, in
# $dl/.resolved; a machine that has the pin's .dsc never asks the network.
# Takes the apt options (a function has its own "$@").
resolve() {
	if [ -f "$dl/qemu_${QEMU_VER#*:}.dsc" ]; then echo "$QEMU_VER"; return; fi
	if [ -s "$dl/.resolved" ]; then cat "$dl/.resolved"; return; fi
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$dl"
	cat > "$apt_dir/sources.list" <<EOS
deb-src http://deb.debian.org/debian trixie main
deb-src http://deb.debian.org/debian-security trixie-security main
EOS
	if ! apt-get "$@" update -qq >/dev/null 2>&1; then
		echo "$QEMU_VER" # offline: the download says what failed
		return
	fi
	have=$(apt-cache "$@" showsrc qemu 2>/dev/null | sed -n 's/^Version: //p')
	if echo "$have" | grep -qxF "$QEMU_VER"; then
		echo "$QEMU_VER"
		return
	fi
	series=${QEMU_VER%.*}. # 1:10.0.13+ds-0+deb13u1 -> 1:10.0.
	v=$(echo "$have" | grep -F "$series" | sort -V | tail -n 1)
	if [ -z "$v" ]; then
		echo "qemu-src: qemu $QEMU_VER is no longer in trixie, nor any ${series}x; the archive has:" >&2
		echo "$have" | sed 's/^/  /' >&2
		echo "qemu-src: update QEMU_VER in $0" >&2
		exit 1
	fi
	echo "qemu-src: qemu $QEMU_VER is no longer in trixie: building $v (update QEMU_VER in $0)" >&2
	echo "$v" > "$dl/.resolved"
	echo "$v"
}

if [ "$mode" = version ]; then
	resolve "$@"
	exit 0
fi
[ "$mode" = unpack ] || { echo "usage: qemu-src.sh unpack [SRCDIR] | version" >&2; exit 2; }
srcdir=${srcdir:-$build/qemu-src}
mkdir -p "$(dirname "$srcdir")"
srcdir=$(cd "$(dirname "$srcdir")" && pwd)/$(basename "$srcdir")
mkdir -p "$build"
QEMU_VER=$(resolve "$@")

step() { echo "qemu-src: $*"; echo "=== $*" >> "$log"; }
fail() { echo "qemu-src: FAILED, last lines of $log:" >&2; tail -n 30 "$log" >&2; exit 1; }

if [ "$(cat "$srcdir/.debian-version" 2>/dev/null)" = "qemu=$QEMU_VER" ]; then
	echo "$srcdir"
	exit 0
fi
: > "$log"
# The file names drop the epoch: 1:10.0.13+ds-0+deb13u1 -> qemu_10.0.13+ds-0+deb13u1.dsc
dsc=$dl/qemu_${QEMU_VER#*:}.dsc
if [ ! -f "$dsc" ]; then
	step "download qemu $QEMU_VER (about 40 MB)"
	# Into a scratch dir first: a half download must not look complete.
	rm -rf "$dl.tmp"
	mkdir -p "$dl.tmp"
	(cd "$dl.tmp" && apt-get "$@" source --download-only -qq "qemu=$QEMU_VER") >> "$log" 2>&1 || fail
	mv "$dl.tmp"/* "$dl/"
	rmdir "$dl.tmp"
fi
step "unpack into $srcdir (Debian's patches applied)"
rm -rf "$srcdir" "$srcdir.tmp"
# apt checked the downloads against the archive's signed index; dpkg-source
# checks them against the .dsc again before unpacking.
dpkg-source --no-copy -x "$dsc" "$srcdir.tmp" >> "$log" 2>&1 || fail
echo "qemu=$QEMU_VER" > "$srcdir.tmp/.debian-version"
mv "$srcdir.tmp" "$srcdir"
step "unpacked"
echo "$srcdir"
