/* vmconf: the VM configuration of luoinit (schema version 1, design.md §3).
 *
 * The library parses and validates with json-c and builds QEMU's argv.
 * It never logs: every problem comes back as data (JSON path, what was
 * expected, what was found). */
#ifndef VMCONF_H
#define VMCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMCONF_MAX_FILE   (1024 * 1024) /* bytes a config file may have */
#define VMCONF_MAX_DEPTH  16            /* JSON nesting accepted */
#define VMCONF_NAME_MAX   32
/* QEMU's seccomp filter: no obsolete syscalls, no setuid, no fork/exec, no
 * scheduler or affinity changes. */
#define VMCONF_SANDBOX_OPTS "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
#define VMCONF_MAX_VMS    64
#define VMCONF_MAX_DISKS  16
#define VMCONF_MAX_NICS   8             /* per VM: each takes up to two fds in QEMU */
#define VMCONF_MAX_BRIDGES 16
#define VMCONF_IFNAME_MAX 15            /* an interface name: IFNAMSIZ - 1 */
#define VMCONF_MAC_LEN    17            /* "52:54:00:12:34:56" */
#define VMCONF_MAX_QEMU_ARGS 64
#define VMCONF_PATH_MAX   4095          /* bytes in a path field */
#define VMCONF_CMDLINE_MAX 4096
#define VMCONF_MAX_ERRORS 100           /* listed; one more entry says the rest were cut */

enum vmconf_accel { VMCONF_ACCEL_AUTO, VMCONF_ACCEL_KVM, VMCONF_ACCEL_TCG };
enum vmconf_restart { VMCONF_RESTART_ON_FAILURE, VMCONF_RESTART_ALWAYS, VMCONF_RESTART_NEVER };
enum vmconf_ram { VMCONF_RAM_AUTO, VMCONF_RAM_FDSET, VMCONF_RAM_PROCFD };

struct vmconf_disk {
	char *path;
	char *format;     /* "raw" (default) or "qcow2" */
	bool readonly;
};

/* One NIC of a VM: a tap on a bridge of the network section. */
struct vmconf_nic {
	char *bridge;
	char mac[VMCONF_MAC_LEN + 1]; /* lower case; derived when the config has none */
	bool mac_derived;
	char *model;      /* QEMU device, default "virtio-net-pci" */
};

struct vmconf_bridge {
	char name[VMCONF_IFNAME_MAX + 1];
	char *uplink;     /* an interface enslaved to the bridge, or NULL */
};

struct vmconf_vm {
	char name[VMCONF_NAME_MAX + 1];
	uint32_t memory_mib;
	uint32_t vcpus;
	char *machine;    /* default "q35" */
	char *cpu;        /* default "max" */
	enum vmconf_accel accel;
	char *kernel;     /* NULL when absent or null */
	char *initrd;
	char *cmdline;
	struct vmconf_disk *disks;
	size_t n_disks;
	char *serial;     /* a path, or "log" (the default) */
	enum vmconf_restart restart;
	enum vmconf_ram ram_backing;
	char *qemu;       /* default "/usr/bin/qemu-system-x86_64" */
	char **qemu_args;
	size_t n_qemu_args;
	char *user;       /* extension: run QEMU as this user (NULL: as root) */
	struct vmconf_nic *nics;
	size_t n_nics;
};

struct vmconf {
	int version;
	struct vmconf_vm *vms;
	size_t n_vms;
	char *update_kernel;   /* the "update" block; NULL when absent */
	char *update_initrd;
	char *update_cmdline;
	bool has_network;      /* the "network" section is there (even empty) */
	struct vmconf_bridge *bridges;
	size_t n_bridges;
};

struct vmconf_error {
	char *path;       /* e.g. "vms[1].memory_mib", "" for the document */
	char *expected;   /* e.g. "an integer from 16 to 1048576 that is a multiple of 2" */
	char *found;      /* e.g. "\"1G\"" (JSON text, shortened) or "nothing" */
};

struct vmconf_errors {
	struct vmconf_error *v;
	size_t n;
};

/* Parse and validate. On success returns 0 and *ret is set; on failure returns
 * -EINVAL (schema or JSON errors, all listed in errs), or another negative errno
 * for I/O (errs then holds one entry naming the file). errs may be NULL. */
