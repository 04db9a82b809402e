/* fork/exec with an exact fd layout. The child reports a failed setup or exec
 * through a CLOEXEC pipe, as musl's posix_spawn does, so the caller gets the
 * errno synchronously instead of a mysterious early exit. */
#include "vm/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pid1/loop.h"
#include "pid1/watchdog.h"

#define SPAWN_HIGH_FD 32 /* fds are parked above this while being arranged */

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static void close_from(int lowfd)
{
	/* close_range is 5.9+; fall back to a bounded loop. */
	if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0)
		return;
	for (int fd = lowfd; fd < 4096; fd++)
		(void)close(fd);
}

static int drop_privileges(const char *user)
{
	struct passwd *pw = getpwnam(user);

	if (!pw)
		return -ENOENT;
	if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
		return -errno;
	return 0;
}

/* In the child: never returns. Writes -errno to errp on failure. */
static void child(char *const argv[], const struct spawn_opts *o, int errp)
{
	int parked[32];
	int err, devnull, out, errfd;
	sigset_t none;

	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		(void)signal(s, SIG_DFL);
	/* PID 1 never dies; in --host mode the supervisor might: take QEMU along. */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (o->new_session)
		(void)setsid();

	if (o->n_fds > sizeof(parked) / sizeof(parked[0])) {
		err = E2BIG;
		goto fail;
	}
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0) {
		err = errno;
		goto fail;
	}
	out = o->stdout_fd >= 0 ? o->stdout_fd : devnull;
	errfd = o->stderr_fd >= 0 ? o->stderr_fd : devnull;
	/* Park every source above the targets so no dup2 clobbers another source. */
	for (size_t i = 0; i < o->n_fds; i++) {
		parked[i] = -1;
		if (o->fds[i] >= 0 && (parked[i] = fcntl(o->fds[i], F_DUPFD_CLOEXEC, SPAWN_HIGH_FD)) < 0) {
			err = errno;
			goto fail;
		}
	}
	if ((out = fcntl(out, F_DUPFD_CLOEXEC, SPAWN_HIGH_FD)) < 0 ||
	    (errfd = fcntl(errfd, F_DUPFD_CLOEXEC, SPAWN_HIGH_FD)) < 0 ||
	    (errp = fcntl(errp, F_DUPFD_CLOEXEC, SPAWN_HIGH_FD)) < 0 ||
	    dup2(devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0) {
		err = errno;
		goto fail;
	}
	for (size_t i = 0; i < o->n_fds; i++)
		if (parked[i] >= 0 && dup2(parked[i], (int)i + 3) < 0) {
			err = errno;
			goto fail;
		}
	/* Everything else goes (errp closes on exec): QEMU gets exactly the fds
	 * it was meant to get. */
	for (int fd = (int)o->n_fds + 3; fd < errp; fd++)
		(void)close(fd);
	close_from(errp + 1);

	if (o->user) {
		if ((err = -drop_privileges(o->user)) != 0)
			goto fail;
		/* A credential change clears the parent-death signal. */
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	}
	execv(argv[0], argv);
	err = errno;
fail:
	(void)!write(errp, &err, sizeof(err));
	_exit(127);
}

int spawn(char *const argv[], const struct spawn_opts *o, pid_t *ret_pid)
{
	int p[2], err = 0, status;
	ssize_t n;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		err = errno;
		close(p[0]);
		close(p[1]);
		return -err;
	}
	if (pid == 0) {
		close(p[0]);
		child(argv, o, p[1]);
	}
	close(p[1]);
	do
		n = read(p[0], &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	close(p[0]);
	if (n == (ssize_t)sizeof(err)) {
		(void)spawn_wait(pid, 5000, &status);
		return -(err ? err : EIO);
	}
	*ret_pid = pid;
	return 0;
}

int spawn_wait(pid_t pid, int timeout_ms, int *ret_status)
{
	int pfd, status, r;
	pid_t w;

	w = waitpid(pid, &status, WNOHANG);
	if (w == pid)
		goto done;
	if (w < 0)
		return -errno;
	pfd = pidfd_open_(pid);
	if (pfd >= 0) {
		struct pollfd pf = { .fd = pfd, .events = POLLIN };
		uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
		/* A second at a time, feeding the watchdog: the wait is bounded
		 * (a poweroff may give the guests minutes). */
		for (;;) {
			uint64_t now = now_ms();
			int step = now >= deadline ? 0 : deadline - now > 1000 ? 1000 : (int)(deadline - now);
			r = poll(&pf, 1, timeout_ms < 0 ? -1 : step);
			if (r < 0 && errno == EINTR)
				continue;
			if (r != 0 || step == 0)
				break;
			watchdog_feed();
		}
		close(pfd);
		if (r == 0)
			return -ETIMEDOUT;
	} else {
		/* No pidfd (old kernel): poll waitpid in 10 ms steps. */
		for (int t = 0; t < timeout_ms; t += 10) {
			if (waitpid(pid, &status, WNOHANG) == pid)
				goto done;
			(void)poll(NULL, 0, 10);
		}
	}
	do
		w = waitpid(pid, &status, timeout_ms >= 0 ? WNOHANG : 0);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return -errno;
	if (w == 0)
		return -ETIMEDOUT;
done:
	if (ret_status)
		*ret_status = status;
	return 0;
}

int spawn_wait_or_kill(pid_t pid, int timeout_ms, int *ret_status)
{
	int r = spawn_wait(pid, timeout_ms, ret_status);

	if (r != -ETIMEDOUT)
		return r;
	(void)kill(pid, SIGKILL);
	return spawn_wait(pid, 5000, ret_status);
}

const char *spawn_status_str(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "status 0x%x", (unsigned)status);
	return buf;
}
