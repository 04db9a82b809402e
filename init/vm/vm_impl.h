/* struct vm and what the vm/ files share; nothing outside vm/ includes this
 * (tests may: they look inside). */
#ifndef LUOINIT_VM_IMPL_H
#define LUOINIT_VM_IMPL_H

#include "net/net.h"
#include "pid1/logfile.h"
#include "vm/vm.h"

struct qmp;

#define VM_RING_SIZE (64 * 1024)
/* A serial log is rotated past this size, VM_SERIAL_KEEP older files kept. */
#define VM_SERIAL_CAP (4 << 20)
#define VM_SERIAL_KEEP 3
/* Room in QEMU's end of the serial socket. QEMU writes the guest's output a
 * byte per write, and each byte queued costs a socket buffer's worth of
 * bookkeeping (about 770 bytes): the default 208 KiB holds 278 bytes, a
 * second of a chatty guest. Past that QEMU's UART holds 16 more, then
 * drops the oldest while the guest, which waits only so long, writes on.
 * 8 MiB hold about 10,900 bytes for the times the init reads nothing
 * (a kexec_file_load, a slow disk). */
#define VM_SERIAL_SNDBUF (8 << 20)

struct vm {
	const struct vmconf_vm *conf;   /* what QEMU runs with: base_conf, or the saved machine */
	const struct vmconf_vm *base_conf; /* the configuration's (borrowed) */
	struct vmconf *saved;       /* the machine a restored guest was saved on, until its next cold start */
	struct vmconf *saved_conf;  /* and that machine's config before its names were resolved */
	char **config_pending;      /* where base_conf differs from it (JSON paths), NULL-terminated */
	const struct vm_host *host;
	enum vm_state state;        /* written by vm_set_state (lifecycle.c) only */
	bool want_running;          /* the operator's intent: restart policy applies */
	bool held;                  /* stopped before the update that booted us: not started */
	bool stopping;              /* vm_power_off(serve) is waiting for the guest */
	bool starting;              /* vm_start_serving is waiting for QMP */
	bool policy_spawn;          /* this start is a policy restart: a failure keeps the policy */
	int sandbox;                /* -1: the host's; 0/1: kept from the manifest (vm_spawn_restore) */
	pid_t pid;                  /* QEMU, 0 when none */
	int ram_fd;                 /* guest RAM memfd, -1 when none */
	struct qmp *qmp;
	struct qmp *greet;          /* QMP while its handshake runs (starting), then qmp */
	int start_timer;            /* timerfd bounding the QMP handshake, -1 */
	int serial_fd;              /* our end of the serial socketpair */
	int err_fd;                 /* read end of QEMU's stderr pipe */
	struct logfile serial_log;  /* the serial log file, rotated (fd -1 for "log") */
	int restart_timer;          /* timerfd of a pending restart, -1 */
	int64_t preconfig_id;       /* QMP id of its x-exit-preconfig (vm_exit_preconfig_begin) */
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
	struct net_nic nics[VMCONF_MAX_NICS]; /* taps, kept across its QEMUs */
	bool vhost[VMCONF_MAX_NICS];    /* the running QEMU has vhost-net on NIC i */
	char *ring;                 /* last VM_RING_SIZE bytes of serial output */
	size_t ring_len, ring_head;
};

/* lifecycle.c: a new VM's first state (stopped). */
void vm_state_init(struct vm *vm);

/* Start QEMU on fresh RAM (or on vm->ram_fd as it is when keep_ram).
 * VM_SPAWN_BOOT: as vm_start says. VM_SPAWN_INCOMING: with -incoming defer,
 * waiting for QMP (restores need it at once); VM_SPAWN_PRECONFIG: that, and
 * QEMU stops before creating the machine (vm_exit_preconfig). */
enum vm_spawn_mode { VM_SPAWN_BOOT, VM_SPAWN_INCOMING, VM_SPAWN_PRECONFIG };
int vm_spawn(struct vm *vm, bool keep_ram, enum vm_spawn_mode mode, char *err, size_t errlen);

/* vm_io.c: watch QEMU's stderr, the serial port and QMP events in the loop;
 * close them after QEMU is gone (draining first); stderr for error messages. */
int vm_watch(struct vm *vm);
void vm_close_streams(struct vm *vm);
/* Read what QEMU's stderr has into the log: 0, or -1 at its end. */
int vm_read_stderr(void *vm);
void vm_stderr_snapshot(struct vm *vm, char *err, size_t errlen);

#endif