int vmconf_parse_file(const char *path, struct vmconf **ret, struct vmconf_errors *errs);
int vmconf_parse_buffer(const char *buf, size_t len, struct vmconf **ret, struct vmconf_errors *errs);
void vmconf_free(struct vmconf *c);

/* "PATH: expected EXPECTED, got FOUND" in a malloc'd string. */
char *vmconf_error_format(const struct vmconf_error *e);
void vmconf_errors_clear(struct vmconf_errors *errs);

const struct vmconf_vm *vmconf_find(const struct vmconf *c, const char *name);
const char *vmconf_accel_name(enum vmconf_accel a);      /* "auto", "kvm", "tcg" */
const char *vmconf_ram_name(enum vmconf_ram r);          /* "auto", "fdset", "procfd" */
const char *vmconf_restart_name(enum vmconf_restart r);

/* The MAC of a NIC the config gives none: 52 then the low 40 bits of the
 * 64-bit FNV-1a hash of "NAME/INDEX" (locally administered, unicast, the
 * same on every host and across updates). out gets VMCONF_MAC_LEN + 1 bytes. */
void vmconf_mac_derive(const char *vm_name, size_t index, char *out);

/* One NIC's fds as QEMU sees them: its tap, and its vhost-net device or -1. */
struct vmconf_argv_nic {
	int tap_fd;
	int vhost_fd;
};

/* What the argv builder needs beyond the VM's own config: the resolved
 * choices and the fd numbers as QEMU will see them. */
struct vmconf_argv_opts {
	enum vmconf_ram ram_backing; /* FDSET or PROCFD (AUTO is resolved by the caller) */
	int ram_fd;                  /* the RAM memfd's fd number in QEMU (>= 3) */
	int ram_fdset;               /* fdset id for FDSET backing */
	enum vmconf_accel accel;     /* KVM or TCG (resolved) */
	int qmp_fd;                  /* connected socket for QMP (>= 3) */
	int serial_fd;               /* connected socket for the first serial port, or -1 for none */
	bool incoming_defer;         /* add "-incoming defer" */
	bool preconfig;              /* add "--preconfig": QEMU waits before creating the machine
	                              * (QMP x-exit-preconfig), which opens -kernel and -initrd */
	bool disks_by_qmp;           /* each disk's -device only, its node added by QMP (vmconf_blockdev_args)
	                              * before x-exit-preconfig: QEMU starts before the disks exist;
	                              * needs preconfig */
	bool sandbox;                /* add "-sandbox VMCONF_SANDBOX_OPTS" */
	const char *firmware_dir;    /* "-L DIR", or NULL */
	const struct vmconf_argv_nic *nics; /* one per vm->nics (n_nics of them) */
	size_t n_nics;
};

/* Build the exact argv (argv[0] = vm->qemu), NULL-terminated, in *ret.
 * Returns 0 or a negative errno. Free with vmconf_argv_free(). */
int vmconf_build_argv(const struct vmconf_vm *vm, const struct vmconf_argv_opts *o, char ***ret);
void vmconf_argv_free(char **argv);

struct json_object;

/* The QMP blockdev-add arguments of disk i, for argv built with
 * disks_by_qmp: the same node as -drive makes of it, named disk<i> as the
 * -device refers to it. NULL when out of memory or i is out of range. */
struct json_object *vmconf_blockdev_args(const struct vmconf_vm *vm, size_t i);

/* machine.c: one VM's config as JSON (schema v1, every field written) and
 * back through the validator into a struct vmconf holding that one VM. */
struct json_object *vmconf_vm_to_json(const struct vmconf_vm *vm);
int vmconf_vm_from_json(const struct json_object *o, struct vmconf **ret, struct vmconf_errors *errs);
/* The fields in which a and b differ, as JSON paths ("vcpus",
 * "disks[0].path"), NULL-terminated in *ret (NULL when equal). Returns how
 * many, or -ENOMEM. Free with vmconf_strv_free. */
int vmconf_vm_diff(const struct vmconf_vm *a, const struct vmconf_vm *b, char ***ret);
void vmconf_strv_free(char **v);

#endif
