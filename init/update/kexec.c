/* kexec_file_load: the kernel verifies and places the image itself, so the
 * init needs no ELF or bzImage knowledge. */
#include "update/kexec.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/reboot.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef KEXEC_FILE_UNLOAD
#define KEXEC_FILE_UNLOAD   0x00000001
#endif
#ifndef KEXEC_FILE_NO_INITRAMFS
#define KEXEC_FILE_NO_INITRAMFS 0x00000004
#endif

int kexec_load(const char *kernel, const char *initrd, const char *cmdline)
{
	int kfd, ifd = -1, r = 0;
	unsigned long flags = 0;

	kfd = open(kernel, O_RDONLY | O_CLOEXEC);
	if (kfd < 0)
		return -errno;
	if (initrd) {
		ifd = open(initrd, O_RDONLY | O_CLOEXEC);
		if (ifd < 0) {
			r = -errno;
			close(kfd);
			return r;
		}
	} else {
		flags |= KEXEC_FILE_NO_INITRAMFS;
	}
	if (syscall(SYS_kexec_file_load, kfd, ifd, strlen(cmdline) + 1, cmdline, flags) < 0)
		r = -errno;
	close(kfd);
	if (ifd >= 0)
		close(ifd);
	return r;
}

int kexec_unload(void)
{
	return syscall(SYS_kexec_file_load, -1, -1, 0, NULL, KEXEC_FILE_UNLOAD) < 0 ? -errno : 0;
}

int kexec_jump(void)
{
	return reboot(LINUX_REBOOT_CMD_KEXEC) < 0 ? -errno : 0;
}
