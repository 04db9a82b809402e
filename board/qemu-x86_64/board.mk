# Board qemu-x86_64: kernel, initramfs, state disk, the outer QEMU.
include board/$(BOARD)/guest/guest.mk
# TODO(board helper): kernel, state.img, run/start/stop.
run start stop:
	@echo "make $@: the board is not built yet" >&2; exit 1
