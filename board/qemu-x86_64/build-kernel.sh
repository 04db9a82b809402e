#!/bin/sh
# Build the board kernel out of tree: tinyconfig + kernel.config.
#   build-kernel.sh SRCDIR OUTDIR
#   build-kernel.sh inputs SRCDIR   print what the cache key is made of
# Produces OUTDIR/bzImage, OUTDIR/modules/lib/modules/<release>/ (depmod'ed),
# OUTDIR/kernel.release; objects in OUTDIR/kernel-obj. Log: OUTDIR/kernel.log.
# Cached outside the checkout (initramfs/cache.sh), keyed by the source's
# version, kernel.config, this script and the toolchain: an unchanged OUTDIR
# is left alone (so make may call this every time), a cached build is copied
# (bzImage, modules, kernel-obj/.config and usr/gen_init_cpio, and the whole
# object tree as kernel-obj.tar.zst, which a firmware image's relink needs:
# board/qemu-x86_64/mkimage.sh), anything else is built.
# The plain bzImage has an empty built-in initramfs (kernel.config's
# CONFIG_INITRAMFS_SOURCE names kernel-obj/usr/luoinit-builtin.cpio) and an
# empty reserved certificate slot: mkimage.sh fills both.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=initramfs/cache.sh
. "$here/../../initramfs/cache.sh"
frag=$here/kernel.config

# Everything the result depends on: the cache key is the hash of this text.
inputs() {
	echo "kernel-src $(cat "$1/.debian-version")"
	echo "kernel.config $(sha256sum < "$frag" | cut -c1-64)"
	echo "build-kernel.sh $(sha256sum < "$here/build-kernel.sh" | cut -c1-64)"
	cache_toolchain gcc # Kbuild's CC
}

if [ "${1:-}" = inputs ]; then
	inputs "${2:?usage: build-kernel.sh inputs SRCDIR}"
	exit 0
fi
src=${1:?usage: build-kernel.sh SRCDIR OUTDIR}
out=${2:?}
mkdir -p "$out"
out=$(cd "$out" && pwd)
obj=$out/kernel-obj
log=$out/kernel.log
jobs=$(nproc 2>/dev/null || echo 2)
# Reproducible version string (no user/host/date of the build machine).
export KBUILD_BUILD_USER=luoinit KBUILD_BUILD_HOST=luoinit
export KBUILD_BUILD_TIMESTAMP="2025-01-01 00:00:00 UTC"
K="make -C $src O=$obj ARCH=x86"
key=$(inputs "$src" | cache_key)

# What the cache holds of a build, and putting it back.
save() {
	e=$out/.kernel-cache
	rm -rf "$e"
	mkdir -p "$e/usr"
	cp "$out/bzImage" "$out/kernel.release" "$e/"
	cp -R "$out/modules" "$e/modules"
	cp "$obj/.config" "$e/config"
	cp "$obj/usr/gen_init_cpio" "$e/usr/gen_init_cpio"
	# The object tree, for relinking (relocate() above, on restore).
	echo "$src" > "$e/kernel-src-path"
	echo "kernel: caching the object tree"
	tar -C "$obj" -cf - . | zstd -q -1 -T0 -o "$e/kernel-obj.tar.zst" || rm -f "$e/kernel-obj.tar.zst"
	cache_put kernel "$key" "$e"
	rm -rf "$e"
}
# The object tree's Kbuild files name the source and the tree itself by
# their absolute paths (the commands in the .cmd files, which Kbuild compares
# with the ones it would run now; the tree's Makefile). A tree cached by a
# checkout elsewhere gets them rewritten, each file's mtime kept, so that a
# relink there stays a relink instead of a whole build.
relocate() { # OLD NEW
	[ "$1" = "$2" ] && return 0
	case "$1$2" in *[\\\|\&]*|"") return 1 ;; esac
	grep -rlF --include='*.cmd' --include=Makefile -e "$1" "$obj" | while IFS= read -r f; do
		sed "s|$1|$2|g" "$f" > "$f.reloc" && touch -r "$f" "$f.reloc" && mv "$f.reloc" "$f" || exit 1
	done
}
restore() {
	if [ -f "$1/kernel-obj.tar.zst" ]; then
		rm -rf "$obj"
		mkdir -p "$obj"
		# Where the tree was built: its generated Makefile says.
		if zstd -q -d -c "$1/kernel-obj.tar.zst" | tar -C "$obj" -xf - &&
		   old_obj=$(sed -n 's/^export KBUILD_OUTPUT = //p' "$obj/Makefile") &&
		   old_src=$(sed -n 's|^include \(.*\)/Makefile$|\1|p' "$obj/Makefile") &&
		   relocate "$old_src" "$src" && relocate "$old_obj" "$obj"; then
			[ "$old_src" = "$src" ] || echo "kernel: the cached object tree moved from $old_src to $src"
		else
			echo "kernel: the cached object tree could not be restored: a firmware image relinks from scratch" >&2
			rm -rf "$obj"
		fi
	fi
	mkdir -p "$obj/usr"
	[ -e "$obj/usr/luoinit-builtin.cpio" ] || : > "$obj/usr/luoinit-builtin.cpio"
	rm -rf "$out/modules"
	cp -R "$1/modules" "$out/modules"
	cp "$1/kernel.release" "$out/kernel.release"
	cp "$1/config" "$obj/.config"
	cp "$1/usr/gen_init_cpio" "$obj/usr/gen_init_cpio"
	# bzImage last: make takes it as the sign of a finished kernel.
	cp "$1/bzImage" "$out/bzImage.tmp"
	mv "$out/bzImage.tmp" "$out/bzImage"
	echo "$key" > "$out/.kernel-key"
	rm -f "$out/.kernel-building"
}

