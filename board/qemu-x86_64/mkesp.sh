#!/bin/sh
# The appliance's boot disk: a GPT disk with one EFI system partition (FAT32,
# label LUOINIT-ESP) holding systemd-boot, its loader.conf, and the factory
# firmware image with its Boot Loader Specification entry. Made without root
# (sfdisk, mkfs.fat, mtools, dd).
#   mkesp.sh OUT SIZE_MIB FIRMWARE VERSION [OPTIONS]
# OPTIONS: what the entry adds to the firmware's own command line, which is
# built into its kernel (make image); none by default.
# The entry is luoinit-0001-VERSION+3.conf: on trial like every new
# firmware, until luoinit marks it good on its first boot. luoinit adds the entries of later firmware (README, Boot
# assessment): the newest generation sorts first, so it is the default, and
# systemd-boot passes over an entry with no tries left.
set -eu
out=${1:?usage: mkesp.sh OUT SIZE_MIB FIRMWARE VERSION [OPTIONS]}
size=${2:?} fw=${3:?} version=${4:?} options=${5:-}
sdboot=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
[ -f "$sdboot" ] || { echo "mkesp.sh: no $sdboot (Debian's systemd-boot-efi; make deps)" >&2; exit 1; }
case "$version" in
*[!A-Za-z0-9._+~-]*|"") echo "mkesp.sh: version '$version': letters, digits and . _ + ~ - only" >&2; exit 2 ;;
esac
tmp=$out.tmp
rm -f "$tmp"
truncate -s "${size}M" "$tmp"
# Fixed identifiers: the same inputs give the same disk.
sfdisk -q --no-reread --no-tell-kernel "$tmp" <<EOF
label: gpt
label-id: 6C756F69-6E69-7400-0000-000000000001
start=2048, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=6C756F69-6E69-7400-0000-000000000002, name="luoinit-esp"
EOF
start=2048
sectors=$(sfdisk -l -o Sectors "$tmp" | awk 'f { print $1; exit } /^ *Sectors/ { f = 1 }')
[ -n "$sectors" ] || { echo "mkesp.sh: no partition in $tmp" >&2; exit 1; }
# The filesystem in a file of its own size (mtools then sees no size
# mismatch), copied into the partition at the end.
part=$out.part.tmp
rm -f "$part"
mkfs.fat -C -F 32 -h "$start" -n LUOINIT-ESP -i 6c756f69 "$part" $((sectors / 2)) > /dev/null
export MTOOLS_SKIP_CHECK=1
img=$part
mmd -i "$img" ::/EFI ::/EFI/BOOT ::/EFI/systemd ::/EFI/luoinit ::/loader ::/loader/entries
mcopy -i "$img" "$sdboot" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$img" "$sdboot" ::/EFI/systemd/systemd-bootx64.efi
mcopy -i "$img" "$fw" "::/EFI/luoinit/$version.efi"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# timeout 0: straight to the default (a key held at boot still shows the menu).
printf 'timeout 0\ndefault luoinit-*\neditor no\nauto-entries no\nauto-firmware no\n' > "$work/loader.conf"
printf 'title luoinit %s\nversion %s\nlinux /EFI/luoinit/%s.efi\n' "$version" "$version" "$version" > "$work/entry.conf"
[ -z "$options" ] || printf 'options %s\n' "$options" >> "$work/entry.conf"
mcopy -i "$img" "$work/loader.conf" ::/loader/loader.conf
mcopy -i "$img" "$work/entry.conf" "::/loader/entries/luoinit-0001-$version+3.conf"
dd if="$part" of="$tmp" bs=1M seek=$((start * 512 / 1048576)) conv=notrunc,sparse status=none
rm -f "$part"
mv "$tmp" "$out"
echo "esp: $out (${size} MiB, systemd-boot, luoinit-0001-$version+3.conf)"
