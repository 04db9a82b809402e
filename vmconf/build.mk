# vmconf: the library (everything but cli.c) and the CLI.
VMCONF_SRCS     := $(sort $(wildcard vmconf/*.c))
VMCONF_LIB_SRCS := $(filter-out vmconf/cli.c,$(VMCONF_SRCS))

$(B)/vmconf: $(patsubst %.c,$(B)/musl/%.o,$(VMCONF_SRCS))
	@echo "  LD      $@"
	$(Q)$(MUSL_CC) $(MUSL_LDFLAGS) -o $@.tmp $^ -ljson-c && mv $@.tmp $@
