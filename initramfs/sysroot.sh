#!/bin/sh
# Build the static musl sysroot: libkmod, libblkid and json-c from Debian
# bookworm source packages (pinned below), installed into SYSROOT/{include,lib}.
#   sysroot.sh SYSROOT
# Sources come through a private apt config (build/apt/src, deb-src only);
# the machine's own apt sources are never touched. Output goes to
# build/sysroot.log; one line per step on stdout.
set -eu

KMOD_VER=30+20221128-1
UTIL_LINUX_VER=2.38.1-5+deb12u3
JSONC_VER=0.16-2

top=$(cd "$(dirname "$0")/.." && pwd)
sysroot=${1:?usage: sysroot.sh SYSROOT}
mkdir -p "$sysroot"
sysroot=$(cd "$sysroot" && pwd)
build=$top/build
src=$build/src
log=$build/sysroot.log
apt_dir=$build/apt/src
jobs=$(nproc 2>/dev/null || echo 2)

: > "$log"
step() { echo "sysroot: $*"; echo "=== $*" >> "$log"; }
fail() { echo "sysroot: FAILED, last lines of $log:" >&2; tail -n 30 "$log" >&2; exit 1; }
run() { "$@" >> "$log" 2>&1 || fail; }

step "sources (kmod $KMOD_VER, util-linux $UTIL_LINUX_VER, json-c $JSONC_VER)"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$src"
cat > "$apt_dir/sources.list" <<EOS
deb-src http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian-security bookworm-security main
deb-src http://deb.debian.org/debian bookworm-updates main
EOS
set -- -o Dir::Etc::sourcelist="$apt_dir/sources.list" -o Dir::Etc::sourceparts=/dev/null \
       -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache" \
       -o APT::Sandbox::User=root -o Acquire::Check-Valid-Until=false
# Fresh tree every time: the build is short and a half-configured tree lies.
rm -rf "$src" "$sysroot"
mkdir -p "$src" "$sysroot/include" "$sysroot/lib/pkgconfig"
run apt-get "$@" update -qq
(cd "$src" && apt-get "$@" source -qq "kmod=$KMOD_VER" "util-linux=$UTIL_LINUX_VER" \
	"json-c=$JSONC_VER") >> "$log" 2>&1 || fail

# musl-gcc does not see the system's kernel headers; util-linux needs them.
# The board kernel's UAPI headers are copied over these later (KHDR stamp).
cp -a /usr/include/linux /usr/include/asm-generic "$sysroot/include/"
cp -a /usr/include/x86_64-linux-gnu/asm "$sysroot/include/"

export CC=musl-gcc
export CFLAGS="-Os -ffunction-sections -fdata-sections -I$sysroot/include"
export PKG_CONFIG_LIBDIR=$sysroot/lib/pkgconfig
export PKG_CONFIG_PATH=

step "json-c"
d=$(echo "$src"/json-c-0.16*/)
mkdir -p "$d/_b"
(cd "$d/_b" && cmake .. -DCMAKE_C_COMPILER=musl-gcc -DCMAKE_BUILD_TYPE=MinSizeRel \
	-DCMAKE_INSTALL_PREFIX="$sysroot" -DCMAKE_INSTALL_LIBDIR=lib \
	-DBUILD_SHARED_LIBS=OFF -DBUILD_STATIC_LIBS=ON -DBUILD_TESTING=OFF \
	-DBUILD_APPS=OFF -DDISABLE_WERROR=ON -DDISABLE_EXTRA_LIBS=ON \
	&& make -j"$jobs" && make install) >> "$log" 2>&1 || fail

step "libblkid"
d=$(echo "$src"/util-linux-2.38.1/)
# Debian's patches touch the autotools inputs: keep make from rerunning them.
find "$d" \( -name configure.ac -o -name '*.am' -o -name '*.m4' \) -exec touch -r "$d/aclocal.m4" {} +
touch "$d/configure" "$d/config.h.in" 2>/dev/null || true
find "$d" -name Makefile.in -exec touch {} +
(cd "$d" && ./configure --prefix="$sysroot" --libdir="$sysroot/lib" \
	--disable-all-programs --enable-libblkid --disable-shared --enable-static \
	--disable-nls --without-udev --without-systemd --without-python \
	--without-readline --without-ncursesw --without-ncurses --without-tinfo \
	--without-cap-ng --without-libz --without-user --without-btrfs \
	--without-econf --disable-bash-completion \
	&& make -j"$jobs" libblkid.la && make install-usrlib_execLTLIBRARIES \
	install-nodist_blkidincHEADERS install-pkgconfigDATA) >> "$log" 2>&1 || fail

step "libkmod"
d=$(echo "$src"/kmod-30*/)
mkdir -p "$d/libkmod/docs"
[ -f "$d/libkmod/docs/gtk-doc.make" ] || : > "$d/libkmod/docs/gtk-doc.make"
# configure.ac refuses static builds on purpose; we want exactly that.
sed -i '/AC_MSG_ERROR(\[--enable-static is not supported/d' "$d/configure.ac"
(cd "$d" && autoreconf -fi && ./configure --prefix="$sysroot" --libdir="$sysroot/lib" \
	--disable-shared --enable-static --disable-tools --disable-manpages \
	--disable-test-modules --disable-gtk-doc --without-zstd --without-xz \
	--without-zlib --without-openssl \
	&& make -j"$jobs" libkmod/libkmod.la && make install-libLTLIBRARIES \
	install-includeHEADERS install-pkgconfigDATA) >> "$log" 2>&1 || fail

step "check"
for f in libkmod.a libblkid.a libjson-c.a; do
	[ -f "$sysroot/lib/$f" ] || { echo "sysroot: $f missing" >&2; exit 1; }
done
rm -f "$sysroot"/lib/*.la
echo "kmod=$KMOD_VER util-linux=$UTIL_LINUX_VER json-c=$JSONC_VER" > "$sysroot/.versions"
step "done: $sysroot"
