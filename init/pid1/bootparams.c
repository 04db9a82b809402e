#include "pid1/bootparams.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define TYPE_OF_LOADER 0x210

int bootparams_loader(const char *path)
{
	unsigned char b;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = pread(fd, &b, 1, TYPE_OF_LOADER);
	if (n < 0)
		n = -errno;
	close(fd);
	return n == 1 ? b : n < 0 ? (int)n : -ENODATA;
}

const char *bootparams_loader_name(int loader)
{
	/* The high nibble is the loader, the low one its version. */
	switch (loader < 0 ? -1 : loader >> 4) {
	case 0xD: return "kexec";
	case 0xB: return "qemu";
	default: return loader == 0x21 ? "efi-stub" : "unknown";
	}
}

bool bootparams_by_kexec(void)
{
	int l = bootparams_loader(BOOTPARAMS_DATA);

	/* Unknown (no such file: not x86): as if it were, the manifest says. */
	return l < 0 || l >> 4 == 0xD;
}
