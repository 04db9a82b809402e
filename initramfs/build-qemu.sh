#!/bin/sh
# Build the appliance's QEMU from Debian's qemu source (initramfs/qemu-src.sh)
# plus our patch (initramfs/qemu-fdset.patch), with only what the appliance
# needs, into a relocatable tree:
#   build-qemu.sh OUTDIR      OUTDIR/usr/bin/qemu-system-x86_64 and the
#                             firmware it loads in OUTDIR/usr/share/qemu
#   build-qemu.sh inputs      print the description the cache key is made of
# The binary finds its data dir relative to itself (../share/qemu): it runs
# from OUTDIR on the host and from /usr/bin in the initramfs alike.
# Cached outside the checkout (initramfs/cache.sh): an unchanged OUTDIR is
# left alone, a cached build is copied, anything else is built (about 1340
# ninja steps, 5-9 minutes on 2 cores; a progress line every 30 s; log in OUTDIR.log).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=initramfs/cache.sh
. "$here/cache.sh"
patch_file=$here/qemu-fdset.patch
jobs=$(nproc 2>/dev/null || echo 2)
[ "$jobs" -le 2 ] || jobs=2 # CI's machine has 2 cores, shared

# Devices: q35 and pc (each selects its chipset: PIIX brings its UHCI USB
# controller along), virtio block/net/serial/rng on PCI, the ISA serial port.
# --without-default-devices leaves out all else.
devices() {
	cat <<'EOF'
CONFIG_Q35=y
CONFIG_I440FX=y
CONFIG_VIRTIO_PCI=y
CONFIG_VIRTIO_BLK=y
CONFIG_VIRTIO_NET=y
CONFIG_VIRTIO_SERIAL=y
CONFIG_VIRTIO_RNG=y
CONFIG_SERIAL_ISA=y
EOF
}

# Features: KVM and TCG, seccomp (-sandbox), tap with vhost-net, raw and
# qcow2 only (the other image formats are features left off by
# --without-default-features); no GUI, audio, USB host devices, tools, docs.
# --disable-install-blobs: the +ds tarball has no firmware blobs to install.
configure_flags() {
	echo --prefix=/usr
	# Debian's python, which has Debian's meson (not one found first in PATH)
	echo --python=/usr/bin/python3
	echo "--with-pkgversion=luoinit $(sh "$here/qemu-src.sh" version) + qemu-fdset.patch"
	echo --target-list=x86_64-softmmu
	echo --without-default-features
	echo --without-default-devices
	echo --with-devices-x86_64=luoinit
	echo --enable-kvm
	echo --enable-tcg
	echo --enable-seccomp
	echo --enable-vhost-kernel
	echo --enable-vhost-net
	echo --audio-drv-list=
	echo --disable-fdt
	echo --disable-docs
	echo --disable-user
	echo --disable-tools
	echo --disable-debug-info
	echo --disable-download
	echo --disable-install-blobs
	# Unreferenced functions and data left out: 0.9 of its 8.8 MB
	echo "--extra-cflags=-ffunction-sections -fdata-sections"
	echo "--extra-ldflags=-Wl,--gc-sections"
}

# Everything the result depends on: the cache key is the hash of this text.
inputs() {
	echo "qemu-src $(sh "$here/qemu-src.sh" version)"
	echo "patch $(sha256sum < "$patch_file" | cut -c1-64)"
	echo "build-qemu.sh $(sha256sum < "$here/build-qemu.sh" | cut -c1-64)"
	cache_toolchain "${CC:-cc}" # what meson takes
	for p in libc6-dev libglib2.0-dev libseccomp-dev meson ninja-build seabios; do
		echo "$p $(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo none)"
	done
}

if [ "${1:-}" = inputs ]; then
	inputs
	exit 0
fi
out=${1:?usage: build-qemu.sh OUTDIR | inputs}
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
bin=$out/usr/bin/qemu-system-x86_64
key=$(inputs | cache_key)

[ -x "$bin" ] && [ "$(cat "$out/.key" 2>/dev/null)" = "$key" ] && exit 0

