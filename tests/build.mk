# Test tiers: unit (cmocka, ASan+UBSan), host (luoinit --host + real QEMU under
# TCG, pytest), board (the appliance booted under TCG, pytest). Each runs alone;
# `make check` runs them all and ends with one "N passed, N failed" line.

PYTHON   := /usr/bin/python3
# QEMU's own QMP client library (Debian's qemu source), for test_qemu_qmp.py;
# our QEMU too: tests/host/test_ram_backing.py runs it beside Debian's.
QEMU_QMP := $(B)/qemu-qmp
HOST_TEST_DEPS := $(HEARTBEAT) $(QEMU_QMP)/.stamp $(OUR_QEMU)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRCS))
# Everything but the programs' main()s, sanitized, for the unit tests.
LIB_HOST_OBJS := $(patsubst %.c,$(B)/host/%.o,$(VMCONF_LIB_SRCS) $(INIT_LIB_SRCS))

$(B)/tests/%: $(B)/host/tests/unit/%.o $(LIB_HOST_OBJS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(call PKG_LIBS,$(HOST_PKGS)) $(HOST_CC) $(HOST_SAN) -o $@ $^ $$pc -lcmocka

# Host-built CLIs (sanitized) so the CLI tests also run under ASan.
$(B)/host/vmconf-cli: $(patsubst %.c,$(B)/host/%.o,$(VMCONF_SRCS))
	@echo "  LD      $@"
	$(Q)$(call PKG_LIBS,$(HOST_PKGS)) $(HOST_CC) $(HOST_SAN) -o $@ $^ $$pc -lcmocka

# python/qemu/qmp and qmp-shell as Debian ships them, from the same qemu
# source our QEMU is built from (initramfs/qemu-src.sh: one download).
$(QEMU_QMP)/.stamp: | deps-ok
	@src=$$(sh initramfs/qemu-src.sh unpack $(B)/qemu-src | tail -n 1) && \
	rm -rf $(QEMU_QMP) && mkdir -p $(QEMU_QMP)/python/qemu $(QEMU_QMP)/scripts/qmp && \
	cp -r $$src/python/qemu/qmp $(QEMU_QMP)/python/qemu/ && \
	cp $$src/scripts/qmp/qmp-shell $(QEMU_QMP)/scripts/qmp/ && \
	cat $$src/.debian-version > $(QEMU_QMP)/.source && touch $@

RESULTS := $(B)/results
export B BB BOARD PYTHON

check-unit: $(UNIT_BINS) $(B)/vmconf $(B)/host/vmconf-cli
	@mkdir -p $(RESULTS)
	@$(PYTHON) tests/run.py --results $(RESULTS) unit $(UNIT_BINS)

check-host: all $(HOST_TEST_DEPS)
	@mkdir -p $(RESULTS)
	@$(PYTHON) tests/run.py --results $(RESULTS) host tests/host

check-board: all $(BOARD_TEST_DEPS)
	@mkdir -p $(RESULTS)
	@$(PYTHON) tests/run.py --results $(RESULTS) board tests/board

# Run every tier even when one fails, then print the total; fail if any tier
# failed, left no result (e.g. its build failed) or ran no test.
check:
	@rm -rf $(RESULTS); mkdir -p $(RESULTS)
	@rc=0; for t in check-unit check-host check-board; do \
		$(MAKE) --no-print-directory $$t || rc=1; done; \
	$(PYTHON) tests/run.py --results $(RESULTS) --summary unit host board; s=$$?; \
	[ $$rc = 0 ] && [ $$s = 0 ]

# The live-update benchmark (slow: boots the board once per size and mode).
bench: all $(BOARD_TEST_DEPS)
	@$(PYTHON) tests/bench/bench.py

# Twenty live updates in a row (SOAK_UPDATES), checking the guest and the init's fds.
soak: all $(BOARD_TEST_DEPS)
	@$(PYTHON) tests/bench/soak.py
