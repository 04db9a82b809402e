/* Guest RAM memfds. */
#include "vm/ram.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef F_SEAL_GROW
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#endif

int ram_create(const char *name, uint32_t mib)
{
	char mname[64];
	int fd, r;

	snprintf(mname, sizeof(mname), "luoinit:%s", name);
	fd = memfd_create(mname, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)mib << 20) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int64_t ram_size(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	return (int64_t)st.st_size;
}

int ram_create_state(const char *name)
{
	char mname[64];
	int fd;

	snprintf(mname, sizeof(mname), "luoinit:%s.vmstate", name);
	fd = memfd_create(mname, MFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int ram_reopen(int fd, int accmode)
{
	char path[64];
	int nfd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	nfd = open(path, accmode | O_CLOEXEC);
	return nfd < 0 ? -errno : nfd;
}
