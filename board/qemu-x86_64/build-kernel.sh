#!/bin/sh
# Build the board kernel out of tree: tinyconfig + kernel.config.
#   build-kernel.sh SRCDIR OUTDIR
# Produces OUTDIR/bzImage, OUTDIR/modules/lib/modules/<release>/ (depmod'ed),
# OUTDIR/kernel.release; objects in OUTDIR/kernel-obj. Log: OUTDIR/kernel.log.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=${1:?usage: build-kernel.sh SRCDIR OUTDIR}
out=${2:?}
mkdir -p "$out"
out=$(cd "$out" && pwd)
obj=$out/kernel-obj
frag=$here/kernel.config
log=$out/kernel.log
jobs=$(nproc 2>/dev/null || echo 2)
# Reproducible version string (no user/host/date of the build machine).
export KBUILD_BUILD_USER=luoinit KBUILD_BUILD_HOST=luoinit
export KBUILD_BUILD_TIMESTAMP="2025-01-01 00:00:00 UTC"
K="make -C $src O=$obj ARCH=x86"

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
cp "$obj/arch/x86/boot/bzImage" "$out/bzImage.tmp"
mv "$out/bzImage.tmp" "$out/bzImage"
echo "$rel" > "$out/kernel.release"
step "done: $out/bzImage ($(stat -c %s "$out/bzImage") bytes, release $rel, $(( $(date +%s) - t0 )) s)"
