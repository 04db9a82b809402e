#!/bin/sh
# A signed firmware image of the board: the board kernel relinked with its
# initramfs built in and a version, the project's certificate in the
# kernel's builtin trusted keys, signed for kexec_file_load (Authenticode).
#   mkimage.sh [options] OUT
#     --src DIR          the kernel source
#     --kernel-obj DIR   the board kernel's object tree (build-kernel.sh)
#     --work DIR         where to relink: a copy of that tree, kept between runs
#     --initramfs CPIO   an uncompressed cpio to build in (the bzImage compresses
#                        it with the kernel); "" for none: a signed kernel for
#                        `update kernel= initrd=`
#     --version V        KBUILD_BUILD_VERSION: `uname -v` reads "#V ...", and so
#                        does the bzImage header's kernel_version string
#     --key K --cert C   the signing key and its certificate (PEM)
#     --genkey           create K and C first when neither exists (a
#                        development key: RSA 3072, self-signed)
#     --abi FILE         kernel-abi.sh's line, copied to OUT.abi (an update
#                        target's ABI is read beside it) and into the note
#     --cmdline STR      the firmware's kernel command line, built into the
#                        kernel (CONFIG_CMDLINE: a boot loader's or a kexec's
#                        is appended to it) and written into the note
#     --qemu BIN         the QEMU in the initramfs: its version goes into the note
# With --initramfs, the image ends in a firmware note (init/update/fwnote.h:
# version, cmdline, kernel-abi, qemu), appended before signing so that the
# signature covers it.
# OUT is a bzImage (a PE file: the EFI stub) signed with sbsign; OUT.stamp
# holds the hash of the inputs: an unchanged OUT is left alone, so make may
# call this every time. Reproducible: the same inputs give the same bytes.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src="" kobj="" work="" cpio=UNSET version="" key="" cert="" genkey=0 abi="" cmdline="" qemu=""
while [ $# -gt 1 ]; do
	case "$1" in
	--src) src=$2 ;;
	--kernel-obj) kobj=$2 ;;
	--work) work=$2 ;;
	--initramfs) cpio=$2 ;;
	--version) version=$2 ;;
	--key) key=$2 ;;
	--cert) cert=$2 ;;
	--abi) abi=$2 ;;
	--cmdline) cmdline=$2 ;;
	--qemu) qemu=$2 ;;
	--genkey) genkey=1; shift; continue ;;
	*) echo "mkimage.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift 2
done
out=${1:?usage: mkimage.sh --src DIR --kernel-obj DIR --work DIR --initramfs CPIO --version V --key K --cert C [--genkey] [--abi F] OUT}
for v in src kobj work version key cert; do
	eval "[ -n \"\$$v\" ]" || { echo "mkimage.sh: --$v missing" >&2; exit 2; }