if [ -f "$out/bzImage" ] && [ -f "$out/kernel.release" ] && [ -f "$obj/usr/gen_init_cpio" ]; then
	[ "$(cat "$out/.kernel-key" 2>/dev/null)" = "$key" ] && exit 0
	# Built before the cache existed (by this script's previous version, which
	# built the same way): adopted once when newer than the fragment and the
	# source, rather than built again. Never what a failed build left.
	if [ ! -f "$out/.kernel-key" ] && [ ! -f "$out/.kernel-building" ] &&
	   [ "$out/bzImage" -nt "$frag" ] && [ "$out/bzImage" -nt "$src/.stamp" ]; then
		echo "$key" > "$out/.kernel-key"
		save
		exit 0
	fi
fi
if hit=$(cache_get kernel "$key"); then
	restore "$hit"
	echo "kernel: from the cache ($hit)"
	exit 0
fi

# Until the end, what OUTDIR holds matches no key.
rm -f "$out/.kernel-key"
touch "$out/.kernel-building"
: > "$log"
step() { echo "kernel: $*"; echo "=== $*" >> "$log"; }
fail() { echo "kernel: FAILED, last lines of $log:" >&2; tail -n 40 "$log" >&2; exit 1; }

step "configure (tinyconfig + $(basename "$frag"))"
mkdir -p "$obj"
$K tinyconfig >> "$log" 2>&1 || fail
cat "$frag" >> "$obj/.config"
$K olddefconfig >> "$log" 2>&1 || fail

# olddefconfig silently drops a symbol whose dependencies are unmet: check all.
missing=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*)
		grep -qx "$line" "$obj/.config" || { echo "kernel: not in .config: $line" >&2; missing=1; } ;;
	"# CONFIG_"*" is not set")
		sym=${line#"# "}; sym=${sym%" is not set"}
		if grep -q "^$sym=" "$obj/.config"; then echo "kernel: should be off: $sym" >&2; missing=1; fi ;;
	esac
done < "$frag"
[ "$missing" = 0 ] || exit 1
# The plain bzImage's built-in initramfs: empty (mkimage.sh fills it).
mkdir -p "$obj/usr"
: > "$obj/usr/luoinit-builtin.cpio"

step "build bzImage and modules (-j$jobs, log in $log)"
t0=$(date +%s)
$K -j"$jobs" bzImage modules >> "$log" 2>&1 &
pid=$!
# One progress line every 30 s while make runs.
while kill -0 "$pid" 2>/dev/null; do
	i=0
	while [ $i -lt 30 ] && kill -0 "$pid" 2>/dev/null; do sleep 1; i=$((i + 1)); done
	kill -0 "$pid" 2>/dev/null || break
	n=$(find "$obj" -name '*.o' 2>/dev/null | wc -l)
	echo "kernel: ... $(( $(date +%s) - t0 )) s, $n objects"
done
wait "$pid" || fail

step "install modules (depmod)"
rel=$(cat "$obj/include/config/kernel.release")
rm -rf "$out/modules"
$K INSTALL_MOD_PATH="$out/modules" DEPMOD=/sbin/depmod modules_install >> "$log" 2>&1 || fail
rm -f "$out/modules/lib/modules/$rel/build" "$out/modules/lib/modules/$rel/source"
/sbin/depmod -b "$out/modules" "$rel" || fail
[ -s "$out/modules/lib/modules/$rel/modules.dep" ] || { echo "kernel: no modules.dep" >&2; exit 1; }
# The initramfs builder uses the kernel's own cpio writer.
# (A target of its own: with CONFIG_INITRAMFS_SOURCE naming a .cpio, usr/
# does not build it along.)
[ -x "$obj/usr/gen_init_cpio" ] || $K usr_gen_init_cpio >> "$log" 2>&1 || fail
cp "$obj/arch/x86/boot/bzImage" "$out/bzImage.tmp"
mv "$out/bzImage.tmp" "$out/bzImage"
echo "$rel" > "$out/kernel.release"
echo "$key" > "$out/.kernel-key"
rm -f "$out/.kernel-building"
save
step "done: $out/bzImage ($(stat -c %s "$out/bzImage") bytes, release $rel, $(( $(date +%s) - t0 )) s)"
