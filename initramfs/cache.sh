# shellcheck shell=sh
# Build cache outside the checkout, for the long builds (the board kernel,
# our QEMU). Sourced by initramfs/build-qemu.sh and the board's
# build-kernel.sh; not run on its own.
#
# An entry is a directory $LUOINIT_CACHE/KIND/KEY, KEY the sha256 of a text
# naming every input of the build (source version, config, patches, the
# build script, compiler and library versions): a changed input is a new key,
# so a stale entry is never used. Entries are written whole (a temporary
# directory renamed into place) and never changed after. The newest
# CACHE_KEEP entries of each kind are kept.
#
# Its variables start with _c: the scripts that source it use plain names.
# LUOINIT_CACHE: the cache's directory, default ${XDG_CACHE_HOME:-~/.cache}/luoinit;
# "off" builds without it.

CACHE_FORMAT=1
CACHE_KEEP=${CACHE_KEEP:-3}

cache_root() {
	if [ -n "${LUOINIT_CACHE:-}" ]; then
		echo "$LUOINIT_CACHE"
	elif [ -n "${XDG_CACHE_HOME:-}" ]; then
		echo "$XDG_CACHE_HOME/luoinit"
	elif [ -n "${HOME:-}" ]; then
		echo "$HOME/.cache/luoinit"
	else
		echo off
	fi
}

# cache_key: the key of the input description read from stdin.
cache_key() {
	{ echo "cache-format $CACHE_FORMAT"; cat; } | sha256sum | cut -c1-64
}

# cache_toolchain CC: the compiler and binutils, as lines for an input description.
cache_toolchain() {
	echo "cc $1 $("$1" --version 2>/dev/null | head -n 1)"
	echo "ld $(ld --version 2>/dev/null | head -n 1)"
}

# cache_get KIND KEY: prints the entry's directory when there is one.
cache_get() {
	_cr=$(cache_root)
	[ "$_cr" != off ] && [ -f "$_cr/$1/$2/.complete" ] || return 1
	touch "$_cr/$1/$2" 2>/dev/null || true # most recently used: kept longest
	echo "$_cr/$1/$2"
}

# cache_put KIND KEY DIR: store a copy of DIR. A cache that cannot be
# written is reported and skipped: the build itself succeeded.
cache_put() {
	_cr=$(cache_root)
	[ "$_cr" != off ] || return 0
	_cd=$_cr/$1/$2
	[ -f "$_cd/.complete" ] && return 0
	_ct=$_cr/$1/.tmp.$2.$$
	if ! { mkdir -p "$_cr/$1" && rm -rf "$_ct" && cp -R "$3" "$_ct" && touch "$_ct/.complete"; } 2>/dev/null; then
		rm -rf "$_ct" 2>/dev/null
		echo "cache: cannot write $_cr/$1 (set LUOINIT_CACHE, or =off): not cached" >&2
		return 0
	fi
	# Another build may have stored the same entry meanwhile: keep either.
	mv -T "$_ct" "$_cd" 2>/dev/null || rm -rf "$_ct"
	# Keep the newest entries only (names are hex digests: no odd characters),
	# and drop what killed builds left behind.
	# shellcheck disable=SC2012
	ls -1t "$_cr/$1" | tail -n +$((CACHE_KEEP + 1)) | while read -r _co; do
		rm -rf "${_cr:?}/$1/$_co"
	done
	find "$_cr/$1" -maxdepth 1 -name '.tmp.*' -mmin +240 -exec rm -rf {} + 2>/dev/null || true
	echo "cache: stored $_cd"
}

# cache_copy SRC DST: DST becomes a fresh copy of SRC (new mtimes, so make
# sees the files as new), replaced whole.
cache_copy() {
	rm -rf "$2.tmp"
	cp -R "$1" "$2.tmp"
	rm -f "$2.tmp/.complete"
	rm -rf "$2"
	mv "$2.tmp" "$2"
}
