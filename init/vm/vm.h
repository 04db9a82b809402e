/* The VM layer: one struct vm per configured VM, its QEMU process, RAM
 * memfd, QMP connection, serial and stderr streams, and restart policy.
 * struct vm is opaque outside vm/ (vm/vm_impl.h): the layers above ask
 * these functions, and vm/lifecycle.c alone changes a VM's state. */
#ifndef LUOINIT_VM_H
#define LUOINIT_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmconf.h"

struct vm;
struct cpr_stats;
struct json_object;

/* The states of design.md §4. vm/lifecycle.c's table says which changes are
 * legal; vm_set_state is the only writer of a VM's state. */
enum vm_state { VM_STARTING, VM_RUNNING, VM_PAUSED, VM_RESTORING, VM_STOPPED, VM_FAILED };

struct vm_update_record {
	bool valid;
	const char *kind;         /* "update" or "vmm-update" */
	const char *mode;         /* "luo", "full-ram" or "in-place" */
	double blackout_ms;
	double save_ms, kexec_ms, qemu_start_ms, restore_ms, resume_ms;
	int64_t vmstate_bytes;
	int64_t ram_transferred;  /* query-migrate ram.total of the save */
	double stopped_at;        /* CLOCK_REALTIME ms when the guest stopped */
};

/* What the supervisor hands every VM (vm_new) and keeps up to date: how QEMU
 * runs on this host (its probes), and whether a poweroff or reboot is
 * pending: waits that serve the loop give way to it. The vm layer only
 * reads it. */
struct vm_host {
	bool sandbox;               /* QEMU supports -sandbox: it runs confined */
	bool fdset_ok;              /* QEMU resolves /dev/fdset for RAM (ram_backing auto) */
	bool shutdown_pending;
};

/* How a VM's QEMU runs, as an update manifest records it: the restore after
 * the kexec runs it the same way, never re-resolved. */
struct vm_machine {
	enum vmconf_accel accel;
	enum vmconf_ram ram_backing;
	bool sandbox;
};

/* vm/lifecycle.c: change the VM's state to `to` for `reason` (logged, and
 * sent as a VM_STATE_CHANGED event); a change the table forbids is logged
 * and refused (false). */
const char *vm_state_name(enum vm_state s);
bool vm_set_state(struct vm *vm, enum vm_state to, const char *reason);
bool vm_transition_allowed(enum vm_state from, enum vm_state to);

/* A VM for conf, stopped, without QEMU; conf and host are borrowed and must
 * outlive it. NULL when out of memory. vm_free ends its QEMU first; NULL is
 * fine. */
struct vm *vm_new(const struct vmconf_vm *conf, const struct vm_host *host);
/* After a kexec, before /state is mounted and the configuration read: a VM
 * for the machine its guest was saved on, to start its QEMU early (its
 * serial log is not opened). vm_adopt_config then makes it the
 * configuration's VM of that name (base_conf and host as vm_new takes them;
 * the serial log opened); vm_drop_early ends what it started (QEMU, RAM)
 * when it is not restored after all. */
struct vm *vm_new_early(const struct vmconf_vm *machine, const struct vm_host *host);
void vm_adopt_config(struct vm *vm, const struct vmconf_vm *base_conf, const struct vm_host *host);
void vm_drop_early(struct vm *vm);
/* An adopted early VM whose saved machine is not taken (vm_run_saved_machine)
 * runs on its configuration from now: the machine it was started on, which
 * its conf pointed into until here, may then be freed. */
void vm_leave_early_machine(struct vm *vm);
void vm_free(struct vm *vm);
struct vm *vm_find(struct vm *const *vms, size_t n, const char *name);

/* What the layers above may know of a VM. */
const char *vm_name(const struct vm *vm);
const struct vmconf_vm *vm_conf(const struct vm *vm);
enum vm_state vm_state(const struct vm *vm);
pid_t vm_pid(const struct vm *vm);             /* its QEMU, 0 when none */
bool vm_wanted(const struct vm *vm);           /* the operator's intent: the restart policy applies */
bool vm_held(const struct vm *vm);             /* stopped before the update that booted us */
/* "being stopped" or "being started" while a vm-stop or vm-start serves the
 * loop (only vm-log may touch the VM meanwhile), else NULL. */
