# Board qemu-x86_64: kernel, initramfs, state disk, the outer QEMU.
include board/$(BOARD)/guest/guest.mk

BOARD_DIR := board/$(BOARD)

# --- the board kernel: tinyconfig + kernel.config, out of tree in $(BB)/kernel-obj.
# The script runs every time: it leaves bzImage alone unless its cache key
# (source version, fragment, script, toolchain) changed, and then takes the
# build from the cache outside the checkout when it can (initramfs/cache.sh).
# Not under this make's flags: `make image VERSION=x` would pass VERSION=x
# through MAKEFLAGS to the kernel's own Makefile.
KBUILD_ENV := env -u MAKEFLAGS -u MFLAGS -u MAKEOVERRIDES -u MAKELEVEL
$(BB)/bzImage: $(KSRC_STAMP) FORCE | deps-ok
	@$(KBUILD_ENV) sh $(BOARD_DIR)/build-kernel.sh $(KSRC) $(BB)

.PHONY: kernel
kernel: $(BB)/bzImage

# --- the kernel's live-update ABI (init/update/kabi.h), beside it as KERNEL.abi:
# copied into the initramfs (/etc/luoinit/kernel-abi) and next to every update
# target (/state/boot/vmlinuz.abi). Read from the source and the .config.
$(BB)/bzImage.abi: $(BB)/bzImage $(BOARD_DIR)/kernel-abi.sh
	@sh $(BOARD_DIR)/kernel-abi.sh $(KSRC) --config $(BB)/kernel-obj/.config \
		--release "$$(cat $(BB)/kernel.release)" > $@.tmp
	@mv $@.tmp $@

# --- a probe initramfs whose /init prints a marker and powers off: checks the
# kernel reaches user space, and decides whether KVM really works here.
$(BB)/probe/init: $(BOARD_DIR)/probe-init.c | deps-ok
	@mkdir -p $(dir $@)
	$(MUSL_CC) -static -Os -Wall -Wextra -Werror -o $@ $<
	@strip $@
$(BB)/probe-initramfs.img: $(BB)/probe/init $(GEN_INIT_CPIO)
	@printf 'dir /dev 0755 0 0\nnod /dev/console 0600 0 0 c 5 1\nfile /init %s 0755 0 0\n' \
		$(abspath $<) > $(BB)/probe/list
	@$(GEN_INIT_CPIO) -t 1735689600 -o $@ $(BB)/probe/list
# The cached probe: kvm or tcg (rerun it with `rm build/qemu-x86_64/accel`).
$(BB)/accel: $(BB)/bzImage $(BB)/probe-initramfs.img
	@sh $(BOARD_DIR)/probe-accel.sh $(HOST_QEMU) $(BB)/bzImage $(BB)/probe-initramfs.img > $@.tmp
	@mv $@.tmp $@

# --- signed firmware images (README: Signed firmware images) ---
# make image: $(IMAGE_OUT), the board kernel relinked with the initramfs built
# in and VERSION (uname -v: "#VERSION ..."), the certificate FIRMWARE_CERT in
# its builtin trusted keys, signed with FIRMWARE_KEY (sbsign). Without your
# own key, a development key is made in $(B)/keys/ on first use.
FIRMWARE_KEY  ?= $(B)/keys/firmware.key
FIRMWARE_CERT ?= $(B)/keys/firmware.crt
VERSION       ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
IMAGE_OUT     ?= $(BB)/firmware.efi
IMAGE_WORK    ?= $(BB)/image-obj
MKIMAGE = sh $(BOARD_DIR)/mkimage.sh --src $(KSRC) --kernel-obj $(BB)/kernel-obj \
	--key $(FIRMWARE_KEY) --cert $(FIRMWARE_CERT) --version "$(VERSION)" --abi $(BB)/bzImage.abi \
	$(if $(filter $(B)/keys/firmware.key,$(FIRMWARE_KEY)),--genkey)
$(IMAGE_OUT): $(BB)/bzImage $(BB)/bzImage.abi $(INITRAMFS_CPIO) $(FIRMWARE_CMDLINE_FILE) FORCE | deps-ok
	@$(MKIMAGE) --work $(IMAGE_WORK) --initramfs $(INITRAMFS_CPIO) --qemu $(QEMU_BIN) \
		--cmdline "$$(cat $(FIRMWARE_CMDLINE_FILE))" $@
# The same kernel without a built-in initramfs, signed the same way: what
# `update kernel= initrd=` loads (the state disk's boot/vmlinuz), since the
# kernel refuses an unsigned one (KEXEC_SIG_FORCE).
$(BB)/bzImage.signed: $(BB)/bzImage $(BB)/bzImage.abi FORCE | deps-ok
	@$(MKIMAGE) --work $(BB)/signed-obj --initramfs "" $@

.PHONY: image
image: $(IMAGE_OUT)

