/* The shutdown sequence: every guest asked to power down at once, the
 * timeout shared, then QEMU told to quit; in PID 1 mode /state unmounted
 * and the reboot or power-off done. */
#include "supervisor/sup.h"

#include <errno.h>
#include <sys/reboot.h>
#include <unistd.h>

#include "pid1/log.h"
#include "pid1/loop.h"
#include "pid1/mounts.h"
#include "pid1/watchdog.h"
#include "update/fwpush.h"

static void stop_all(struct sup *s, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	/* Ask every guest first, so they power down in parallel. */
	for (size_t i = 0; i < s->n_vms; i++)
		vm_power_off_ask(s->vms[i], timeout_ms > 0);
	for (size_t i = 0; i < s->n_vms; i++) {
		uint64_t now = now_ms();
		int left = now < deadline ? (int)(deadline - now) : 0;
		bool had = vm_pid(s->vms[i]) != 0;
		if (had)
			log_info("%s: stopping", vm_name(s->vms[i]));
		(void)vm_power_off(s->vms[i], left, false);
		if (had)
			log_info("%s: %s", vm_name(s->vms[i]), vm_pid(s->vms[i]) ? "still running" : "stopped");
	}
}

int sup_shutdown(struct sup *s, enum sup_action a, int timeout_ms)
{
	log_info("%s: stopping %zu VM(s)", !s->o.pid1 ? "exit" : a == SUP_REBOOT ? "reboot" : "power off", s->n_vms);
	stop_all(s, timeout_ms);
	if (!s->o.pid1)
		return 0;
	/* Nothing of ours may keep /state busy: the serial logs live there. */
	for (size_t i = 0; i < s->n_vms; i++)
		vm_log_close(s->vms[i]);
	log_file_close();
	fwpush_abandon("the host is shutting down");
	sup_assess_stop();
	(void)mounts_sync_umount(s->o.state_dir); /* syncs first */
	log_info("%s now", a == SUP_REBOOT ? "rebooting" : "powering off");
	sync();
	/* Locked, it outlives us: the reset or power-off must come first. */
	watchdog_feed_now();
	if (reboot(a == SUP_REBOOT ? RB_AUTOBOOT : RB_POWER_OFF) < 0)
		log_errno(LOG_ERR, errno, "reboot() failed; still serving");
	return -1;
}
