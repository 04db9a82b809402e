#!/bin/sh
# Fetch and unpack the pinned kernel source (Debian sid's linux-source-7.2),
# install its UAPI headers into KHDR and copy them into the musl sysroot.
#   kernel-src.sh unpack SRCDIR                 download (cached) and unpack
#   kernel-src.sh headers SRCDIR KHDR SYSROOT   UAPI headers into KHDR and SYSROOT
# The .deb comes through a private apt config (build/apt/sid, binary only);
# the machine's own apt sources are never touched. Check-Valid-Until=false
# (in every private config here): a mirror frozen at a snapshot serves sid's
# Release file past its Valid-Until, and apt would refuse it; the signature
# is still checked and every version is pinned.
set -eu

KSRC_PKG=linux-source-7.2
KSRC_VER=7.2.13-1

top=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:?usage: kernel-src.sh unpack|headers SRCDIR [KHDR SYSROOT]}
srcdir=${2:?}
build=$top/build
log=$build/kernel-src.log
apt_dir=$build/apt/sid
dl=$build/dl
deb=$dl/${KSRC_PKG}_${KSRC_VER}_all.deb

step() { echo "kernel-src: $*"; echo "=== $*" >> "$log"; }
fail() { echo "kernel-src: FAILED, last lines of $log:" >&2; tail -n 30 "$log" >&2; exit 1; }

unpack() {
	# Unpacked already at the pinned version: leave the tree (and its stamp)
	# alone, so that editing this script does not rebuild the kernel.
	if [ -f "$srcdir/.stamp" ] &&
	   [ "$(cat "$srcdir/.debian-version" 2>/dev/null)" = "$KSRC_PKG=$KSRC_VER" ]; then
		return 0
	fi
	: > "$log"
	if [ ! -f "$deb" ]; then
		step "download $KSRC_PKG $KSRC_VER"
		mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$dl"
		echo "deb http://deb.debian.org/debian sid main" > "$apt_dir/sources.list"
		set -- -o Dir::Etc::sourcelist="$apt_dir/sources.list" -o Dir::Etc::sourceparts=/dev/null \
		       -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache" \
		       -o APT::Sandbox::User=root -o Acquire::Check-Valid-Until=false
		apt-get "$@" update -qq >> "$log" 2>&1 || fail
		(cd "$dl" && apt-get "$@" download -qq "$KSRC_PKG=$KSRC_VER") >> "$log" 2>&1 || fail
	fi
	step "unpack into $srcdir"
	rm -rf "$srcdir" "$srcdir.tmp"
	mkdir -p "$srcdir.tmp"
	dpkg-deb --fsys-tarfile "$deb" | tar -xO "./usr/src/$KSRC_PKG.tar.xz" \
		| tar -xJ -C "$srcdir.tmp" --strip-components=1 || fail
	mv "$srcdir.tmp" "$srcdir"
	echo "$KSRC_PKG=$KSRC_VER" > "$srcdir/.debian-version"
	touch "$srcdir/.stamp"
	step "unpacked"
}

if [ "$mode" = unpack ]; then
	unpack
	exit 0
fi

khdr=${3:?}
sysroot=${4:?}

step "headers_install into $khdr"
rm -rf "$khdr"
# Out of tree: the source tree must stay clean for the board kernel's O= build.
rm -rf "$build/khdr-obj"
make -C "$srcdir" -s O="$build/khdr-obj" ARCH=x86 headers_install \
	INSTALL_HDR_PATH="$khdr" >> "$log" 2>&1 || fail
rm -rf "$build/khdr-obj"
[ -f "$khdr/include/linux/liveupdate.h" ] || { echo "kernel-src: no linux/liveupdate.h" >&2; exit 1; }
# The kernel's UAPI replaces the system's copies in the sysroot (musl-gcc sees
# only the sysroot), so init code compiles against the real liveupdate.h.
for d in "$khdr"/include/*/; do
	n=$(basename "$d")
	rm -rf "${sysroot:?}/include/$n"
	cp -a "$d" "$sysroot/include/$n"
done
step "done"
