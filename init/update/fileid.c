/* statx through the raw syscall: musl 1.2.3 has no statx() wrapper. */
#include "update/fileid.h"

#include <errno.h>
#include <linux/fcntl.h> /* AT_FDCWD: <fcntl.h> clashes with <linux/stat.h> */
#include <linux/stat.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int fileid_get(const char *path, struct fileid *ret)
{
	struct statx sx;

	memset(ret, 0, sizeof(*ret));
	memset(&sx, 0, sizeof(sx));
	if (syscall(SYS_statx, AT_FDCWD, path, 0, STATX_INO | STATX_TYPE | STATX_BTIME, &sx) < 0)
		return -errno;
	ret->ino = sx.stx_ino;
	ret->blockdev = (sx.stx_mode & 0170000) == 0060000; /* S_IFBLK */
	if (sx.stx_mask & STATX_BTIME) {
		ret->has_birth = true;
		ret->birth_sec = sx.stx_btime.tv_sec;
		ret->birth_nsec = sx.stx_btime.tv_nsec;
	}
	return 0;
}

const char *fileid_mismatch(const struct fileid *rec, const struct fileid *cur)
{
	if (rec->blockdev != cur->blockdev)
		return "a different kind of file";
	if (rec->blockdev)
		return NULL; /* device numbers may change across boots; its path is its name */
	if (rec->ino != cur->ino)
		return "another file (inode changed)";
	if (rec->has_birth && cur->has_birth &&
	    (rec->birth_sec != cur->birth_sec || rec->birth_nsec != cur->birth_nsec))
		return "another file (created anew)";
	return NULL;
}
