/* Starting and stopping child programs: fork/exec with an argv array (never a
 * shell), an exact fd layout, and exec failures reported back synchronously. */
#ifndef LUOINIT_SPAWN_H
#define LUOINIT_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

struct spawn_opts {
	const int *fds;     /* fds[i] becomes fd i+3 in the child; -1 leaves a gap closed */
	size_t n_fds;
	int stdout_fd;      /* -1: /dev/null */
	int stderr_fd;      /* -1: /dev/null */
	const char *user;   /* run as this user (setgroups/setgid/setuid), or NULL */
	int new_session;    /* setsid(): keep console signals (Ctrl-C) away from the child */
};

/* Returns 0 and the pid in *ret_pid, or a negative errno (the exec's own when
 * execve failed in the child, which has then been reaped). */
int spawn(char *const argv[], const struct spawn_opts *o, pid_t *ret_pid);

/* Wait up to timeout_ms for pid to exit and reap it. Returns 0 with its wait
 * status in *ret_status, or -ETIMEDOUT. */
int spawn_wait(pid_t pid, int timeout_ms, int *ret_status);
/* spawn_wait, then SIGKILL and reap when it did not exit in time. */
int spawn_wait_or_kill(pid_t pid, int timeout_ms, int *ret_status);

/* A human-readable "exited with 1" / "killed by signal 9" in buf. */
const char *spawn_status_str(int status, char *buf, size_t len);

#endif
