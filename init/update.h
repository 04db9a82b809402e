/* The host kernel live update (design.md §6). */
#ifndef LUOINIT_UPDATE_H
#define LUOINIT_UPDATE_H

#include <stddef.h>

struct update_req {
	const char *kernel;   /* NULL: the config's update.kernel */
	const char *initrd;
	const char *cmdline;  /* NULL: the config's, else the running kernel's */
};

/* Run the update. Returns only on failure (negative errno, err says why, and
 * every VM runs as before) or, without a kexec (--host mode), never succeeds. */
int update_start(const struct update_req *req, char *err, size_t errlen);

#endif
