/* The host kernel live update (design.md §6). */
#ifndef LUOINIT_UPDATE_H
#define LUOINIT_UPDATE_H

#include <stddef.h>

struct update_req {
	const char *kernel;   /* NULL: the config's update.kernel */
	const char *initrd;
	const char *cmdline;  /* NULL: the config's, else the running kernel's */
	const char *fault;    /* test-only fault injection (see update.c), or NULL */
};

struct json_object;

/* Before the blackout: checks, kexec_file_load, LUO sessions and PRESERVE_FD
 * of every VM's RAM. On success the blackout is scheduled for the next loop
 * turn (after the reply went out) and *ret describes it; on failure nothing
 * changed and err says why. */
int update_start(const struct update_req *req, struct json_object **ret, char *err, size_t errlen);
/* The blackout, if one is scheduled: save, manifest, kexec. Returns only
 * when the kexec did not happen; then every VM runs as before. */
void update_run_pending(void);
/* After a kexec (at start-up, before VMs start): restore the VMs of the
 * manifest on their preserved RAM. VMs it restored are running on return. */
void update_resume(const char *state_dir);

#endif
