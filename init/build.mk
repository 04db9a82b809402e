# luoinit: init/main.c wires the layers, one folder each (README, Layout);
# everything but main.c is also linked into the unit tests.
INIT_SRCS     := $(sort $(wildcard init/*.c init/*/*.c))
INIT_LIB_SRCS := $(filter-out init/main.c,$(INIT_SRCS))
INIT_OBJS     := $(patsubst %.c,$(B)/musl/%.o,$(INIT_SRCS) $(VMCONF_LIB_SRCS))

$(B)/luoinit: $(INIT_OBJS)
	@echo "  LD      $@"
	$(Q)$(MUSL_CC) $(MUSL_LDFLAGS) -o $@.tmp $^ $(MUSL_LIBS) && mv $@.tmp $@
