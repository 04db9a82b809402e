/* Which loaded kernel modules something needs, read from sysfs: the old
 * init records them in the update manifest, so that the new one loads only
 * those before the restore and the rest after it. */
#ifndef LUOINIT_MODNEED_H
#define LUOINIT_MODNEED_H

#include <stddef.h>
#include <sys/types.h>

#define MODNEED_NAME 64

/* Add NAME to the list out[*n] (max rows) unless it is there, or it is not
 * a loadable module now in the kernel (built-in code needs no loading). */
void modneed_add(const char *sysfs, const char *name, char (*out)[MODNEED_NAME], size_t max, size_t *n);
/* The drivers of block device rdev and of every device above it (a
 * partition's disk, the disk's virtio or PCI parent), as modules. */
void modneed_blockdev(const char *sysfs, dev_t rdev, char (*out)[MODNEED_NAME], size_t max, size_t *n);

#endif
