/* Guest RAM as a memfd that the init owns. */
#ifndef LUOINIT_RAM_H
#define LUOINIT_RAM_H

#include <stdint.h>

/* A memfd named "luoinit:NAME", sized to mib MiB, sealed against shrinking and
 * growing (the guest layout is fixed; a truncate would SIGBUS QEMU). O_CLOEXEC:
 * the spawner hands it to the one child that needs it. Returns the fd or a
 * negative errno. */
int ram_create(const char *name, uint32_t mib);
/* Size in bytes of an fd, or a negative errno. */
int64_t ram_size(int fd);
/* A memfd for a saved device state ("luoinit:NAME.vmstate"), unsealed. */
int ram_create_state(const char *name);
/* Reopen fd through /proc/self/fd with the given access mode (QEMU's fdsets
 * match on O_RDONLY/O_WRONLY), O_CLOEXEC. */
int ram_reopen(int fd, int accmode);

#endif
