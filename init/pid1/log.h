/* Logging: /dev/kmsg with a priority prefix as PID 1, stderr in --host mode. */
#ifndef LUOINIT_LOG_H
#define LUOINIT_LOG_H

enum log_level { LOG_ERR = 3, LOG_WARN = 4, LOG_INFO = 6, LOG_DEBUG = 7 };

/* Route messages to fd (kmsg format when kmsg is set). Default: stderr, plain. */
void log_open(int fd, int kmsg);
void log_set_level(enum log_level l);
enum log_level log_get_level(void);
/* "debug", "info", "warn", "err"; -1 when unknown. */
int log_level_parse(const char *s);

void log_msg(enum log_level l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Log with ": strerror(err)" appended and return -|err|, for one-line error returns. */
int log_errno(enum log_level l, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The init's log is also kept in a file on /state, rotated (LOG_FILE_CAP,
 * LOG_FILE_KEEP older files), so an operator can read what happened before
 * the last reboot or kexec (`luoinit ctl log`). Closed while /state is
 * released; log_file_path() is "" before the first open. */
#define LOG_FILE_CAP (2 << 20)
#define LOG_FILE_KEEP 3
int log_file_open(const char *path);
void log_file_close(void);
const char *log_file_path(void);

#define log_err(...)   log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
