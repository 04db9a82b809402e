/* Signals through a signalfd in the loop. SIGCHLD reaps every child first,
 * orphans included, then tells the VM whose QEMU it was; SIGTERM and SIGINT
 * (Ctrl-Alt-Del as PID 1) ask for a reboot (--host: stop and exit), SIGUSR2
 * for a power-off. */
#include "supervisor/sup.h"

#include <errno.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pid1/log.h"
#include "pid1/loop.h"

static void reap(struct sup *s)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		size_t i;
		for (i = 0; i < s->n_vms; i++)
			if (vm_owns_pid(s->vms[i], pid)) {
				vm_exited(s->vms[i], st);
				break;
			}
		if (i == s->n_vms)
			log_debug("reaped pid %d", (int)pid);
	}
}

static void on_signal(int fd, uint32_t events, void *data)
{
	struct sup *s = data;
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap(s);
			break;
		case SIGTERM:
		case SIGINT:
			log_info("signal %d: %s", (int)si.ssi_signo, s->o.pid1 ? "reboot" : "stop the VMs and exit");
			sup_ask(s, SUP_REBOOT, SUP_SHUTDOWN_TIMEOUT);
			break;
		case SIGUSR2:
			log_info("signal SIGUSR2: power off");
			sup_ask(s, SUP_POWEROFF, SUP_SHUTDOWN_TIMEOUT);
			break;
		default:
			log_debug("signal %d ignored", (int)si.ssi_signo);
		}
	}
}

int sup_signals_setup(struct sup *s)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	(void)signal(SIGPIPE, SIG_IGN);
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	return loop_add(fd, EPOLLIN, on_signal, s);
}
