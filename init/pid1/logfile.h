/* An append-only log file on /state that never fills it: past `cap` bytes the
 * file is rotated (PATH -> PATH.1 -> ... -> PATH.keep, the oldest dropped).
 * A write that fails (a full /state) drops the data and is reported once in
 * `error`; it never blocks or fails the caller. */
#ifndef LUOINIT_LOGFILE_H
#define LUOINIT_LOGFILE_H

#include <stddef.h>
#include <sys/types.h>

#define LOGFILE_PATH_MAX 512

struct logfile {
	char path[LOGFILE_PATH_MAX];
	int fd;            /* -1 when closed */
	off_t size;        /* of the current generation */
	off_t cap;
	int keep;          /* rotated generations kept */
	int error;         /* errno of the last failed write or rotation, 0 after a good one */
	unsigned long dropped;
};

/* Opens (creating) path for appending. 0 or -errno; f->fd is -1 on failure. */
int logfile_open(struct logfile *f, const char *path, off_t cap, int keep);
void logfile_close(struct logfile *f);
void logfile_write(struct logfile *f, const char *buf, size_t n);
/* The last `bytes` bytes across PATH.keep ... PATH.1, PATH in a malloc'd,
 * NUL-terminated string (*ret_len without the NUL); NULL on ENOMEM. */
char *logfile_tail(const char *path, int keep, size_t bytes, size_t *ret_len);
/* In place: a NUL or a byte that is not part of valid UTF-8 becomes '?', so
 * a log tail makes a valid JSON string. */
void logfile_utf8_sanitize(char *s, size_t n);

#endif
