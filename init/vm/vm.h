/* The VM supervisor: one struct vm per configured VM, its QEMU process, RAM
 * memfd, QMP connection, serial and stderr streams, and restart policy. */
#ifndef LUOINIT_VM_H
#define LUOINIT_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pid1/logfile.h"
#include "vmconf.h"

struct qmp;
struct json_object;

/* The states of design.md §4. vm/lifecycle.c's table says which changes are
 * legal; vm_set_state is the only writer of vm->state. */
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

#define VM_RING_SIZE (64 * 1024)
/* A serial log is rotated past this size, VM_SERIAL_KEEP older files kept. */
#define VM_SERIAL_CAP (4 << 20)
#define VM_SERIAL_KEEP 3

struct vm {
	const struct vmconf_vm *conf;
	enum vm_state state;
	bool want_running;          /* the operator's intent: restart policy applies */
	bool held;                  /* stopped before the update that booted us: not started */
	bool stopping;              /* vm_power_off(serve) is waiting for the guest */
	bool starting;              /* a vm-start is waiting for QMP (commands.c) */
	bool policy_spawn;          /* this start is a policy restart: a failure keeps the policy */
	pid_t pid;                  /* QEMU, 0 when none */
	int ram_fd;                 /* guest RAM memfd, -1 when none */
	struct qmp *qmp;
	struct qmp *greet;          /* QMP while its handshake runs (starting), then qmp */
	int start_timer;            /* timerfd bounding the QMP handshake, -1 */
	int serial_fd;              /* our end of the serial socketpair */
	int err_fd;                 /* read end of QEMU's stderr pipe */
	struct logfile serial_log;  /* the serial log file, rotated (fd -1 for "log") */
	int restart_timer;          /* timerfd of a pending restart, -1 */
	enum vmconf_accel accel;    /* resolved once, kept across updates */
	enum vmconf_ram ram_backing;/* resolved */
	unsigned restarts;
	unsigned backoff_ms;
	uint64_t started_ms;        /* monotonic: forked, then up (back-off reset) */
	int last_status;            /* wait status of the last QEMU exit */
	char last_error[256];
	char qemu_version[32];
	struct vm_update_record last_update;
	char errline[512];          /* partial stderr line */
	size_t errlen;
	char serline[512];          /* partial serial line ("log" serial) */
	size_t serlen;
	char *ring;                 /* last VM_RING_SIZE bytes of serial output */
	size_t ring_len, ring_head;
};

struct vm_env {
	const char *firmware_dir;   /* -L for QEMU, or NULL */
	bool sandbox;
	bool fdset_ok;              /* the probe said QEMU resolves /dev/fdset for RAM */
};

extern struct vm_env vm_env;

const char *vm_state_name(enum vm_state s);
/* vm/lifecycle.c: change vm->state to `to` for `reason` (logged, and sent as
 * a VM_STATE_CHANGED event); a change the table forbids is logged and
 * refused (false). */
bool vm_set_state(struct vm *vm, enum vm_state to, const char *reason);
bool vm_transition_allowed(enum vm_state from, enum vm_state to);
void vm_state_init(struct vm *vm); /* stopped: vm_init's start */

int vm_init(struct vm *vm, const struct vmconf_vm *conf);
/* The one way to end a QEMU: QMP quit when it has QMP, up to grace_ms for
 * it to exit, then SIGKILL; reaped, its streams closed. The RAM memfd stays
 * and vm->state is the caller's to set. grace_ms 0: kill at once. */
#define VM_END_GRACE_MS 5000
void vm_end(struct vm *vm, int grace_ms);
/* vm_end's first half, the QMP quit alone: asking several QEMUs first lets
 * them exit side by side; vm_end then reaps each. */
void vm_end_ask(struct vm *vm);
/* The serial log file: closed so /state can be unmounted, opened again after. */
void vm_log_open(struct vm *vm);
void vm_log_close(struct vm *vm);

/* Start QEMU on fresh RAM (or on vm->ram_fd as it is when keep_ram).
 * incoming: start with -incoming defer and wait for QMP (restores need it at
 * once). Otherwise return as soon as QEMU is forked, in state starting: the
 * loop runs its QMP handshake (then running) or sees it fail, so a slow or
 * hung QEMU never holds up PID 1 and several VMs boot side by side. */
int vm_spawn(struct vm *vm, bool keep_ram, bool incoming, char *err, size_t errlen);
/* The operator's start: the restart counter and policy begin afresh; a QEMU
 * that fails before QMP is up leaves the VM failed, not retried. */
int vm_start(struct vm *vm, char *err, size_t errlen);
/* Press the guest's power button (QMP system_powerdown). */
int vm_powerdown(struct vm *vm);
/* The operator's stop: power the guest down, give it timeout_ms, then
 * vm_end; stopped, the restart policy off. serve: the loop keeps running
 * meanwhile (other clients and VMs are served; vm->stopping is set, a second
 * stop gets -EBUSY); otherwise the power button was pressed already (the
 * shutdown sequence presses every VM's first) and this blocks. */
int vm_power_off(struct vm *vm, int timeout_ms, bool serve);
/* The reaper found pid gone: clean up and apply the restart policy. */
bool vm_owns_pid(const struct vm *vm, pid_t pid);
void vm_exited(struct vm *vm, int status);
/* Start QEMU on the RAM memfd it has (-incoming defer) and restore state_fd
 * into it, up to `tries` times, each on a fresh QEMU (one still there from a
 * failed restore is killed first); running on success (vmm_update.c). */
int vm_restore_in_place(struct vm *vm, int state_fd, bool ignore_shared, int tries, double *ret_started,
			char *err, size_t errlen);
/* Restart QEMU in place keeping RAM (design.md §4 vmm-update). */
int vm_vmm_update(struct vm *vm, char *err, size_t errlen);

/* Serial log tail (last `bytes` bytes) in a malloc'd string. */
char *vm_log_tail(struct vm *vm, size_t bytes);
/* {"name":..., "state":..., ...} for status. */
struct json_object *vm_status_json(const struct vm *vm);

/* vm_io.c: watch QEMU's stderr, the serial port and QMP events in the loop;
 * close them after QEMU is gone (draining first); stderr for error messages. */
int vm_watch(struct vm *vm);
void vm_close_streams(struct vm *vm);
void vm_stderr_snapshot(struct vm *vm, char *err, size_t errlen);

#endif
