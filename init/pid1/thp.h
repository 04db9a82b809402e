/* Guest RAM in transparent huge pages: memfds live on the kernel's internal
 * shmem mount, whose huge page policy is the global shmem_enabled. With
 * within_size a guest's RAM memfd (a multiple of 2 MiB) is backed by 2 MiB
 * folios as it is touched, and LUO preserves and restores it folio by folio
 * (mm/memfd_luo.c): 512 times fewer to restore after the kexec. */
#ifndef LUOINIT_THP_H
#define LUOINIT_THP_H

#include <stddef.h>

#define THP_SHMEM_ENABLED "/sys/kernel/mm/transparent_hugepage/shmem_enabled"

/* As PID 1: ask for within_size unless the kernel was told otherwise on its
 * command line (transparent_hugepage_shmem=). The mode in effect goes to
 * mode ("never" when the kernel has no THP); 0 or -errno. */
int thp_shmem_setup(const char *path, char *mode, size_t len);

#endif
