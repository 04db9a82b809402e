/* Early mounts. Run before anything else, so each step logs its own failure:
 * there is no caller that knows better which mount went wrong. */
#include "pid1/mounts.h"
#include "pid1/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

struct early_mount {
	const char *source, *target, *fstype;
	unsigned long flags;
	const char *data;
};

static const struct early_mount early_mounts[] = {
	{ "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	{ "sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	{ "devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755" },
	{ "tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755" },
	/* No tty group in the initramfs: gid 0, owner-only ttys. */
	{ "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "mode=0620,ptmxmode=0666" },
	{ "tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" },
};

int mounts_is_mountpoint(const char *path)
{
	char parent[PATH_MAX];
	struct stat st, pst;

	if (snprintf(parent, sizeof(parent), "%s/..", path) >= (int)sizeof(parent))
		return -ENAMETOOLONG;
	if (stat(path, &st) < 0 || stat(parent, &pst) < 0)
		return -errno;
	/* "/" is its own parent; a different device or the same inode marks a mount. */
	return st.st_dev != pst.st_dev || st.st_ino == pst.st_ino;
}

static int mount_one(const struct early_mount *m)
{
	int r;

	if (mkdir(m->target, 0755) < 0 && errno != EEXIST)
		return log_errno(LOG_ERR, errno, "mkdir %s", m->target);
	r = mounts_is_mountpoint(m->target);
	if (r > 0) {
		log_info("%s already mounted", m->target);
		return 0;
	}
	if (mount(m->source, m->target, m->fstype, m->flags, m->data) < 0) {
		if (errno == EBUSY) {
			log_info("%s already mounted", m->target);
			return 0;
		}
		return log_errno(LOG_ERR, errno, "mount %s on %s", m->fstype, m->target);
	}
	log_debug("mounted %s on %s", m->fstype, m->target);
	return 0;
}

int mounts_early(void)
{
	int first = 0;

	for (size_t i = 0; i < sizeof(early_mounts) / sizeof(early_mounts[0]); i++) {
		int r = mount_one(&early_mounts[i]);
		if (r < 0 && first == 0)
			first = r;
	}
	return first;
}

int mounts_sync_umount(const char *path)
{
	int err;

	sync();
	if (umount2(path, 0) == 0) {
		log_info("unmounted %s", path);
		return 0;
	}
	err = errno;
	if (err == EINVAL || err == ENOENT)
		return log_errno(LOG_WARN, err, "umount %s", path);
	log_errno(LOG_WARN, err, "umount %s, remounting read-only", path);
	if (mount(NULL, path, NULL, MS_REMOUNT | MS_RDONLY, NULL) == 0) {
		/* Clean on disk now; detaching only hides it from late writers. */
		if (umount2(path, MNT_DETACH) < 0)
			log_errno(LOG_WARN, errno, "detach %s", path);
		log_info("%s remounted read-only", path);
		return 0;
	}
	err = errno;
	log_errno(LOG_ERR, err, "remount %s read-only", path);
	if (umount2(path, MNT_DETACH) < 0)
		log_errno(LOG_ERR, errno, "detach %s", path);
	else
		log_warn("%s detached, may not be clean", path);
	return -err;
}
