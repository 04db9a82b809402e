/* QEMU capability probes. See probe.h. */
#include "vm/probe.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pid1/log.h"
#include "vm/ram.h"
#include "vm/spawn.h"
#include "vmconf.h"

#define PROBE_TIMEOUT 20000

/* Start QEMU with extra (NULL-terminated) and a 2 MiB memfd at fd 4; 1 when
 * it reaches its QMP greeting, 0 when it exits first, -errno when it cannot run. */
static int probe_run(const char *qemu, const char *const *extra)
{
	char *argv[32] = { (char *)qemu, "-nodefaults", "-no-user-config", "-display", "none",
			   "-machine", "none", "-S",
			   "-chardev", "socket,id=qmp,fd=3,server=off", "-mon", "chardev=qmp,mode=control" };
	size_t n = 12;
	int sp[2], memfd, st, r, yes = 0;
	pid_t pid;
	char buf[16];

	for (size_t i = 0; extra[i] && n < 31; i++)
		argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	memfd = ram_create("probe", 2);
	if (memfd < 0)
		return memfd;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		r = -errno;
		close(memfd);
		return r;
	}
	{
		const int fds[] = { sp[1], memfd };
		struct spawn_opts so = { .fds = fds, .n_fds = 2, .stdout_fd = -1, .stderr_fd = -1 };
		r = spawn(argv, &so, &pid);
	}
	close(sp[1]);
	close(memfd);
	if (r < 0) {
		close(sp[0]);
		return r;
	}
	/* The greeting comes only after every -object was created. */
	struct pollfd pf = { .fd = sp[0], .events = POLLIN };
	do
		r = poll(&pf, 1, PROBE_TIMEOUT);
	while (r < 0 && errno == EINTR);
	if (r > 0 && recv(sp[0], buf, sizeof(buf), MSG_DONTWAIT) > 0 && memcmp(buf, "{\"QMP\"", 6) == 0)
		yes = 1;
	close(sp[0]);
	(void)kill(pid, SIGKILL);
	(void)spawn_wait(pid, 5000, &st);
	return yes;
}

int probe_fdset(const char *qemu)
{
	static const char *const extra[] = {
		"-add-fd", "fd=4,set=1",
		"-object", "memory-backend-file,id=probe,size=2M,mem-path=/dev/fdset/1,share=on", NULL };

	return probe_run(qemu, extra);
}

int probe_sandbox(const char *qemu)
{
	static const char *const extra[] = { "-sandbox", VMCONF_SANDBOX_OPTS, NULL };

	return probe_run(qemu, extra);
}
