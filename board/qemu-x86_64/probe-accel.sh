#!/bin/sh
# Decide the outer QEMU's accelerator: kvm only if a KVM guest really boots
# the board kernel to user space (the probe initramfs prints a marker), else tcg.
#   probe-accel.sh QEMU BZIMAGE PROBE_INITRAMFS > accel
# /dev/kvm existing is not enough: on some hosts a Linux guest hangs under KVM.
set -u
qemu=${1:?usage: probe-accel.sh QEMU BZIMAGE PROBE_INITRAMFS}
kernel=${2:?}
initrd=${3:?}
timeout_s=${PROBE_TIMEOUT:-20}
marker="luoinit-probe: userspace reached"

if [ ! -w /dev/kvm ]; then
	echo "probe-accel: /dev/kvm not usable: tcg" >&2
	echo tcg
	exit 0
fi
out=$(mktemp)
timeout "$timeout_s" "$qemu" -nodefaults -no-user-config -display none -no-reboot \
	-machine q35 -accel kvm -cpu max -smp 1 -m 256M \
	-kernel "$kernel" -initrd "$initrd" -append "console=ttyS0 panic=-1" \
	-serial "file:$out" >/dev/null 2>&1
if grep -q "$marker" "$out"; then
	echo "probe-accel: a KVM guest boots the board kernel: kvm" >&2
	echo kvm
else
	echo "probe-accel: no marker from a KVM guest within ${timeout_s}s: tcg" >&2
	echo tcg
fi
rm -f "$out"
