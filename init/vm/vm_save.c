/* A VM's device state saved and restored through cpr.c on its QMP
 * connection, for the host update and vmm-update; and vm_cont, which lets a
 * guest that a save stopped run again. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pid1/log.h"
#include "pid1/loop.h"
#include "vm/cpr.h"
#include "vm/qmp.h"
#include "vm/vm_impl.h"

#define VM_CMD_TIMEOUT 10000
#define VM_PRECONFIG_TIMEOUT 30000 /* the machine's creation: about 0.3 s under nested TCG */

/* A QEMU that died meanwhile has no QMP: say so (the reaper does the rest). */
static int has_qmp(const struct vm *vm, char *err, size_t errlen)
{
	if (vm->qmp)
		return 0;
	snprintf(err, errlen, "%s: QEMU is gone", vm->conf->name);
	return -ESRCH;
}

/* QEMU's run state ("running", "paused", "inmigrate", ...) into buf. */
static int run_state(struct vm *vm, char *buf, size_t len)
{
	json_object *r = NULL, *st;
	char e[128];
	int rc = qmp_command(vm->qmp, "query-status", NULL, -1, VM_CMD_TIMEOUT, &r, e, sizeof(e));

	if (rc == 0 && json_object_object_get_ex(r, "status", &st))
		snprintf(buf, len, "%s", json_object_get_string(st));
	else if (rc == 0)
		rc = -EPROTO;
	json_object_put(r);
	return rc;
}

int vm_cont(struct vm *vm)
{
	json_object *r = NULL, *st;
	char e[128];
	int rc;

	if (!vm->qmp)
		return -ESRCH;
	rc = qmp_command(vm->qmp, "query-status", NULL, -1, VM_CMD_TIMEOUT, &r, e, sizeof(e));
	if (rc < 0)
		return rc;
	if (!json_object_object_get_ex(r, "status", &st) || strcmp(json_object_get_string(st), "running") != 0)
		rc = qmp_command(vm->qmp, "cont", NULL, -1, VM_CMD_TIMEOUT, NULL, e, sizeof(e));
	json_object_put(r);
	return rc;
}

int vm_save_prepare(struct vm *vm, int state_fd, bool ignore_shared, char *err, size_t errlen)
{
	int r = has_qmp(vm, err, errlen);

	return r < 0 ? r : cpr_save_prepare(vm->qmp, state_fd, ignore_shared, err, errlen);
}

int vm_save_start(struct vm *vm, struct cpr_stats *ret, char *err, size_t errlen)
{
	int r = has_qmp(vm, err, errlen);

	return r < 0 ? r : cpr_save_start(vm->qmp, ret, err, errlen);
}

int vm_save_finish(struct vm *vm, int state_fd, struct cpr_stats *ret, char *err, size_t errlen)
{
	int r = has_qmp(vm, err, errlen);

	return r < 0 ? r : cpr_save_finish(vm->qmp, state_fd, CPR_SAVE_TIMEOUT_MS, ret, err, errlen);
}

void vm_save_abort(struct vm *vm)
{
	if (!vm->qmp)
		return;
	cpr_save_abort(vm->qmp);
	(void)vm_cont(vm);
}

int vm_save(struct vm *vm, int state_fd, bool ignore_shared, struct cpr_stats *ret, char *err, size_t errlen)
{
	int r = vm_save_prepare(vm, state_fd, ignore_shared, err, errlen);

	if (r == 0)
		r = vm_save_start(vm, ret, err, errlen);
	if (r == 0)
		r = vm_save_finish(vm, state_fd, ret, err, errlen);
	if (r < 0)
		vm_save_abort(vm);
	return r;
}

int vm_restore_begin(struct vm *vm, int state_fd, bool ignore_shared, char *err, size_t errlen)
{
	int r = has_qmp(vm, err, errlen);

	return r < 0 ? r : cpr_restore_begin(vm->qmp, state_fd, ignore_shared, err, errlen);
}

int vm_restore_finish(struct vm *vm, char *err, size_t errlen)
{
	char st[32] = "";
	int r = has_qmp(vm, err, errlen);

	if (r == 0)
		r = cpr_restore_finish(vm->qmp, CPR_RESTORE_TIMEOUT_MS, st, sizeof(st), err, errlen);
	if (r < 0 || strcmp(st, "running") == 0)
		return r;
	/* A guest stopped before its save comes back paused. */
	if ((r = vm_cont(vm)) < 0) {
		snprintf(err, errlen, "cont after the restore: %s", strerror(-r));
		return r;
	}
	/* Only a guest QEMU calls running is restored: one left "inmigrate"
	 * or "restore-vm" would otherwise pass for running until its next save. */
	if ((r = run_state(vm, st, sizeof(st))) < 0)
		snprintf(err, errlen, "query-status after the restore: %s", strerror(-r));
	else if (strcmp(st, "running") != 0) {
		snprintf(err, errlen, "QEMU reports \"%s\" after the restore, not running", st);
		r = -EIO;
	}
	return r;
}