# --- the state disk: ext4 labelled luoinit-state, made without root (mke2fs -d).
STATE_IMG ?= $(BB)/state.img
STATE_SIZE ?= 3G
STATE_INPUTS := $(BOARD_DIR)/mkstate.sh $(BOARD_DIR)/vmconf.json $(HEARTBEAT) $(BB)/bzImage.signed \
	$(INITRAMFS)
$(BB)/state.img: $(STATE_INPUTS)
	@sh $(BOARD_DIR)/mkstate.sh $@ $(STATE_SIZE) $(BOARD_DIR)/vmconf.json $(HEARTBEAT) \
		$(BB)/bzImage.signed $(INITRAMFS)

.PHONY: state
state: $(BB)/state.img

# --- running the appliance (board/qemu-x86_64/qemu.sh). The variables let tests
# run their own copy: make start STATE_IMG=... MGMT_SOCK=... CONSOLE_LOG=... QEMU_PIDFILE=...
MGMT_SOCK    ?= $(BB)/mgmt.sock
CONSOLE_LOG  ?= $(BB)/console.log
QEMU_PIDFILE ?= $(BB)/qemu.pid
QEMU_APPEND  ?=
# kvm|tcg, or the file holding the probe's answer
ACCEL        ?= $(BB)/accel
# No SVM for the appliance under TCG: KVM nested on TCG's emulated SVM ran the
# heartbeat, but the appliance then stalled now and then in the update tests;
# the inner VMs run under TCG, as environment.md expects. QEMU_CPU=max for KVM.
QEMU_CPU     ?= max,svm=off
# --- networking (issue 13): the appliance's uplink is -netdev dgram; its
# frames go to 127.0.0.1:BOARD_NET_PEER_PORT, frames to 127.0.0.1:BOARD_NET_PORT
# come in. Both are written to NET_PORTS_FILE (tests/netwatch.py reads it).
BOARD_NET_PORT      ?= 10100
BOARD_NET_PEER_PORT ?= 10101
NET_PORTS_FILE      ?= $(BB)/net-ports
QEMU_SH_NET = --net-port $(BOARD_NET_PORT) --net-peer-port $(BOARD_NET_PEER_PORT) --net-ports $(NET_PORTS_FILE)
# --- end of networking ---
# --- the boot disk (README "Boot assessment"): GPT with an EFI system
# partition: systemd-boot and firmware.efi with its boot entry. luoinit adds
# and assesses the entries of later firmware on it.
ESP_IMG  ?= $(BB)/esp.img
ESP_SIZE ?= 256
$(BB)/esp.img: $(BOARD_DIR)/mkesp.sh $(IMAGE_OUT) | deps-ok
	@rm -f $@.vars
	@sh $(BOARD_DIR)/mkesp.sh $@ $(ESP_SIZE) $(IMAGE_OUT) "$(VERSION)"
.PHONY: esp
esp: $(BB)/esp.img

# How the appliance boots: BOARD_BOOT=uefi (OVMF, systemd-boot, the boot
# entry's command line: QEMU_APPEND is refused), or direct: QEMU loads
# BOARD_KERNEL, the firmware image (its initramfs built in), or
# BOARD_KERNEL=$(BB)/bzImage.signed BOARD_INITRD=$(INITRAMFS), the kernel and
# initramfs apart as before, with QEMU_APPEND added to the command line.
BOARD_BOOT   ?= uefi
BOARD_KERNEL ?= $(IMAGE_OUT)
BOARD_INITRD ?= none
ifeq ($(BOARD_BOOT),uefi)
BOARD_BOOT_DEPS := $(ESP_IMG)
QEMU_SH_BOOT := --esp $(ESP_IMG)
else
BOARD_BOOT_DEPS := $(BOARD_KERNEL) $(filter-out none,$(BOARD_INITRD))
QEMU_SH_BOOT :=
endif
BOARD_RUN_DEPS := $(B)/luoinit $(BOARD_BOOT_DEPS) $(STATE_IMG) $(BB)/accel
QEMU_SH = sh $(BOARD_DIR)/qemu.sh $(1) --dir $(BB) $(QEMU_SH_BOOT) --kernel $(BOARD_KERNEL) --initrd $(BOARD_INITRD) \
	--state $(STATE_IMG) --socket $(MGMT_SOCK) --console $(CONSOLE_LOG) --pidfile $(QEMU_PIDFILE) \
	--accel $(ACCEL) --cpu $(QEMU_CPU) --luoinit $(B)/luoinit --append "$(QEMU_APPEND)" $(QEMU_SH_NET)

run: $(BOARD_RUN_DEPS)
	@$(call QEMU_SH,run)
start: $(BOARD_RUN_DEPS)
	@$(call QEMU_SH,start)
# No dependencies: stopping never builds anything.
stop:
	@$(call QEMU_SH,stop)

BOARD_TEST_DEPS := $(BB)/bzImage $(BB)/bzImage.abi $(INITRAMFS) $(BB)/state.img $(BB)/accel $(HEARTBEAT) \
	$(IMAGE_OUT) $(BB)/bzImage.signed $(BB)/esp.img
