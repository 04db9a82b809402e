/* Make a rename or a new file in DIR durable: fsync of the directory. */
#ifndef LUOINIT_FSYNC_DIR_H
#define LUOINIT_FSYNC_DIR_H

#include <stddef.h>

/* 0, or -errno. */
int fsync_dir(const char *dir);
/* PATH replaced whole by LEN bytes of DATA (mode 0600): written to PATH.tmp,
 * fsync'd, renamed over PATH; the directory is the caller's to fsync. 0, or
 * -errno with nothing left behind. */
int file_replace(const char *path, const void *data, size_t len);

#endif
