/* Logging. One write(2) per message so lines from QEMU's forwarded stderr and
 * our own never interleave inside a line. errno is preserved. */
#include "pid1/log.h"
#include "pid1/logfile.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_fd = 2;
static int log_kmsg;
static struct logfile log_file = { .fd = -1 };
static enum log_level log_level = LOG_INFO;

void log_open(int fd, int kmsg)
{
	log_fd = fd;
	log_kmsg = kmsg;
}

void log_set_level(enum log_level l) { log_level = l; }
enum log_level log_get_level(void) { return log_level; }

int log_level_parse(const char *s)
{
	static const struct { const char *name; enum log_level l; } t[] = {
		{ "debug", LOG_DEBUG }, { "info", LOG_INFO }, { "warn", LOG_WARN }, { "err", LOG_ERR },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(s, t[i].name) == 0)
			return (int)t[i].l;
	return -1;
}

static const char *level_name(enum log_level l)
{
	switch (l) {
	case LOG_ERR: return "error";
	case LOG_WARN: return "warn";
	case LOG_INFO: return "info";
	default: return "debug";
	}
}

/* The loop must never block on a slow console or an unread pipe: write only
 * when the fd has room, else count the message as dropped and say so once it
 * has room again. /dev/kmsg never blocks. */
static void log_write(const char *buf, size_t len)
{
	static unsigned long dropped;
	struct pollfd p = { .fd = log_fd, .events = POLLOUT };

	if (!log_kmsg && (poll(&p, 1, 0) != 1 || !(p.revents & POLLOUT))) {
		dropped++;
		return;
	}
	if (dropped) {
		char note[96];
		int n = snprintf(note, sizeof(note), "luoinit: %lu log message(s) dropped (log output was full)\n",
				 dropped);
		dropped = 0;
		if (n > 0)
			(void)!write(log_fd, note, (size_t)n);
	}
	/* Nothing useful can be done when the log itself fails. */
	(void)!write(log_fd, buf, len);
}

static void file_line(enum log_level l, const char *line, size_t len);

static void log_v(enum log_level l, int err, const char *fmt, va_list ap)
{
	char buf[1024];
	int n;
	size_t len;

	if (l > log_level)
		return;
	if (log_kmsg) {
		n = snprintf(buf, sizeof(buf), "<%d>luoinit: ", (int)l);
	} else {
		struct timespec ts;
		(void)clock_gettime(CLOCK_REALTIME, &ts);
		n = snprintf(buf, sizeof(buf), "%lld.%03ld luoinit[%s]: ", (long long)ts.tv_sec,
			     ts.tv_nsec / 1000000, level_name(l));
	}
	len = n > 0 ? (size_t)n : 0;
	n = vsnprintf(buf + len, sizeof(buf) - len, fmt, ap);
	if (n > 0)
		len += (size_t)n < sizeof(buf) - len ? (size_t)n : sizeof(buf) - len - 1;
	if (err && len < sizeof(buf) - 1) {
		n = snprintf(buf + len, sizeof(buf) - len, ": %s", strerror(err));
		if (n > 0)
			len += (size_t)n < sizeof(buf) - len ? (size_t)n : sizeof(buf) - len - 1;
	}
	if (len >= sizeof(buf) - 1)
		len = sizeof(buf) - 2;
	buf[len++] = '\n';
	log_write(buf, len);
	if (log_file.fd >= 0)
		file_line(l, buf, len);
}

/* The file gets every line with a wall-clock stamp (kmsg lines have none of
 * their own) and without the kmsg priority prefix. */
static void file_line(enum log_level l, const char *line, size_t len)
{
	char buf[1100];
	struct timespec ts;
	const char *msg = line;
	int n;

	/* "<6>luoinit: MSG" (kmsg) or "S.ms luoinit[LEVEL]: MSG" (stderr) */
	if ((msg = strstr(line, log_kmsg ? "luoinit: " : "]: ")))
		msg += log_kmsg ? strlen("luoinit: ") : strlen("]: ");
	else
		msg = line;
	(void)clock_gettime(CLOCK_REALTIME, &ts);
	n = snprintf(buf, sizeof(buf), "%lld.%03ld %s: %.*s", (long long)ts.tv_sec, ts.tv_nsec / 1000000,
		     level_name(l), (int)(len - (size_t)(msg - line)), msg);
	if (n > 0)
		logfile_write(&log_file, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

int log_file_open(const char *path)
{
	int r;

	if (log_file.fd >= 0)
		return 0;
	r = logfile_open(&log_file, path, LOG_FILE_CAP, LOG_FILE_KEEP);
	if (r < 0)
		log_errno(LOG_WARN, -r, "log file %s", path);
	return r;
}

void log_file_close(void)
{
	logfile_close(&log_file);
}

const char *log_file_path(void)
{
	return log_file.path;
}

void log_msg(enum log_level l, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_v(l, 0, fmt, ap);
	va_end(ap);
	errno = saved;
}

int log_errno(enum log_level l, int err, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	if (err < 0)
		err = -err;
	va_start(ap, fmt);
	log_v(l, err, fmt, ap);
	va_end(ap);
	errno = saved;
	return -err;
}
