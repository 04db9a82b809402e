#!/bin/sh
# Make the state disk: a sparse ext4 image labelled luoinit-state, filled from
# a staging tree with `mke2fs -d` (no root, no loop mount).
#   mkstate.sh IMG SIZE VMCONF HEARTBEAT BZIMAGE INITRAMFS
# Layout (design.md §5): vmconf.json, guest/heartbeat.elf, boot/{vmlinuz,initramfs.img},
# log/, luoinit/. BZIMAGE.abi (kernel-abi.sh) goes along as boot/vmlinuz.abi: an
# update carries memfds only to a kernel whose ABI is recorded beside it. SIZE leaves room for a full-RAM fallback save of a 2 GiB guest.
set -eu
img=${1:?usage: mkstate.sh IMG SIZE VMCONF HEARTBEAT BZIMAGE INITRAMFS}
size=$2 vmconf=$3 heartbeat=$4 kernel=$5 initrd=$6
root=$img.root
[ -s "$kernel.abi" ] || { echo "mkstate.sh: no $kernel.abi (make $kernel.abi)" >&2; exit 1; }
rm -rf "$root"
mkdir -p "$root/guest" "$root/boot" "$root/log" "$root/luoinit"
cp "$vmconf" "$root/vmconf.json"
cp "$heartbeat" "$root/guest/heartbeat.elf"
cp "$kernel" "$root/boot/vmlinuz"
cp "$kernel.abi" "$root/boot/vmlinuz.abi"
cp "$initrd" "$root/boot/initramfs.img"
rm -f "$img.tmp"
truncate -s "$size" "$img.tmp"
mke2fs -q -F -t ext4 -L luoinit-state -E root_owner=0:0 -d "$root" "$img.tmp"
mv "$img.tmp" "$img"
rm -rf "$root"
echo "state: $img ($size sparse, $(du -k "$img" | cut -f1) KiB used)"
