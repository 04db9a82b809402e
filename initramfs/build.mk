# The static musl sysroot (libkmod, libblkid, json-c) and the kernel's UAPI
# headers; the initramfs image of the board.
SYSROOT_STAMP := $(SYSROOT)/.stamp
KHDR_STAMP    := $(KHDR)/.stamp
# TODO(board helper): rules for $(SYSROOT_STAMP), $(KHDR_STAMP), the initramfs.
