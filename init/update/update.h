/* The host kernel live update (design.md §6). The supervisor hands every
 * call a context; results and errors come back as return values, nothing
 * here calls up. */
#ifndef LUOINIT_UPDATE_H
#define LUOINIT_UPDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct handoff;
struct json_object;
struct vm;
struct vm_host;
struct vmconf;

/* What the update needs of the host, the configuration and the VMs. */
struct update_ctx {
	bool pid1;                  /* else --host mode: no update */
	bool test_faults;           /* luoinit.test_faults=1 or --test-faults: fault= is accepted */
	const char *state_dir;      /* "/state" */
	const char *state_device;   /* mounted there again on a rollback; NULL when unknown */
	bool state_mounted;
	const struct vmconf *conf;  /* NULL when the configuration was refused */
	struct vm *const *vms;
	size_t n_vms;
	const struct vm_host *host; /* how QEMU runs here, for the manifest */
	double boot_realtime_ms;    /* CLOCK_REALTIME when this init started */
	uint64_t boot_tsc;          /* and the TSC then */
};

struct update_req {
	const char *kernel;   /* NULL: the config's update.kernel */
	const char *initrd;
	const char *image;    /* a signed firmware image's VERSION: <state_dir>/firmware/VERSION.efi,
			       * its initramfs built in; excludes kernel and initrd */
	const char *cmdline;  /* NULL: the config's, else the running kernel's */
	const char *mode;     /* "auto" (NULL), "luo" or "full-ram" */
	const char *fault;    /* a test fault (update/fault.h), or NULL */
};

/* Why kexec_file_load refused a kernel, in words ("" when it says nothing
 * about the signature): the -errno of a failed signature check. */
const char *update_sig_verdict(int r);

/* Before the blackout: checks, kexec_file_load, LUO sessions and PRESERVE_FD
 * of every VM's RAM. On success the blackout is scheduled for the next loop
 * turn (after the reply went out) and *ret describes it; on failure nothing
 * changed and err says why. */
int update_start(const struct update_ctx *c, const struct update_req *req, struct json_object **ret,
		 char *err, size_t errlen);
/* The blackout, if one is scheduled: save, manifest, kexec. Returns only
 * when the kexec did not happen: 0 when none was scheduled, else a negative
 * errno with err saying why; every VM then runs as before. */
int update_run_pending(const struct update_ctx *c, char *err, size_t errlen);

struct update_resume_result {
	double kexec_ms;            /* this boot's kexec, 0 on a cold boot */
	char error[512];            /* what was set aside and why, or "" */
	const char *manifest;       /* where it was read: "luo", "state", or NULL (none) */
};
/* First thing after a kexec, before modules and /state: the manifest's LUO
 * copy (HANDOFF_SESSION), parsed into *h. 0; -ENOENT when there is none
 * (cold boot, LUO off, full-RAM mode); another -errno with err when it is
 * there but unusable (update_resume then reads the file). */
int update_early_manifest(struct handoff *h, char *err, size_t errlen);
/* Right after update_early_manifest, before /state is mounted: the QEMU of
 * every VM of the manifest (LUO mode) that opens nothing of /state before
 * its machine is created (no disks, no extra QEMU arguments, its QEMU not
 * on /state) is started on its retrieved RAM, stopped before creating the
 * machine (--preconfig), its taps not yet on their bridges: its start
 * overlaps mounting /state, reading the configuration and the bridges.
 * update_take_prespawned hands each to the configuration (supervisor);
 * update_resume finishes or ends them. h must stay until update_resume.
 * test_faults: the kernel command line allows the manifest's test_fault. */
void update_prespawn(const struct handoff *h, const char *state_dir, bool test_faults);
/* The VM started early for the configuration's VM name, or NULL: the
 * caller's from now on (vm_adopt_config). */
struct vm *update_take_prespawned(const char *name);

/* After a kexec (at start-up, before VMs start): restore the VMs of the
 * manifest on their preserved RAM, from early (update_early_manifest's,
 * taken over and freed) or else from /state. VMs it restored are running on
 * return; those the operator had stopped are held (vm_held). */
void update_resume(const struct update_ctx *c, struct handoff *early, struct update_resume_result *ret);

#endif
