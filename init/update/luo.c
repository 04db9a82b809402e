/* /dev/liveupdate ioctls, against the kernel's own UAPI header. */
#include "update/luo.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/liveupdate.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int luo_open(void)
{
	int fd = open(LUO_DEVICE, O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

static int session_ioctl(int devfd, unsigned long req, const char *name)
{
	/* create and retrieve share one layout */
	struct liveupdate_ioctl_create_session a = { .size = sizeof(a), .fd = -1 };

	if (strlen(name) >= sizeof(a.name))
		return -ENAMETOOLONG;
	memcpy(a.name, name, strlen(name) + 1);
	if (ioctl(devfd, req, &a) < 0)
		return -errno;
	return a.fd;
}

int luo_create_session(int devfd, const char *name)
{
	return session_ioctl(devfd, LIVEUPDATE_IOCTL_CREATE_SESSION, name);
}

int luo_retrieve_session(int devfd, const char *name)
{
	return session_ioctl(devfd, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, name);
}

int luo_preserve_fd(int sfd, int fd, uint64_t token)
{
	struct liveupdate_session_preserve_fd a = { .size = sizeof(a), .fd = fd, .token = token };

	return ioctl(sfd, LIVEUPDATE_SESSION_PRESERVE_FD, &a) < 0 ? -errno : 0;
}

int luo_retrieve_fd(int sfd, uint64_t token)
{
	struct liveupdate_session_retrieve_fd a = { .size = sizeof(a), .fd = -1, .token = token };

	if (ioctl(sfd, LIVEUPDATE_SESSION_RETRIEVE_FD, &a) < 0)
		return -errno;
	return a.fd;
}

int luo_finish(int sfd)
{
	struct liveupdate_session_finish a = { .size = sizeof(a) };

	return ioctl(sfd, LIVEUPDATE_SESSION_FINISH, &a) < 0 ? -errno : 0;
}
