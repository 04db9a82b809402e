/* The update manifest, /state/luoinit/handoff.json (design.md §5, §6): what
 * the old init saved and where, read by the new init after the kexec. */
#ifndef LUOINIT_HANDOFF_H
#define LUOINIT_HANDOFF_H

#include <stddef.h>
#include <stdint.h>

#include "update/fileid.h"
#include "vmconf.h"

#define HANDOFF_FILE    "handoff.json"
#define HANDOFF_MAX_VMS 64
#define HANDOFF_MAX_MODULES 16
#define HANDOFF_MAX_SIZE (256 * 1024)
/* LUO mode: the manifest also travels in a session of its own (a VM name
 * cannot hold ':'), one sealed memfd, so the new init has it before it
 * loads modules or mounts /state. */
#define HANDOFF_SESSION "luoinit:handoff"
#define HANDOFF_TOKEN   1
/* 1: no machine record (restores trusted the current config); 2: each VM's
 * saved machine and its disks' identities. An init reads every version up to
 * its own and refuses a newer one (handoff_read: -EPROTONOSUPPORT). */
#define HANDOFF_VERSION 2

struct handoff_vm {
	char name[33];
	uint32_t memory_mib;
	/* machine and cpu as QEMU resolved them at the VM's start (q35 ->
	 * pc-q35-10.0); accel and ram_backing resolved too */
	char machine[64], cpu[64], accel[8], ram_backing[8], qemu_version[32];
	/* The VM's config as it was when its QEMU started (owned; NULL in a
	 * version 1 manifest), and the identity of each of its disks then. */
	struct vmconf *saved;
	struct fileid disk_id[VMCONF_MAX_DISKS];
	int64_t ram_size;          /* bytes of the RAM memfd */
	int64_t vmstate_bytes;
	char vmstate_file[256];    /* full-ram mode: the state on /state; else "" */
	int64_t ram_transferred;
	double stopped_at;         /* CLOCK_REALTIME ms */
	double save_ms;
};

struct handoff {
	int version;               /* of the manifest read; HANDOFF_VERSION when written */
	uint64_t generation;       /* random; RAM token = generation, state token = generation + 1 */
	char mode[16];             /* "luo" or "full-ram" */
	char old_kernel[65];
	double kexec_at;           /* CLOCK_REALTIME ms just before reboot() */
	uint64_t kexec_tsc;        /* TSC then (tsc.h), 0 when unknown */
	int sandbox;               /* QEMU ran under -sandbox: so does the restored one */
	double tsc_hz;
	size_t n_vms;
	struct handoff_vm vms[HANDOFF_MAX_VMS];
	size_t n_held;             /* VMs the operator had stopped: they stay so */
	char held[HANDOFF_MAX_VMS][33];
	/* Kernel modules the restore needs (the state device's drivers, KVM,
	 * tun/vhost): loaded first after the kexec, the rest after the restore.
	 * Optional (absent in older manifests). */
	size_t n_modules;
	char modules[HANDOFF_MAX_MODULES][64];
	/* A test fault for the new init (fault.h, FAULT_AT_EARLY_QEMU), "" for
	 * none; optional, written only when set. */
	char test_fault[32];
};

static inline uint64_t handoff_ram_token(const struct handoff *h) { return h->generation; }
static inline uint64_t handoff_state_token(const struct handoff *h) { return h->generation + 1; }
static inline const char *handoff_session_prefix(void) { return "luoinit."; }

/* Record the machine vm runs on into m: a validated copy of its config
 * (m->saved) and its disks' identities. 0, or -errno (err says what). */
int handoff_vm_save_machine(struct handoff_vm *m, const struct vmconf_vm *conf, char *err, size_t errlen);
/* The machine to restore m on, in *ret (one VM, the caller's to free): its
 * saved config with machine, cpu, accel and ram_backing as resolved at its
 * start, after checking that every disk is the file it was and the QEMU
 * binary is there. 0, or -errno with err naming what is gone or replaced. */
int handoff_vm_machine(const struct handoff_vm *m, struct vmconf **ret, char *err, size_t errlen);
/* The same without the disks' check, for a QEMU started before its disks
 * are there; handoff_vm_disks_check must pass before its machine is
 * created (the disks opened). */
int handoff_vm_machine_early(const struct handoff_vm *m, struct vmconf **ret, char *err, size_t errlen);
int handoff_vm_disks_check(const struct handoff_vm *m, char *err, size_t errlen);
/* Free what handoff_read or handoff_vm_save_machine allocated. */
void handoff_free(struct handoff *h);

/* The manifest as JSON text (the caller frees it), NULL when out of memory. */
char *handoff_text(const struct handoff *h);
/* Write DIR/handoff.json atomically: tmp, fsync, rename, fsync of DIR. */
int handoff_write(const char *dir, const struct handoff *h);
/* Parse and validate len bytes of text (errors as handoff_read's). */
int handoff_parse(const char *text, size_t len, struct handoff *ret, char *err, size_t errlen);
/* Read and validate; -ENOENT when there is none, -EINVAL (err says what)
 * when it is corrupt, -EPROTONOSUPPORT when a newer luoinit wrote it. */
int handoff_read(const char *dir, struct handoff *ret, char *err, size_t errlen);
/* Move the manifest and the state files it names to DIR/stale/TIME/, then
 * bound stale/ (handoff_prune_stale). Returns 0 or -errno. */
int handoff_set_aside(const char *dir, const struct handoff *h, const char *why);
/* stale/ is bounded: past cap bytes the oldest set-aside states are deleted
 * (logged), the newest always kept. The cap is a quarter of the filesystem,
 * at most HANDOFF_STALE_CAP_MAX. Returns how many were deleted. */
#define HANDOFF_STALE_CAP_MAX (8ULL << 30)
uint64_t handoff_stale_cap(const char *dir);
int handoff_prune_stale(const char *dir, uint64_t cap);
/* The state was consumed: remove the manifest (and full-ram state files). */
int handoff_consume(const char *dir, const struct handoff *h);
uint64_t handoff_new_generation(void);

#endif