done
[ "$cpio" != UNSET ] || { echo "mkimage.sh: --initramfs missing (\"\" for none)" >&2; exit 2; }
case "$version" in
*[!A-Za-z0-9._+~-]*|"") echo "mkimage.sh: version '$version': letters, digits and . _ + ~ - only" >&2; exit 2 ;;
esac
case "$cmdline" in
*[\"\\]*) echo "mkimage.sh: --cmdline: no \" or \\ (it becomes CONFIG_CMDLINE=\"...\")" >&2; exit 2 ;;
esac
[ "${#cmdline}" -lt 2048 ] || { echo "mkimage.sh: --cmdline longer than 2047 bytes (COMMAND_LINE_SIZE)" >&2; exit 2; }
[ -n "$cpio" ] || [ -z "$cmdline" ] || { echo "mkimage.sh: --cmdline needs --initramfs (a firmware image)" >&2; exit 2; }
qemu_version=""
if [ -n "$qemu" ]; then
	qemu_version=$("$qemu" --version | sed -n 's/^QEMU emulator version \([0-9][0-9.]*\).*/\1/p')
	[ -n "$qemu_version" ] || { echo "mkimage.sh: $qemu --version: no \"QEMU emulator version\"" >&2; exit 1; }
fi
say() { echo "image: $*"; }
# The time of a reproducible build (build-kernel.sh's KBUILD_BUILD_TIMESTAMP):
# the signature's signingTime, and the development certificate's start.
sign_time="2025-01-01 00:00:00"

if [ "$genkey" = 1 ] && [ ! -e "$key" ] && [ ! -e "$cert" ]; then
	say "a development signing key: $key, $cert (for your own: FIRMWARE_KEY= FIRMWARE_CERT=)"
	mkdir -p "$(dirname "$key")" "$(dirname "$cert")"
	(umask 077 && faketime -f "$sign_time" openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days 36500 \
		-subj "/CN=luoinit development firmware key/" \
		-addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature" \
		-addext "extendedKeyUsage=codeSigning" \
		-keyout "$key.tmp" -out "$cert.tmp" 2>/dev/null)
	mv "$key.tmp" "$key"
	mv "$cert.tmp" "$cert"
fi
for f in "$key" "$cert"; do
	[ -s "$f" ] || { echo "mkimage.sh: no $f" >&2; exit 1; }
done
kkey=$(cat "$kobj/../.kernel-key" 2>/dev/null || echo none)

# Everything the image depends on.
inputs() {
	echo "kernel $kkey"
	echo "version $version"
	echo "initramfs $([ -n "$cpio" ] && sha256sum < "$cpio" | cut -c1-64)"
	echo "cert $(sha256sum < "$cert" | cut -c1-64)"
	echo "key $(sha256sum < "$key" | cut -c1-64)"
	echo "abi $([ -n "$abi" ] && sha256sum < "$abi" | cut -c1-64)"
	echo "cmdline $cmdline"
	echo "qemu $qemu_version"
	echo "mkimage.sh $(sha256sum < "$here/mkimage.sh" | cut -c1-64)"
	echo "sbsign $(sbsign --version 2>&1 | head -n 1)"
}
stamp=$(inputs | sha256sum | cut -c1-64)
if [ -f "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then
	exit 0
fi
t0=$(date +%s)

# The relink: never under the outer make's flags (VERSION=... on its command
# line would reach the kernel's Makefile through MAKEFLAGS).
unset MAKEFLAGS MFLAGS MAKEOVERRIDES MAKELEVEL
export KBUILD_BUILD_USER=luoinit KBUILD_BUILD_HOST=luoinit
export KBUILD_BUILD_TIMESTAMP="2025-01-01 00:00:00 UTC"
export KBUILD_BUILD_VERSION="$version"
jobs=$(nproc 2>/dev/null || echo 2)
mkdir -p "$(dirname "$work")"
work=$(cd "$(dirname "$work")" && pwd)/$(basename "$work")
log=$work.log
if [ "$(cat "$work/.kernel-key" 2>/dev/null)" != "$kkey" ]; then
	[ -f "$kobj/vmlinux.o" ] ||
		say "$kobj has no object tree (a cache entry without one): the relink builds the kernel whole (10-25 min)"
	say "copy the object tree to $work"
	rm -rf "$work"
	cp -a "$kobj" "$work.tmp"
	mv "$work.tmp" "$work"
	echo "$kkey" > "$work/.kernel-key"
fi
mkdir -p "$work/usr"
if [ -n "$cpio" ]; then
	cmp -s "$cpio" "$work/usr/luoinit-builtin.cpio" || cp "$cpio" "$work/usr/luoinit-builtin.cpio"
elif [ ! -e "$work/usr/luoinit-builtin.cpio" ] || [ -s "$work/usr/luoinit-builtin.cpio" ]; then
	: > "$work/usr/luoinit-builtin.cpio"
fi
K="make -C $src O=$work ARCH=x86 -j$jobs"
fail() { echo "image: FAILED, last lines of $log:" >&2; tail -n 30 "$log" >&2; exit 1; }
: > "$log"
# The built-in command line: only setup.c and the EFI stub read CONFIG_CMDLINE,
# so changing it recompiles those and relinks (Kbuild's per-symbol
# dependencies). The cached kernel has CMDLINE_BOOL=y and an empty CMDLINE.
grep -qx 'CONFIG_CMDLINE_BOOL=y' "$work/.config" ||
	{ echo "mkimage.sh: $work/.config has no CONFIG_CMDLINE_BOOL=y (kernel.config)" >&2; exit 1; }
if ! grep -qxF "CONFIG_CMDLINE=\"$cmdline\"" "$work/.config"; then
	"$src/scripts/config" --file "$work/.config" --set-str CMDLINE "$cmdline"
	$K olddefconfig >> "$log" 2>&1 || fail
	grep -qxF "CONFIG_CMDLINE=\"$cmdline\"" "$work/.config" ||
		{ echo "mkimage.sh: CONFIG_CMDLINE did not take the command line" >&2; exit 1; }
fi
# A fresh link every time: the certificate slot is then empty before the
# insertion below (insert-sys-cert's "already inserted" compares with strncmp).
rm -f "$work/vmlinux.unstripped" "$work/vmlinux"
say "relink $(basename "$out") (version $version$([ -n "$cpio" ] && echo ", initramfs built in"); log $log)"
$K bzImage >> "$log" 2>&1 || fail

# The certificate into the reserved slot of vmlinux.unstripped (the symbols
# are there), then vmlinux, its relocations and the bzImage again from it.
openssl x509 -in "$cert" -outform DER -out "$work/luoinit-trusted.der"
"$work/scripts/insert-sys-cert" -b "$work/vmlinux.unstripped" -c "$work/luoinit-trusted.der" >> "$log" 2>&1 || fail
touch "$work/vmlinux.unstripped"
$K bzImage >> "$log" 2>&1 || fail
# Check that the certificate is in the final vmlinux (the bzImage's payload).
addr=$(nm "$work/vmlinux" | awk '$3 == "system_extra_cert" { print $1 }')
[ -n "$addr" ] || { echo "mkimage.sh: no system_extra_cert in vmlinux (CONFIG_SYSTEM_EXTRA_CERTIFICATE?)" >&2; exit 1; }
# (Kernel addresses are 0xffffffff8.......: the low 32 bits, for sh's arithmetic.)
a=$((0x$(echo "$addr" | cut -c9-16))) off=""
while read -r saddr soff ssize; do
	s=$((0x$(echo "$saddr" | cut -c9-16))) n=$((0x$ssize))
	if [ "$s" -le "$a" ] && [ "$a" -lt $((s + n)) ]; then off=$((0x$soff + a - s)); break; fi
done <<EOF
$(readelf -SW "$work/vmlinux" | sed -n 's/^ *\[ *[0-9]*\] *[^ ]* *PROGBITS *\([0-9a-f]*\) \([0-9a-f]*\) \([0-9a-f]*\) .*/\1 \2 \3/p')
EOF
n=$(stat -c %s "$work/luoinit-trusted.der")
if [ -z "$off" ] || ! dd if="$work/vmlinux" bs=4096 iflag=skip_bytes,count_bytes skip="$off" count="$n" \
	2>/dev/null | cmp -s - "$work/luoinit-trusted.der"; then
	echo "mkimage.sh: the certificate did not land in $work/vmlinux" >&2
	exit 1
fi

# The firmware note after the bzImage's last byte, NUL-padded so that the
# file stays 8-aligned (where sbsign puts the certificate table).
payload=$work/arch/x86/boot/bzImage
if [ -n "$cpio" ]; then
	{
		echo "luoinit-firmware-note 1"
		echo "version=$version"
		echo "cmdline=$cmdline"
		[ -z "$abi" ] || echo "kernel-abi=$(head -n 1 "$abi")"
		[ -z "$qemu_version" ] || echo "qemu=$qemu_version"
	} > "$work/luoinit-note"
	nlen=$(stat -c %s "$work/luoinit-note")
	blen=$(stat -c %s "$payload")
	pad=$(( (8 - (blen + nlen + 16) % 8) % 8 ))
	{
		cat "$payload"
		head -c "$pad" /dev/zero
		cat "$work/luoinit-note"
		printf 'LUOINIT-NOTE'
		printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $((nlen & 255)) $((nlen >> 8 & 255)) $((nlen >> 16 & 255)) $((nlen >> 24 & 255)))"
	} > "$work/bzImage.noted"
	payload=$work/bzImage.noted
fi

# Sign: an Authenticode signature in the PE's certificate table. sbsign
# puts the time into it (a signingTime attribute): the build's fixed one, so
# that the same inputs sign to the same bytes (faketime; the kernel checks
# no times).
mkdir -p "$(dirname "$out")"
faketime -f "$sign_time" sbsign --key "$key" --cert "$cert" --output "$out.tmp" "$payload" >> "$log" 2>&1 || fail
if [ -n "$abi" ]; then cp "$abi" "$out.abi.tmp"; mv "$out.abi.tmp" "$out.abi"; fi
mv "$out.tmp" "$out"
echo "$stamp" > "$out.stamp"
say "$out: $(stat -c %s "$out") bytes, version $version, signed by $(openssl x509 -in "$cert" -noout -subject | sed 's/^subject= *//'), $(( $(date +%s) - t0 )) s"