const char *vm_busy(const struct vm *vm);
int vm_ram_fd(const struct vm *vm);            /* the guest RAM memfd, -1 */
void vm_machine(const struct vm *vm, struct vm_machine *ret);
const char *vm_qemu_version(const struct vm *vm); /* the running QEMU's, "" until it greets */
/* vm/resolve.c: the machine type and cpu model the running QEMU made of the
 * config's names (q35 -> pc-q35-10.0); the names as configured and -errno
 * when it cannot tell. */
int vm_resolve_names(struct vm *vm, char *machine, size_t mlen, char *cpu, size_t clen, char *err, size_t errlen);

/* After a kexec: the VM runs on `saved`, the machine its guest was saved on,
 * until its next cold start, when the configuration applies again; status
 * lists where the configuration differs from as_configured, that machine's
 * config before its names were resolved (config_pending). Both hold one VM
 * and are the VM's from now on (freed on failure too). -EINVAL when they are
 * not this VM's. */
int vm_run_saved_machine(struct vm *vm, struct vmconf *saved, struct vmconf *as_configured);
/* The config the VM's QEMU was started from, aliases unresolved: the
 * saved machine's after a restore (until the next cold start), else the
 * configuration's. What an update's manifest records. */
const struct vmconf_vm *vm_conf_as_configured(const struct vm *vm);
/* Why the VM is not what it was (status.vms[].last_error). */
void vm_set_error(struct vm *vm, const char *msg);

/* The update after which this boot came: a VM the operator had stopped
 * stays stopped (not started at boot). */
void vm_hold(struct vm *vm);
/* fd (LUO's retrieved RAM) becomes the guest RAM, owned by the VM; -1 drops
 * the RAM it had. */
void vm_set_ram(struct vm *vm, int fd);
void vm_set_last_update(struct vm *vm, const struct vm_update_record *rec);

/* The one way to end a QEMU: QMP quit when it has QMP, up to grace_ms for
 * it to exit, then SIGKILL; reaped, its streams closed. The RAM memfd stays
 * and the state is the caller's to set. grace_ms 0: kill at once. */
#define VM_END_GRACE_MS 5000
void vm_end(struct vm *vm, int grace_ms);
/* vm_end's first half, the QMP quit alone: asking several QEMUs first lets
 * them exit side by side; vm_end then reaps each. */
void vm_end_ask(struct vm *vm);
/* Test faults only: SIGKILL the QEMU as a crash would; the reaper sees it. */
void vm_crash(struct vm *vm);
/* The serial log file: closed so /state can be unmounted, opened again after. */
void vm_log_open(struct vm *vm);
void vm_log_close(struct vm *vm);

/* Start QEMU on fresh RAM. Returns as soon as QEMU is forked, in state
 * starting: the loop runs its QMP handshake (then running) or sees it fail,
 * so a slow or hung QEMU never holds up PID 1 and several VMs boot side by
 * side. The restart policy begins afresh; a QEMU that fails before QMP is up
 * leaves the VM failed, not retried. */
int vm_start(struct vm *vm, char *err, size_t errlen);
/* The operator's vm-start: vm_start, then serve the loop until QEMU is up or
 * has failed (err says why: -EIO), or a shutdown is pending (0: it is left
 * to the shutdown). reset_restarts: the restart counter starts at 0. */
int vm_start_serving(struct vm *vm, bool reset_restarts, char *err, size_t errlen);
/* The operator's stop: power the guest down, give it timeout_ms, then
 * vm_end; stopped, the restart policy off. serve: the loop keeps running
 * meanwhile (other clients and VMs are served; a second stop gets -EBUSY)
 * and a pending shutdown cuts the wait short, leaving the guest to the
 * shutdown sequence; otherwise vm_power_off_ask came first (the shutdown
 * sequence asks every VM before waiting for any) and this blocks. */
int vm_power_off(struct vm *vm, int timeout_ms, bool serve);
/* The restart policy off and, when press_button, the guest's power button
 * pressed (QMP system_powerdown). */
