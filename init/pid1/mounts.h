/* Early API filesystems, and unmounting at poweroff and before kexec. */
#ifndef LUOINIT_MOUNTS_H
#define LUOINIT_MOUNTS_H

/* Mount /proc, /sys, /dev (devtmpfs), /run (tmpfs 0755), /dev/pts and
 * /dev/shm, creating the directories. One already mounted (after a kexec
 * the kernel may have mounted devtmpfs) is left alone. Every failure is
 * logged here and the rest are still tried; returns 0 or the first error. */
int mounts_early(void);

/* sync(), then unmount PATH; when busy, remount it read-only (the data is
 * then safe on disk) and detach it; as a last resort only detach it.
 * Logged here. Returns 0 when unmounted or read-only, else negative errno. */
int mounts_sync_umount(const char *path);

/* 1 when PATH is a mount point, 0 when not, negative errno. */
int mounts_is_mountpoint(const char *path);

#endif
