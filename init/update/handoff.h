/* The update manifest, /state/luoinit/handoff.json (design.md §5, §6): what
 * the old init saved and where, read by the new init after the kexec. */
#ifndef LUOINIT_HANDOFF_H
#define LUOINIT_HANDOFF_H

#include <stddef.h>
#include <stdint.h>

#define HANDOFF_FILE    "handoff.json"
#define HANDOFF_MAX_VMS 64

struct handoff_vm {
	char name[33];
	uint32_t memory_mib;
	char machine[64], cpu[64], accel[8], ram_backing[8], qemu_version[32];
	int64_t ram_size;          /* bytes of the RAM memfd */
	int64_t vmstate_bytes;
	char vmstate_file[256];    /* full-ram mode: the state on /state; else "" */
	int64_t ram_transferred;
	double stopped_at;         /* CLOCK_REALTIME ms */
	double save_ms;
};

struct handoff {
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
};

static inline uint64_t handoff_ram_token(const struct handoff *h) { return h->generation; }
static inline uint64_t handoff_state_token(const struct handoff *h) { return h->generation + 1; }
static inline const char *handoff_session_prefix(void) { return "luoinit."; }

/* Write DIR/handoff.json atomically: tmp, fsync, rename, fsync of DIR. */
int handoff_write(const char *dir, const struct handoff *h);
/* Read and validate; -ENOENT when there is none, -EINVAL (err says what)
 * when it is corrupt. */
int handoff_read(const char *dir, struct handoff *ret, char *err, size_t errlen);
/* Move the manifest and the state files it names to DIR/stale/TIME/; never
 * deletes. Returns 0 or -errno. */
int handoff_set_aside(const char *dir, const struct handoff *h, const char *why);
/* The state was consumed: remove the manifest (and full-ram state files). */
int handoff_consume(const char *dir, const struct handoff *h);
uint64_t handoff_new_generation(void);

#endif
