/* shmem_enabled reads like "always [within_size] advise never deny force". */
#include "pid1/thp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pid1/cmdline.h"

static int read_mode(const char *path, char *mode, size_t len)
{
	char buf[128], *a, *b;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	if (!(a = strchr(buf, '[')) || !(b = strchr(a, ']')))
		return -EINVAL;
	*b = 0;
	snprintf(mode, len, "%s", a + 1);
	return 0;
}

int thp_shmem_setup(const char *path, char *mode, size_t len)
{
	char cmdline[4096];
	int fd, r;

	snprintf(mode, len, "never");
	if ((r = read_mode(path, mode, len)) < 0)
		return r == -ENOENT ? 0 : r;
	/* The operator's word on the kernel command line stands. */
	if (cmdline_read_raw(cmdline, sizeof(cmdline)) >= 0 && strstr(cmdline, "transparent_hugepage_shmem="))
		return 0;
	if (strcmp(mode, "never") != 0)
		return 0; /* already huge: the kernel's build default */
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = write(fd, "within_size", strlen("within_size")) < 0 ? -errno : 0;
	close(fd);
	if (r == 0)
		r = read_mode(path, mode, len);
	return r;
}
