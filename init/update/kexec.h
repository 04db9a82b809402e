/* Loading and starting the next kernel with kexec_file_load. */
#ifndef LUOINIT_KEXEC_H
#define LUOINIT_KEXEC_H

/* Load kernel + initrd (NULL: none) with cmdline. 0 or -errno. */
int kexec_load(const char *kernel, const char *initrd, const char *cmdline);
int kexec_unload(void);
/* Jump. Returns only on failure (-errno): the system keeps running. */
int kexec_jump(void);

#endif
