# The static musl sysroot (libkmod, libblkid, json-c), the kernel source and
# its UAPI headers; the initramfs image of the board.
SYSROOT_STAMP := $(SYSROOT)/.stamp
KHDR_STAMP    := $(KHDR)/.stamp
# Pinned kernel source (the version is pinned in initramfs/kernel-src.sh).
KSRC          := $(abspath $(B)/linux-source-7.2)
KSRC_STAMP    := $(KSRC)/.stamp

$(SYSROOT_STAMP): initramfs/sysroot.sh | deps-ok
	@sh initramfs/sysroot.sh $(SYSROOT)
	@touch $@

# The script touches the stamp only when it (re)unpacks: a new pinned version.
$(KSRC_STAMP): initramfs/kernel-src.sh | deps-ok
	@sh initramfs/kernel-src.sh unpack $(KSRC)

# Also rewritten when the sysroot is rebuilt (it starts from the system's headers).
$(KHDR_STAMP): $(KSRC_STAMP) $(SYSROOT_STAMP)
	@sh initramfs/kernel-src.sh headers $(KSRC) $(KHDR) $(SYSROOT)
	@touch $@

sysroot: $(SYSROOT_STAMP)
headers: $(KHDR_STAMP)

# --- our QEMU (initramfs/build-qemu.sh): Debian's qemu source, our fdset patch,
# only what the appliance needs; relocatable, in $(QEMU_OUT)/usr. The script
# runs every time: it leaves the tree alone unless its cache key (source
# version, patch, script, toolchain, libraries) changed, and then takes the
# build from the cache outside the checkout when it can (initramfs/cache.sh).
QEMU_OUT  := $(B)/qemu
OUR_QEMU  := $(QEMU_OUT)/usr/bin/qemu-system-x86_64
# Debian's: the outer QEMU that runs the board, and the host tests' default.
HOST_QEMU ?= /usr/bin/qemu-system-x86_64

$(OUR_QEMU): FORCE | deps-ok
	@sh initramfs/build-qemu.sh $(QEMU_OUT)

.PHONY: qemu qemu-src
qemu: $(OUR_QEMU)
# Debian's qemu source as it is, unpacked in $(B)/qemu-src (its python/qemu/qmp
# for tests, say); the build unpacks a copy of its own.
qemu-src: | deps-ok
	@sh initramfs/qemu-src.sh unpack $(B)/qemu-src

# --- the initramfs (initramfs/mkinitramfs; reproducible, see its header) ---
# Compression: none|gzip|lz4|zstd (the kernel has all four). lz4: the kexec
# purgatory hashes every loaded byte, and 21 MB hash faster than 64 MB while
# lz4 unpacks about as fast as a plain copy; measured with `make bench`
# (BENCH_FLOOR_ONLY=1, see the README): bare kexec median 5.0 s vs 6.2 s.
INITRAMFS_COMPRESS ?= lz4
INITRAMFS       := $(BB)/initramfs.img
GEN_INIT_CPIO   := $(BB)/kernel-obj/usr/gen_init_cpio
# The QEMU the appliance runs its VMs with: ours (make QEMU_BIN=... for another).
QEMU_BIN        ?= $(OUR_QEMU)
INITRAMFS_INPUTS := initramfs/mkinitramfs $(B)/luoinit $(BB)/bzImage $(BB)/bzImage.abi $(QEMU_BIN) \
                   board/$(BOARD)/initramfs-vmconf.json board/$(BOARD)/modules
# The firmware's kernel command line (README "Signed firmware images"): built
# into the image's kernel, and /etc/luoinit/cmdline in the initramfs so that
# the init knows which part of /proc/cmdline is its image's own. One line,
# from the board's cmdline file unless FIRMWARE_CMDLINE is given; kept in
# $(BB)/firmware-cmdline, rewritten only when it changes (an input below).
FIRMWARE_CMDLINE ?= $(shell grep -v '^\#' board/$(BOARD)/cmdline | tr '\n' ' ' | tr -s ' ' | sed 's/^ //; s/ $$//')
FIRMWARE_CMDLINE_FILE := $(BB)/firmware-cmdline
$(shell mkdir -p $(BB); printf '%s\n' '$(subst ','\'',$(FIRMWARE_CMDLINE))' | cmp -s - $(FIRMWARE_CMDLINE_FILE) || \
        printf '%s\n' '$(subst ','\'',$(FIRMWARE_CMDLINE))' > $(FIRMWARE_CMDLINE_FILE))
INITRAMFS_INPUTS += $(FIRMWARE_CMDLINE_FILE)
# The chosen compression is an input too: rebuild when it changes.
INITRAMFS_OPT   := $(BB)/initramfs.opt
$(shell mkdir -p $(BB); [ "$$(cat $(INITRAMFS_OPT) 2>/dev/null)" = "$(INITRAMFS_COMPRESS)" ] || \
        echo "$(INITRAMFS_COMPRESS)" > $(INITRAMFS_OPT))

$(GEN_INIT_CPIO): $(BB)/bzImage
	@test -x $@ || $(MAKE) -s -C $(KSRC) O=$(abspath $(BB)/kernel-obj) ARCH=x86 usr_gen_init_cpio

$(INITRAMFS): $(INITRAMFS_INPUTS) $(INITRAMFS_OPT) $(GEN_INIT_CPIO)
	@echo "initramfs: $@ ($(INITRAMFS_COMPRESS))"
	@initramfs/mkinitramfs --out $@ --gen-init-cpio $(GEN_INIT_CPIO) --init $(B)/luoinit \
		--modules-root $(BB)/modules --kernel-release $$(cat $(BB)/kernel.release) \
		--config board/$(BOARD)/initramfs-vmconf.json --modules-list board/$(BOARD)/modules \
		--qemu $(QEMU_BIN) --compress $(INITRAMFS_COMPRESS) --list-out $(BB)/initramfs.list \
		--kernel-abi $(BB)/bzImage.abi --cmdline $(FIRMWARE_CMDLINE_FILE)
	@echo "initramfs: $$(stat -c %s $@) bytes"

# The same initramfs uncompressed, for a firmware image's built-in one (the
# bzImage compresses it with the kernel): board.mk's `make image`.
INITRAMFS_CPIO  := $(BB)/initramfs.cpio
$(INITRAMFS_CPIO): $(INITRAMFS_INPUTS) $(GEN_INIT_CPIO)
	@initramfs/mkinitramfs --out $@ --gen-init-cpio $(GEN_INIT_CPIO) --init $(B)/luoinit \
		--modules-root $(BB)/modules --kernel-release $$(cat $(BB)/kernel.release) \
		--config board/$(BOARD)/initramfs-vmconf.json --modules-list board/$(BOARD)/modules \
		--qemu $(QEMU_BIN) --compress none --kernel-abi $(BB)/bzImage.abi --cmdline $(FIRMWARE_CMDLINE_FILE)

.PHONY: initramfs
initramfs: $(INITRAMFS)
