/* The kernel's Live Update Orchestrator (luo.md): sessions that carry memfds
 * across a kexec. Thin wrappers over /dev/liveupdate's ioctls; 0 or -errno. */
#ifndef LUOINIT_LUO_H
#define LUOINIT_LUO_H

#include <stdint.h>

#define LUO_DEVICE "/dev/liveupdate"

/* Only one process may hold /dev/liveupdate: returns the fd or -errno
 * (-ENOENT without LUO, -EBUSY when held elsewhere, -EIO for bad handover). */
int luo_open(void);
int luo_create_session(int devfd, const char *name);   /* returns a session fd */
int luo_retrieve_session(int devfd, const char *name); /* returns a session fd */
int luo_preserve_fd(int sfd, int fd, uint64_t token);
int luo_retrieve_fd(int sfd, uint64_t token);          /* returns the fd (O_CLOEXEC) */
int luo_finish(int sfd);

#endif
