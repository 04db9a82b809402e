/* vmm-update: restart one VM's QEMU in place, keeping its RAM. The device
 * state goes through a memfd (cpr-reboot + x-ignore-shared), the guest RAM
 * stays in the memfd the init holds, and the new QEMU — possibly a new
 * binary — restores from both. The guest sees only a pause. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vm/cpr.h"
#include "pid1/log.h"
#include "pid1/loop.h"
#include "vm/qmp.h"
#include "vm/ram.h"
#include "vm/spawn.h"
#include "vm/vm_impl.h"

int vm_vmm_update(struct vm *vm, char *err, size_t errlen)
{
	const char *name = vm->conf->name;
	struct cpr_stats cs;
	struct vm_update_record rec = { .valid = true, .kind = "vmm-update", .mode = "in-place" };
	char e[256];
	double t_started, t_restored, t_resumed;
	int sfd, r;

	if (vm->state != VM_RUNNING || !vm->qmp || vm->ram_fd < 0) {
		snprintf(err, errlen, "%s is %s, not running", name, vm_state_name(vm->state));
		return -EINVAL;
	}
	sfd = ram_create_state(name);
	if (sfd < 0) {
		snprintf(err, errlen, "cannot create the state memfd: %s", strerror(-sfd));
		return sfd;
	}
	/* Save. On failure vm_save lets the guest run again: nothing changed. */
	r = vm_save(vm, sfd, true, &cs, e, sizeof(e));
	if (r < 0) {
		snprintf(err, errlen, "save failed, %s keeps running: %s", name, e);
		close(sfd);
		return r;
	}
	log_info("%s: vmm-update: state saved, %lld bytes (RAM in stream: %lld bytes)", name,
		 (long long)cs.vmstate_bytes, (long long)cs.ram_total);

	/* From here the old QEMU goes; the RAM memfd and the state stay with us. */
	vm_set_state(vm, VM_RESTORING, "vmm-update");
	vm_end(vm, VM_END_GRACE_MS);

	r = vm_restore_in_place(vm, sfd, true, 2, &t_started, e, sizeof(e));
	t_restored = realtime_ms();
	close(sfd);
	if (r < 0) {
		snprintf(err, errlen, "restore failed: %s", e);
		snprintf(vm->last_error, sizeof(vm->last_error), "vmm-update: %s", err);
		vm_end(vm, 0);
		vm_set_state(vm, VM_FAILED, err);
		vm->want_running = false;
		return r;
	}
	t_resumed = realtime_ms();
	rec.stopped_at = cs.stopped_at;
	rec.save_ms = cs.done_at - cs.stopped_at;
	rec.qemu_start_ms = t_started - cs.done_at; /* old QEMU quitting included */
	rec.restore_ms = t_restored - t_started;
	rec.resume_ms = t_resumed - t_restored;
	rec.blackout_ms = t_resumed - cs.stopped_at;
	rec.vmstate_bytes = cs.vmstate_bytes;
	rec.ram_transferred = cs.ram_total;
	vm->last_update = rec;
	log_info("%s: vmm-update done: blackout %.1f ms (save %.1f, qemu start %.1f, restore %.1f, resume %.1f), "
		 "vmstate %lld bytes", name, rec.blackout_ms, rec.save_ms, rec.qemu_start_ms, rec.restore_ms,
		 rec.resume_ms, (long long)rec.vmstate_bytes);
	return 0;
}
