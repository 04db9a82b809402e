# Test tiers: unit (cmocka, ASan+UBSan), host (luoinit --host + real QEMU under
# TCG, pytest), board (the appliance booted under TCG, pytest). Each runs alone;
# `make check` runs them all and ends with one "N passed, N failed" line.

PYTHON   := /usr/bin/python3
# Our QEMU too: tests/host/test_ram_backing.py runs it beside Debian's.
HOST_TEST_DEPS := $(HEARTBEAT) $(OUR_QEMU)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRCS))
# Everything but the programs' main()s, sanitized, for the unit tests.
LIB_HOST_OBJS := $(patsubst %.c,$(B)/host/%.o,$(VMCONF_LIB_SRCS) $(INIT_LIB_SRCS))

$(B)/tests/%: $(B)/host/tests/unit/%.o $(LIB_HOST_OBJS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(HOST_CC) $(HOST_SAN) -o $@ $^ $(HOST_LIBS)

# Host-built CLIs (sanitized) so the CLI tests also run under ASan.
$(B)/host/vmconf-cli: $(patsubst %.c,$(B)/host/%.o,$(VMCONF_SRCS))
	@echo "  LD      $@"
	$(Q)$(HOST_CC) $(HOST_SAN) -o $@ $^ $(HOST_LIBS)

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

# Run every tier even when one fails, then print the total and fail if any did.
check:
	@rm -rf $(RESULTS); mkdir -p $(RESULTS)
	@rc=0; for t in check-unit check-host check-board; do \
		$(MAKE) --no-print-directory $$t || rc=1; done; \
	$(PYTHON) tests/run.py --results $(RESULTS) --summary; s=$$?; \
	[ $$rc = 0 ] && [ $$s = 0 ]

# The live-update benchmark (slow: boots the board once per size and mode).
bench: all $(BOARD_TEST_DEPS)
	@$(PYTHON) tests/bench/bench.py

# Twenty live updates in a row (SOAK_UPDATES), checking the guest and the init's fds.
soak: all $(BOARD_TEST_DEPS)
	@$(PYTHON) tests/bench/soak.py