void vm_power_off_ask(struct vm *vm, bool press_button);
/* The reaper found pid gone: clean up and apply the restart policy. */
bool vm_owns_pid(const struct vm *vm, pid_t pid);
void vm_exited(struct vm *vm, int status);

/* vm/vm_save.c: a VM's device state saved and restored through cpr.c, for
 * the updates. Each fails with err set (-ESRCH: QEMU is gone). */
/* Set up the save into state_fd (the guest runs on), start it (the guest
 * stops), and vm_save_finish waits for it: several VMs are all prepared,
 * then all started, so that they save at once (one blackout). After a
 * failure of any, vm_save_abort cancels it and lets the guest run again.
 * vm_save does it all for one VM. */
int vm_save_prepare(struct vm *vm, int state_fd, bool ignore_shared, char *err, size_t errlen);
int vm_save_start(struct vm *vm, struct cpr_stats *ret, char *err, size_t errlen);
int vm_save_finish(struct vm *vm, int state_fd, struct cpr_stats *ret, char *err, size_t errlen);
void vm_save_abort(struct vm *vm);
int vm_save(struct vm *vm, int state_fd, bool ignore_shared, struct cpr_stats *ret, char *err,
	    size_t errlen);
/* Let a guest that a save stopped run again (QMP cont unless it runs): 0,
 * or -errno when QEMU does not answer (it died: the reaper takes over). */
int vm_cont(struct vm *vm);
/* Start the QEMU that restores a saved VM (after a kexec), run as m says,
 * with -incoming defer, waiting for QMP; keep_ram: on the RAM it has
 * (vm_set_ram). The VM is wanted running from here. preconfig: QEMU stops
 * before creating the machine (it opens no file the VM's config names;
 * its disks come by QMP), until vm_exit_preconfig_*, once QMP is up
 * (vm_wait_qmp). */
int vm_spawn_restore(struct vm *vm, const struct vm_machine *m, bool keep_ram, bool preconfig, char *err,
		     size_t errlen);
/* x-exit-preconfig in two halves, so that several machines are created side
 * by side: begin adds the disks (blockdev-add, awaited) and sends it, finish
 * waits for the machine. Called once the disks are there (/state). */
int vm_exit_preconfig_begin(struct vm *vm, char *err, size_t errlen);
int vm_exit_preconfig_finish(struct vm *vm, char *err, size_t errlen);
/* Its taps onto their bridges (a QEMU started in preconfig made them before
 * the bridges existed); a failure is logged, the VM runs without that link. */
void vm_nics_attach(struct vm *vm);
/* A QEMU started to restore is forked without waiting for it (several start
 * side by side): this waits for its QMP greeting and capabilities, until
 * 30 s after its fork. On failure QEMU is ended, the VM failed, err says why. */
int vm_wait_qmp(struct vm *vm, char *err, size_t errlen);
/* Restore state_fd into the QEMU vm_spawn_restore started and make sure the
 * guest runs (the state is not changed: the caller says why it runs). */
int vm_restore(struct vm *vm, int state_fd, bool ignore_shared, char *err, size_t errlen);
/* vm_restore in two halves, so several guests load side by side. */
int vm_restore_begin(struct vm *vm, int state_fd, bool ignore_shared, char *err, size_t errlen);
int vm_restore_finish(struct vm *vm, char *err, size_t errlen);
/* Start QEMU on the RAM memfd it has (-incoming defer) and restore state_fd
 * into it, up to `tries` times, each on a fresh QEMU (one still there from a
 * failed restore is ended first); running on success. */
int vm_restore_in_place(struct vm *vm, int state_fd, bool ignore_shared, int tries, double *ret_started,
			char *err, size_t errlen);
/* Restart QEMU in place keeping RAM (design.md §4 vmm-update; vmm_update.c). */
int vm_vmm_update(struct vm *vm, char *err, size_t errlen);

/* Serial log tail (last `bytes` bytes) in a malloc'd string. */
char *vm_log_tail(struct vm *vm, size_t bytes);
/* {"name":..., "state":..., ...} for status. */
struct json_object *vm_status_json(const struct vm *vm);

#endif
