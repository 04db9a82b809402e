/* The last step of every tmp + fsync + rename write (the manifest, pushed
 * firmware images): the directory entry itself reaches the disk. */
#include "pid1/fsync_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}
