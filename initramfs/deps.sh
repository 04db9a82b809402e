#!/bin/sh
# Install what the build and the tests need, on Debian, as root.
# Packages beyond the machine's own apt sources (QEMU and meson from
# bookworm-backports, the kernel source from sid, library and QEMU sources)
# go through a private apt configuration under build/apt: the machine's
# sources are never changed. Quick when nothing is missing: it runs before
# every build.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
apt_dir=$top/build/apt

pkgs="musl-tools dpkg-dev autoconf automake libtool pkg-config cmake
      gcc make binutils flex bison bc libelf-dev libssl-dev cpio rsync
      xz-utils zstd e2fsprogs libcmocka-dev libkmod-dev libblkid-dev
      libjson-c-dev clang cppcheck clang-tidy gnuplot-nox socat python3
      kmod file python3-pytest lz4
      ninja-build libglib2.0-dev libseccomp-dev python3-venv
      iproute2 sbsigntool openssl faketime
      ovmf systemd-boot-efi fdisk dosfstools mtools"  # ip netns: the host networking tests;
# sbsign, openssl, faketime: make image (signed, with a fixed signing time)
# and tests/host/test_firmware_push.py (signs an image); OVMF, systemd-boot,
# sfdisk, mkfs.fat, mtools: the board's UEFI boot disk (board/.../mkesp.sh)
# Our QEMU's build (initramfs/build-qemu.sh) needs meson >= 1.5: bookworm has 1.0.
MESON_MIN=1.5
qemu_pkgs="qemu-system-x86 qemu-utils"
QEMU_MIN=10

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
need=""
for p in $pkgs; do
	installed "$p" || need="$need $p"
done
qemu_ok=0
if command -v qemu-system-x86_64 >/dev/null 2>&1; then
	v=$(qemu-system-x86_64 --version | sed -n 's/^QEMU emulator version \([0-9]*\).*/\1/p')
	[ "${v:-0}" -ge "$QEMU_MIN" ] && qemu_ok=1
fi
meson_ok=0
if installed meson &&
   dpkg --compare-versions "$(dpkg-query -W -f='${Version}' meson)" ge "$MESON_MIN"; then
	meson_ok=1
fi
bpo=""
[ "$qemu_ok" = 1 ] || bpo="$qemu_pkgs ipxe-qemu"
# SeaBIOS (bios-256k.bin) for both QEMUs, at the version Debian's QEMU 10 wants.
{ [ "$qemu_ok" = 1 ] && installed seabios; } || bpo="$bpo seabios"
[ "$meson_ok" = 1 ] || bpo="$bpo meson"

[ -z "$need" ] && [ -z "$bpo" ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: missing build dependencies:$need$( [ $qemu_ok = 1 ] || echo " qemu-system-x86>=$QEMU_MIN (bookworm-backports)")$( [ $meson_ok = 1 ] || echo " meson>=$MESON_MIN (bookworm-backports)")" >&2
	echo "deps: install them (as root on Debian: make deps)" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if [ -n "$need" ]; then
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $need
fi
if [ -n "$bpo" ]; then
	d=$apt_dir/bpo
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
	cat > "$d/sources.list" <<EOS
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
deb http://deb.debian.org/debian bookworm-backports main
EOS
	set -- -o Dir::Etc::sourcelist="$d/sources.list" -o Dir::Etc::sourceparts=/dev/null \
	       -o Dir::State::Lists="$d/lists" -o Dir::Cache="$d/cache" -o APT::Sandbox::User=root -o Acquire::Check-Valid-Until=false
	apt-get "$@" update -qq
	# shellcheck disable=SC2086
	apt-get "$@" install -y -qq --no-install-recommends -t bookworm-backports $bpo
fi
