# luoinit: the one entry point. See README.md.
#   make              static musl luoinit + vmconf (build/luoinit, build/vmconf)
#   make run          build the board and boot the appliance in the foreground
#   make check        every test (unit, host-level QEMU, board boot and live update)
#   make check-unit   unit tests under ASan/UBSan (fast)
#   make check-host   luoinit --host with real QEMU under TCG
#   make qemu         our QEMU for the appliance (build/qemu; cached, initramfs/build-qemu.sh)
#   make qemu-src     Debian's qemu source, unpacked as it is in build/qemu-src
#   make bench        live-update benchmark on the board
#   make lint         the layers' includes, cppcheck + clang-tidy
#   make fuzz         libFuzzer (clang, ASan+UBSan) on vmconf, ctl_proto and QMP for
#                     FUZZ_TIME s each (default 60); fails on any finding (tests/fuzz/fuzz.mk)

BOARD    ?= qemu-x86_64
B        := build
BB       := $(B)/$(BOARD)
SYSROOT  := $(abspath $(B)/sysroot)
KHDR     := $(abspath $(B)/linux-headers)
TOP      := $(CURDIR)
# make V=1 shows the full commands
Q        := $(if $(V),,@)

# Truncated messages are acceptable (every buffer is bounded): no format-truncation.
WARN     := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter -Wno-format-truncation
CSTD     := -std=gnu11 -D_GNU_SOURCE
MUSL_CC  := musl-gcc
MUSL_CFLAGS := $(CSTD) $(WARN) -Os -g -ffunction-sections -fdata-sections \
               -I$(SYSROOT)/include -Ivmconf -Iinit
MUSL_LDFLAGS := -static -Wl,--gc-sections -L$(SYSROOT)/lib
MUSL_LIBS := -lkmod -lblkid -ljson-c

HOST_CC  ?= gcc
HOST_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# idirafter: only headers the system lacks (linux/liveupdate.h) come from the kernel's UAPI.
HOST_CFLAGS := $(CSTD) $(WARN) -O1 -g $(HOST_SAN) -Ivmconf -Iinit -idirafter $(KHDR)/include
# The system's libraries for the host (sanitized) builds, lint and fuzz. Their
# flags are asked of pkg-config when a recipe runs, never when this file is
# parsed: on a fresh machine deps-ok installs them (and pkg-config) only after
# that. PKG_CFLAGS/PKG_LIBS open a recipe line: they set $$pc (and fail on a
# missing package) for the command after them.
HOST_PKGS := json-c libkmod blkid
PKG_CFLAGS = pc=$$(pkg-config --cflags $(1)) &&
PKG_LIBS   = pc=$$(pkg-config --libs $(1)) &&

.PHONY: all deps sysroot headers run start stop check check-unit check-host check-board soak \
        bench lint fuzz clean distclean install
all: $(B)/luoinit $(B)/vmconf

# For vendors with their own image builders (Buildroot, Yocto, mkosi):
#   make install DESTDIR=... [PREFIX=/usr] [INSTALL_INIT=1]
# installs the static luoinit and vmconf, the module list and a sample VM
# config under /etc/luoinit (never over an existing one), and with
# INSTALL_INIT=1 luoinit as /init too. The kernel options a board needs are
# in the README ("Using luoinit in your own image").
PREFIX ?= /usr
install: $(B)/luoinit $(B)/vmconf
	install -D -m 0755 $(B)/luoinit $(DESTDIR)$(PREFIX)/sbin/luoinit
	install -D -m 0755 $(B)/vmconf $(DESTDIR)$(PREFIX)/bin/vmconf
	install -d -m 0755 $(DESTDIR)/etc/luoinit
	test -e $(DESTDIR)/etc/luoinit/modules || \
		install -m 0644 board/$(BOARD)/modules $(DESTDIR)/etc/luoinit/modules
	test -e $(DESTDIR)/etc/luoinit/vmconf.json || \
		install -m 0644 board/$(BOARD)/initramfs-vmconf.json $(DESTDIR)/etc/luoinit/vmconf.json
	$(if $(INSTALL_INIT),install -m 0755 $(B)/luoinit $(DESTDIR)/init)

deps:
	@sh initramfs/deps.sh

include vmconf/build.mk
include init/build.mk
include initramfs/build.mk
include board/$(BOARD)/board.mk
include tests/build.mk
include tests/fuzz/fuzz.mk

# Static objects and host (sanitized) objects, one rule each.
$(B)/musl/%.o: %.c $(SYSROOT_STAMP) $(KHDR_STAMP) | deps-ok
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(MUSL_CC) $(MUSL_CFLAGS) -MMD -MP -c $< -o $@
$(B)/host/%.o: %.c $(KHDR_STAMP) | deps-ok
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(call PKG_CFLAGS,$(HOST_PKGS)) $(HOST_CC) $(HOST_CFLAGS) $$pc -MMD -MP -c $< -o $@

.PHONY: deps-ok
deps-ok:
	@sh initramfs/deps.sh

# A prerequisite that is never up to date: the target's recipe always runs
# (and decides itself whether anything changed). Phony: with .SECONDARY
# below, a missing plain FORCE would not make its target's recipe run.
.PHONY: FORCE
FORCE:

.SECONDARY:

-include $(shell find $(B)/musl $(B)/host -name '*.d' 2>/dev/null)

clean:
	rm -rf $(B)/musl $(B)/host $(B)/luoinit $(B)/vmconf $(B)/tests
distclean:
	rm -rf $(B)

# Static analysis of our own code (not of the sysroot's libraries).
LINT_SRCS := $(INIT_SRCS) $(VMCONF_SRCS)
lint: $(SYSROOT_STAMP) $(KHDR_STAMP) | deps-ok
	sh tests/check_layers.sh
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
		--inline-suppr --std=c11 -D_GNU_SOURCE -Iinit -Ivmconf $(LINT_SRCS)
	$(call PKG_CFLAGS,json-c) clang-tidy --quiet --warnings-as-errors='*' \
		--checks='-*,clang-analyzer-*,bugprone-*,-bugprone-easily-swappable-parameters,-bugprone-reserved-identifier,-bugprone-narrowing-conversions,-bugprone-assignment-in-if-condition,-clang-analyzer-security.insecureAPI.*,-bugprone-implicit-widening-of-multiplication-result,-clang-analyzer-valist.Uninitialized' \
		$(LINT_SRCS) -- $(CSTD) -Iinit -Ivmconf -idirafter $(KHDR)/include $$pc
