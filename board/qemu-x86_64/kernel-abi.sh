#!/bin/sh
# Print the live-update ABI of a kernel as one line, e.g.
#   kho=kho-v4 luo=luo-v5 memfd=memfd-v2 release=7.2.13
#   kernel-abi.sh KSRC [--config DOTCONFIG] [--release RELEASE]
# The values are the compatible strings the kernel writes into, and checks in,
# the data it hands over at a kexec (KHO's root FDT, LUO's header, memfd's file
# handler); the kernel documents no compatibility across different strings, so
# luoinit carries memfds only between kernels whose lines agree (init/update/kabi.h).
# With --config, a part the kernel is built without prints as `none`.
# A define that is not a plain string literal is an error, never a guess.
set -eu
me=kernel-abi.sh
ksrc=${1:?usage: $me KSRC [--config DOTCONFIG] [--release RELEASE]}
shift
config=''
release=''
while [ $# -gt 0 ]; do
	case $1 in
	--config) config=${2:?}; shift 2 ;;
	--release) release=${2:?}; shift 2 ;;
	*) echo "$me: unknown argument $1" >&2; exit 2 ;;
	esac
done
if [ ! -f "$ksrc/Makefile" ] || [ ! -d "$ksrc/kernel" ]; then
	echo "$me: $ksrc: not a kernel source tree" >&2
	exit 1
fi
[ -z "$config" ] || [ -f "$config" ] || { echo "$me: $config: no such file" >&2; exit 1; }

# Where the strings have lived (6.16 to 7.2): include/linux/kho/abi/,
# include/linux/liveupdate/abi/, or the .c files themselves.
files=$(find "$ksrc/include/linux/kho" "$ksrc/include/linux/liveupdate" "$ksrc/kernel/liveupdate" \
	"$ksrc/kernel/kexec_handover.c" "$ksrc/mm/memfd_luo.c" \( -name '*.h' -o -name '*.c' \) 2>/dev/null |
	LC_ALL=C sort)

# compat NAME...: the one string the first defined NAME has, or `none`.
def='^[[:space:]]*#[[:space:]]*define[[:space:]]+'
lit='[[:space:]]+"([A-Za-z0-9._,+-]+)"[[:space:]]*(/[*].*[*]/)?[[:space:]]*$'
compat() {
	for name in "$@"; do
		[ -n "$files" ] || break
		# shellcheck disable=SC2086 # $files: paths without spaces, one per line
		lines=$(grep -hE "$def${name}([[:space:]]|\$)" $files || true)
		[ -n "$lines" ] || continue
		vals=$(printf '%s\n' "$lines" | sed -nE "s@$def${name}$lit@\\1@p")
		if [ "$(printf '%s\n' "$vals" | grep -c .)" != "$(printf '%s\n' "$lines" | wc -l)" ]; then
			echo "$me: $name is not a plain string literal in $ksrc; teach $me the new form:" >&2
			printf '  %s\n' "$lines" >&2
			exit 1
		fi
		vals=$(printf '%s\n' "$vals" | LC_ALL=C sort -u)
		if [ "$(printf '%s\n' "$vals" | wc -l)" != 1 ]; then
			echo "$me: $name has several values in $ksrc: $(printf "%s\n" "$vals" | tr "\n" " ")" >&2
			exit 1
		fi
		echo "$vals"
		return 0
	done
	echo none
}

# built SYMBOL: false only when a .config is given and SYMBOL is not =y.
built() {
	[ -z "$config" ] || grep -qx "$1=y" "$config"
}

kho=$(compat KHO_FDT_COMPATIBLE)
luo=$(compat LUO_ABI_COMPATIBLE LUO_FDT_COMPATIBLE)
memfd=$(compat MEMFD_LUO_FH_COMPATIBLE)
built CONFIG_KEXEC_HANDOVER || kho=none
built CONFIG_LIVEUPDATE || luo=none
built CONFIG_LIVEUPDATE_MEMFD || memfd=none
case $release in
*[!A-Za-z0-9._+-]*) echo "$me: release '$release': unexpected characters" >&2; exit 1 ;;
esac
echo "kho=$kho luo=$luo memfd=$memfd${release:+ release=$release}"