int vm_restore(struct vm *vm, int state_fd, bool ignore_shared, char *err, size_t errlen)
{
	int r = vm_restore_begin(vm, state_fd, ignore_shared, err, errlen);

	return r < 0 ? r : vm_restore_finish(vm, err, errlen);
}

int vm_spawn_restore(struct vm *vm, const struct vm_machine *m, bool keep_ram, bool preconfig, char *err,
		     size_t errlen)
{
	vm->accel = m->accel;
	vm->ram_backing = m->ram_backing;
	vm->sandbox = m->sandbox;
	vm->want_running = true;
	return vm_spawn(vm, keep_ram, preconfig ? VM_SPAWN_PRECONFIG : VM_SPAWN_INCOMING, err, errlen);
}

/* A preconfig QEMU's disks (vm_spawn gave it their -device only), now that
 * /state is there. vm->conf is the machine it was started on: an early VM
 * that was not adopted onto that machine never gets here. The replies are
 * awaited first: x-exit-preconfig with a -device whose node is missing
 * would end QEMU rather than fail. */
static int add_blockdevs(struct vm *vm, char *err, size_t errlen)
{
	struct qmp_cmd cmds[QMP_BATCH_MAX];
	json_object *args[QMP_BATCH_MAX];
	size_t n = vm->conf->n_disks;
	int r = 0;

	for (size_t i = 0; r == 0 && i < n; i += QMP_BATCH_MAX) {
		size_t k = n - i < QMP_BATCH_MAX ? n - i : QMP_BATCH_MAX;
		for (size_t j = 0; j < k; j++) {
			args[j] = vmconf_blockdev_args(vm->conf, i + j);
			cmds[j] = (struct qmp_cmd){ "blockdev-add", args[j], -1, NULL };
			if (!args[j] && r == 0) {
				snprintf(err, errlen, "%s: blockdev-add of disks[%zu]: out of memory", vm->conf->name,
					 i + j);
				r = -ENOMEM;
			}
		}
		if (r == 0)
			r = qmp_batch(vm->qmp, cmds, k, VM_CMD_TIMEOUT, err, errlen);
		for (size_t j = 0; j < k; j++)
			json_object_put(args[j]);
	}
	return r;
}

int vm_exit_preconfig_begin(struct vm *vm, char *err, size_t errlen)
{
	int r = has_qmp(vm, err, errlen);

	if (r == 0)
		r = add_blockdevs(vm, err, errlen);
	return r < 0 ? r : qmp_send(vm->qmp, "x-exit-preconfig", NULL, VM_PRECONFIG_TIMEOUT, &vm->preconfig_id, err,
				    errlen);
}

int vm_exit_preconfig_finish(struct vm *vm, char *err, size_t errlen)
{
	int r = has_qmp(vm, err, errlen);

	/* The reply comes once the machine exists. */
	return r < 0 ? r : qmp_await(vm->qmp, "x-exit-preconfig", vm->preconfig_id, VM_PRECONFIG_TIMEOUT, NULL, err,
				     errlen);
}

int vm_restore_in_place(struct vm *vm, int state_fd, bool ignore_shared, int tries, double *ret_started,
			char *err, size_t errlen)
{
	int r = -EIO;

	/* The RAM and the state are still ours: each try is a fresh QEMU (a
	 * failed one is ended first, never left beside the new one). */
	for (int attempt = 0; attempt < tries; attempt++) {
		if (attempt)
			log_err("%s: restore failed (%s), retrying on a fresh QEMU", vm->conf->name, err);
		vm_end(vm, 0); /* no-op unless a failed restore left its QEMU */
		r = vm_spawn(vm, true, VM_SPAWN_INCOMING, err, errlen);
		if (r == 0)
			r = vm_wait_qmp(vm, err, errlen);
		if (ret_started)
			*ret_started = realtime_ms();
		if (r == 0)
			r = vm_restore(vm, state_fd, ignore_shared, err, errlen);
		if (r == 0) {
			vm_set_state(vm, VM_RUNNING, "restored");
			return 0;
		}
	}
	return r;
}
