# The heartbeat guest (design.md §8): a multiboot ELF32 booted with
# `qemu-system-x86_64 -kernel heartbeat.elf -append "fill_mib=N|all seed=N"`.
# A virtio disk and a virtio NIC are used when present (heartbeat.c).
HEARTBEAT     := $(BB)/heartbeat.elf
HB_CC         ?= gcc
HB_DIR        := board/$(BOARD)/guest
HB_CFLAGS     := -m32 -march=i686 -ffreestanding -nostdlib -fno-pic -fno-pie \
                 -fno-stack-protector -fno-asynchronous-unwind-tables -mno-sse -mno-mmx \
                 -fno-tree-loop-distribute-patterns -O2 -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wformat=2
HB_OBJS       := $(BB)/guest/boot.o $(patsubst %,$(BB)/guest/%.o,heartbeat serial pci virtio vblk vnet)

# deps-ok: on a fresh machine gcc and binutils come from it (multilib is not needed).
$(BB)/guest/%.o: $(HB_DIR)/%.c $(HB_DIR)/guest.h | deps-ok
	@mkdir -p $(dir $@)
	$(HB_CC) $(HB_CFLAGS) -c $< -o $@
$(BB)/guest/%.o: $(HB_DIR)/%.S | deps-ok
	@mkdir -p $(dir $@)
	$(HB_CC) -m32 -c $< -o $@
$(HEARTBEAT): $(HB_OBJS) $(HB_DIR)/heartbeat.ld
	ld -m elf_i386 -nostdlib -z noexecstack --no-warn-rwx-segments -T $(HB_DIR)/heartbeat.ld -o $@ $(HB_OBJS)

.PHONY: heartbeat
heartbeat: $(HEARTBEAT)
