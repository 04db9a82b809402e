/* How this kernel was started, from the x86 boot protocol's
 * type_of_loader (/sys/kernel/boot_params/data, offset 0x210): 0xD0 when a
 * kexec_file_load started it, 0x21 the EFI stub (a boot loader such as
 * systemd-boot, or the firmware), 0xB0 QEMU's -kernel. */
#ifndef LUOINIT_BOOTPARAMS_H
#define LUOINIT_BOOTPARAMS_H

#include <stdbool.h>

#define BOOTPARAMS_DATA "/sys/kernel/boot_params/data"

/* The byte, or a negative errno when it cannot be read. */
int bootparams_loader(const char *path);
/* "kexec", "efi-stub", "qemu", or "unknown". */
const char *bootparams_loader_name(int loader);
/* True also when the byte cannot be read (then the manifest decides). */
bool bootparams_by_kexec(void);

#endif
