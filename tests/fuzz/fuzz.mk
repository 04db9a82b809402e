# libFuzzer targets (clang, ASan + UBSan) for the untrusted-input parsers:
#   vmconf     vmconf_parse_buffer + the argv builder   (tests/fuzz/fuzz_vmconf.c)
#   ctl_proto  one control request line + the replies   (tests/fuzz/fuzz_ctl_proto.c)
#   qmp        the QMP client against a fake QEMU       (tests/fuzz/fuzz_qmp.c)
#
#   make fuzz                    each target for FUZZ_TIME seconds; fails on any
#                                crash, leak, UB, timeout or failed check
#   make fuzz FUZZ_TIME=600      longer
#   make fuzz FUZZ_TARGETS=qmp   only some
#   make fuzz-build              just build them (build/fuzz/fuzz_NAME)
#   make fuzz-replay             run the seeds and past findings once (seconds)
#
# Each run reads the committed seeds (tests/fuzz/corpus/NAME) and past findings
# (tests/fuzz/regress/NAME, which must all pass first), and grows a scratch
# corpus in build/fuzz/corpus/NAME. A finding is written to
# build/fuzz/artifacts/NAME/; reproduce with `build/fuzz/fuzz_NAME FILE`.
# To keep a finding as a regression: copy it to tests/fuzz/regress/NAME/.

FUZZ_TIME    ?= 60
FUZZ_TARGETS ?= vmconf ctl_proto qmp
FUZZ_CC      ?= clang
FUZZ_FLAGS   ?=
FZ           := $(B)/fuzz

# pkg-config when the first fuzzer is built, not while make reads this file
# (deps-ok may install it first on a fresh machine); once.
FUZZ_PKG_CFLAGS = $(eval FUZZ_PKG_CFLAGS := $$(shell pkg-config --cflags json-c 2>/dev/null))$(FUZZ_PKG_CFLAGS)
FUZZ_CFLAGS = -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
              -g -O1 -fno-omit-frame-pointer \
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
              -Ivmconf -Iinit $(FUZZ_PKG_CFLAGS)
FUZZ_LIBS   = $(eval FUZZ_LIBS := $$(shell pkg-config --libs json-c 2>/dev/null || echo -ljson-c))$(FUZZ_LIBS)

FUZZ_SRCS_vmconf    := tests/fuzz/fuzz_vmconf.c $(VMCONF_LIB_SRCS)
FUZZ_SRCS_ctl_proto := tests/fuzz/fuzz_ctl_proto.c init/ctl/proto.c
FUZZ_SRCS_qmp       := tests/fuzz/fuzz_qmp.c init/vm/qmp.c init/pid1/log.c

# Longest input: a config file well past a real one; a request line past
# CTL_LINE_MAX (64 KiB) so the size limit is hit; what QEMU sends in one go.
FUZZ_MAXLEN_vmconf    := 65536
FUZZ_MAXLEN_ctl_proto := 71680
FUZZ_MAXLEN_qmp       := 65536

# The QMP client mallocs its 1 MiB line buffer per connection: a smaller
# quarantine than ASan's 256 MiB default doubles the speed, and still holds
# every free of one run.
FUZZ_ASAN_vmconf    :=
FUZZ_ASAN_ctl_proto :=
FUZZ_ASAN_qmp       := :quarantine_size_mb=16

FUZZ_HDRS := $(wildcard vmconf/*.h init/*/*.h)

# One clang command per target, from the sources (they are few and small).
define FUZZ_RULE
$(FZ)/fuzz_$(1): tests/fuzz/fuzz.mk $(FUZZ_HDRS) $(FUZZ_SRCS_$(1))
	@mkdir -p $(FZ)
	$(FUZZ_CC) $$(FUZZ_CFLAGS) -o $$@ $(FUZZ_SRCS_$(1)) $$(FUZZ_LIBS)
endef
$(foreach t,vmconf ctl_proto qmp,$(eval $(call FUZZ_RULE,$(t))))

.PHONY: fuzz-build
fuzz-build: $(patsubst %,$(FZ)/fuzz_%,$(FUZZ_TARGETS))

# -timeout: seconds for one input (all are sub-millisecond); -rss_limit_mb:
# a hard cap, leaks are found by LeakSanitizer at each input's end.
FUZZ_RUN_FLAGS := -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -detect_leaks=1

# One target's run, as a shell snippet: sets rc=1 on a finding.
define FUZZ_RUN
mkdir -p $(FZ)/corpus/$(1) $(FZ)/artifacts/$(1); \
echo "fuzz: $(1) for $(FUZZ_TIME) s"; \
if ASAN_OPTIONS=detect_leaks=1$(FUZZ_ASAN_$(1)) \
   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
   $(FZ)/fuzz_$(1) $(FUZZ_RUN_FLAGS) -max_total_time=$(FUZZ_TIME) \
	-max_len=$(FUZZ_MAXLEN_$(1)) -artifact_prefix=$(FZ)/artifacts/$(1)/ $(FUZZ_FLAGS) \
	$(FZ)/corpus/$(1) $(wildcard tests/fuzz/corpus/$(1) tests/fuzz/regress/$(1)) \
	>$(FZ)/$(1).log 2>&1; then \
	grep -E '^stat::(number_of_executed_units|peak_rss_mb)' $(FZ)/$(1).log | tr -s ' \n' ' '; \
	echo; echo "fuzz: $(1) ok"; \
else \
	rc=1; tail -n 60 $(FZ)/$(1).log; \
	echo "fuzz: $(1) FAILED (log $(FZ)/$(1).log, input in $(FZ)/artifacts/$(1)/)"; \
fi;
endef

fuzz: fuzz-build
	@rc=0; $(foreach t,$(FUZZ_TARGETS),$(call FUZZ_RUN,$(t))) exit $$rc

# Every committed input once, no fuzzing: a quick check that nothing regressed.
.PHONY: fuzz-replay
fuzz-replay: fuzz-build
	@rc=0; for t in $(FUZZ_TARGETS); do \
		d=$$(ls -d tests/fuzz/corpus/$$t tests/fuzz/regress/$$t 2>/dev/null); \
		mkdir -p $(FZ)/artifacts/$$t; \
		if ASAN_OPTIONS=detect_leaks=1 $(FZ)/fuzz_$$t -runs=0 \
			-artifact_prefix=$(FZ)/artifacts/$$t/ $$d >$(FZ)/$$t-replay.log 2>&1; \
		then echo "fuzz-replay: $$t ok"; \
		else rc=1; tail -n 40 $(FZ)/$$t-replay.log; echo "fuzz-replay: $$t FAILED"; fi; \
	done; exit $$rc