if hit=$(cache_get qemu "$key"); then
	cache_copy "$hit" "$out"
	echo "$key" > "$out/.key"
	echo "qemu: from the cache ($hit)"
	exit 0
fi

work=$out.work
log=$out.log
: > "$log"
step() { echo "qemu: $*"; echo "=== $*" >> "$log"; }
fail() { echo "qemu: FAILED, last lines of $log:" >&2; tail -n 40 "$log" >&2; exit 1; }
t0=$(date +%s)

step "build $(sh "$here/qemu-src.sh" version) (cache key ${key%"${key#????????????}"}..., log in $log)"
rm -rf "$work"
sh "$here/qemu-src.sh" unpack "$work/src" >> "$log" 2>&1 || fail
src=$work/src
step "apply $(basename "$patch_file")"
patch -d "$src" -p1 --forward --batch < "$patch_file" >> "$log" 2>&1 || fail
devices > "$src/configs/devices/x86_64-softmmu/luoinit.mak"

step "configure"
mkdir -p "$src/_b"
(cd "$src/_b" && configure_flags | tr '\n' '\0' | xargs -0 ../configure) >> "$log" 2>&1 || fail

step "ninja qemu-system-x86_64 (-j$jobs)"
ninja -C "$src/_b" -j"$jobs" qemu-system-x86_64 >> "$log" 2>&1 &
pid=$!
# One progress line every 30 s: ninja's last "[done/total]" from the log.
while kill -0 "$pid" 2>/dev/null; do
	i=0
	while [ $i -lt 30 ] && kill -0 "$pid" 2>/dev/null; do sleep 1; i=$((i + 1)); done
	kill -0 "$pid" 2>/dev/null || break
	n=$(grep -o '^\[[0-9]*/[0-9]*\]' "$log" | tail -n 1)
	echo "qemu: ... $(( $(date +%s) - t0 )) s, step ${n:-[0/?]}"
done
wait "$pid" || fail

step "option ROMs (linuxboot, multiboot, pvh, kvmvapic)"
# configure sets them up only when its 32-bit probe links -lgcc (a multilib
# or i686 cross gcc). The ROMs never link libgcc: the host gcc with -m32
# builds them (checked: the bytes of Debian's cross-built ones, but for
# multiboot_dma.bin, whose source changed in 10.0.6: "multiboot: Fix the
# split lock").
rom=$src/_b/pc-bios/optionrom
if [ ! -f "$rom/config.mak" ]; then
	printf '%s\n' "TOPSRC_DIR=$src" EXTRA_CFLAGS=-m32 CC=cc CCAS=cc AR=ar AS=as LD=ld \
		NM=nm OBJCOPY=objcopy RANLIB=ranlib STRIP=strip > "$rom/config.mak"
fi
make -C "$rom" >> "$log" 2>&1 || fail

step "install into $out"
stage=$work/stage
mkdir -p "$stage/usr/bin" "$stage/usr/share/qemu"
cp "$src/_b/qemu-system-x86_64" "$stage/usr/bin/"
strip "$stage/usr/bin/qemu-system-x86_64"
# What a q35 or pc machine booting a -kernel loads (strace -e openat): the
# BIOS (Debian's SeaBIOS build) and the option ROMs built above.
cp /usr/share/seabios/bios-256k.bin "$stage/usr/share/qemu/" || fail
for r in kvmvapic linuxboot_dma multiboot_dma pvh; do
	cp "$src/_b/pc-bios/optionrom/$r.bin" "$stage/usr/share/qemu/" || fail
done
"$stage/usr/bin/qemu-system-x86_64" --version >> "$log" 2>&1 || fail
inputs > "$stage/usr/share/qemu/luoinit-build-inputs"

cache_put qemu "$key" "$stage"
cache_copy "$stage" "$out"
echo "$key" > "$out/.key"
rm -rf "$work"
step "done: $bin ($(stat -c %s "$bin") bytes, $(( $(date +%s) - t0 )) s)"
