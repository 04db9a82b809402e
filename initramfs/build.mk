# The static musl sysroot (libkmod, libblkid, json-c), the kernel source and
# its UAPI headers; the initramfs image of the board.
SYSROOT_STAMP := $(SYSROOT)/.stamp
KHDR_STAMP    := $(KHDR)/.stamp
# Pinned kernel source (the version is pinned in initramfs/kernel-src.sh).
KSRC          := $(abspath $(B)/linux-source-7.2)
KSRC_STAMP    := $(KSRC)/.stamp

$(SYSROOT_STAMP): initramfs/sysroot.sh
	@sh initramfs/sysroot.sh $(SYSROOT)
	@touch $@

$(KSRC_STAMP): initramfs/kernel-src.sh
	@sh initramfs/kernel-src.sh unpack $(KSRC)
	@touch $@

# Also rewritten when the sysroot is rebuilt (it starts from the system's headers).
$(KHDR_STAMP): $(KSRC_STAMP) $(SYSROOT_STAMP)
	@sh initramfs/kernel-src.sh headers $(KSRC) $(KHDR) $(SYSROOT)
	@touch $@

sysroot: $(SYSROOT_STAMP)
headers: $(KHDR_STAMP)
