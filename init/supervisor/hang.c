/* The x-hang test switch (luoinit.test_faults=1 only): PID 1 stops, or the
 * kernel panics, so that a test sees the hardware watchdog reset the
 * machine. Asked by the command, done by the loop once the reply is out. */
#include "supervisor/sup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pid1/log.h"
#include "pid1/watchdog.h"

int sup_hang_ask(struct sup *s, const char *how, char *err, size_t errlen)
{
	int h;

	if (!how || strcmp(how, "pid1") == 0)
		h = SUP_HANG_PID1;
	else if (strcmp(how, "panic") == 0)
		h = SUP_HANG_PANIC;
	else {
		snprintf(err, errlen, "how=%.32s: expected pid1 or panic", how);
		return -EINVAL;
	}
	if (!s->o.test_faults) {
		snprintf(err, errlen, "a test switch, off unless the kernel command line has luoinit.test_faults=1");
		return -EPERM;
	}
	if (!s->o.pid1) {
		snprintf(err, errlen, "only luoinit as PID 1 has a watchdog to test (this is --host mode)");
		return -EPERM;
	}
	if (!watchdog_armed()) {
		snprintf(err, errlen, "the watchdog is not armed (%s): nothing would reset the machine",
			 watchdog_status()->error);
		return -ENODEV;
	}
	s->hang = h;
	return 0;
}

void sup_hang(struct sup *s)
{
	unsigned t = watchdog_status()->timeout;
	int fd;

	if (s->hang == SUP_HANG_PANIC) {
		log_warn("x-hang: the kernel panics now (sysrq c); the watchdog resets the machine within %u s", t);
		fd = open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "c", 1) != 1)
			log_errno(LOG_ERR, errno, "x-hang: /proc/sysrq-trigger; PID 1 hangs instead");
		if (fd >= 0)
			close(fd);
	}
	log_warn("x-hang: PID 1 stops (no loop, no feeding); the watchdog resets the machine within %u s", t);
	for (;;)
		(void)pause(); /* every signal it handles is blocked: never returns */
}
