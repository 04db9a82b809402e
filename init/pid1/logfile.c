/* Size-capped, rotated log files. */
#include "pid1/logfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int logfile_open(struct logfile *f, const char *path, off_t cap, int keep)
{
	struct stat st;

	memset(f, 0, sizeof(*f));
	f->fd = -1;
	f->cap = cap;
	f->keep = keep;
	if (strlen(path) + 8 > sizeof(f->path))
		return -ENAMETOOLONG;
	snprintf(f->path, sizeof(f->path), "%s", path);
	f->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (f->fd < 0)
		return -errno;
	f->size = fstat(f->fd, &st) == 0 ? st.st_size : 0;
	return 0;
}

void logfile_close(struct logfile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

static void gen_path(const char *path, int gen, char *buf, size_t len)
{
	if (gen)
		snprintf(buf, len, "%s.%d", path, gen);
	else
		snprintf(buf, len, "%s", path);
}

/* PATH.(keep-1) -> PATH.keep, ..., PATH -> PATH.1, and a fresh PATH. */
static int rotate(struct logfile *f)
{
	char from[LOGFILE_PATH_MAX + 16], to[LOGFILE_PATH_MAX + 16];
	int fd;

	for (int g = f->keep; g > 0; g--) {
		gen_path(f->path, g - 1, from, sizeof(from));
		gen_path(f->path, g, to, sizeof(to));
		if (rename(from, to) < 0 && errno != ENOENT)
			return -errno;
	}
	if (f->keep == 0 && unlink(f->path) < 0 && errno != ENOENT)
		return -errno;
	fd = open(f->path, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	close(f->fd);
	f->fd = fd;
	f->size = 0;
	return 0;
}

void logfile_write(struct logfile *f, const char *buf, size_t n)
{
	ssize_t w;
	int r;

	if (f->fd < 0)
		return;
	if (f->size > 0 && f->size + (off_t)n > f->cap && (r = rotate(f)) < 0) {
		/* Keep appending: a log past its cap beats a lost one. */
		f->error = -r;
	}
	w = write(f->fd, buf, n);
	if (w < 0) {
		f->error = errno;
		f->dropped += n;
		return;
	}
	f->size += w;
	f->error = 0;
}

/* The last `want` bytes (or fewer) of one file into out; how many. */
static size_t read_tail(const char *path, char *out, size_t want)
{
	struct stat st;
	size_t take, got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return 0;
	}
	take = (size_t)st.st_size < want ? (size_t)st.st_size : want;
	while (got < take) {
		ssize_t n = pread(fd, out + got, take - got, st.st_size - (off_t)take + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	return got;
}

char *logfile_tail(const char *path, int keep, size_t bytes, size_t *ret_len)
{
	char gp[LOGFILE_PATH_MAX + 16];
	char *out = malloc(bytes + 1), *chunk = malloc(bytes + 1);
	size_t have = 0;

	if (!out || !chunk) {
		free(out);
		free(chunk);
		return NULL;
	}
	/* Newest first, each older generation's tail in front of it. */
	for (int g = 0; g <= keep && have < bytes; g++) {
		size_t n;
		gen_path(path, g, gp, sizeof(gp));
		n = read_tail(gp, chunk, bytes - have);
		memmove(out + n, out, have);
		memcpy(out, chunk, n);
		have += n;
	}
	free(chunk);
	out[have] = 0;
	if (ret_len)
		*ret_len = have;
	return out;
}

/* In place: a NUL or a byte that is not part of valid UTF-8 becomes '?', so
 * the log makes a valid JSON string (json_object_new_string stops at a NUL,
 * and json-c copies invalid UTF-8 into its output as is). */
void logfile_utf8_sanitize(char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		const unsigned char *u = (const unsigned char *)s + i;
		size_t len = u[0] < 0x80 ? 1 : u[0] >= 0xc2 && u[0] <= 0xdf ? 2 : u[0] >= 0xe0 && u[0] <= 0xef ? 3
			     : u[0] >= 0xf0 && u[0] <= 0xf4 ? 4 : 0;
		size_t k = 1;

		if (len > 1 && i + len <= n) {
			while (k < len && (u[k] & 0xc0) == 0x80)
				k++;
			/* overlong 3/4-byte forms, surrogates, above U+10FFFF */
			if ((u[0] == 0xe0 && u[1] < 0xa0) || (u[0] == 0xed && u[1] >= 0xa0) ||
			    (u[0] == 0xf0 && u[1] < 0x90) || (u[0] == 0xf4 && u[1] >= 0x90))
				k = 0;
		}
		if (u[0] == 0 || len == 0 || i + len > n || k != len) {
			s[i++] = '?';
			continue;
		}
		i += len;
	}
}
