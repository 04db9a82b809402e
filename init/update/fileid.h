/* A file's identity that survives a reboot: the inode number and birth time
 * (statx), so a disk replaced at the same path is told apart. Block devices
 * and files whose filesystem has no birth time are identified by existence
 * and inode alone (has_birth false). */
#ifndef LUOINIT_FILEID_H
#define LUOINIT_FILEID_H

#include <stdbool.h>
#include <stdint.h>

struct fileid {
	uint64_t ino;
	int64_t birth_sec;
	uint32_t birth_nsec;
	bool has_birth;
	bool blockdev;
};

/* 0, or a negative errno (-ENOENT: gone). */
int fileid_get(const char *path, struct fileid *ret);
/* NULL when cur is the file that was recorded, else why not (static text). */
const char *fileid_mismatch(const struct fileid *recorded, const struct fileid *cur);

#endif
