/* Make a rename or a new file in DIR durable: fsync of the directory. */
#ifndef LUOINIT_FSYNC_DIR_H
#define LUOINIT_FSYNC_DIR_H

/* 0, or -errno. */
int fsync_dir(const char *dir);

#endif
