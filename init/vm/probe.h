/* Probes of what the installed QEMU can do. */
#ifndef LUOINIT_PROBE_H
#define LUOINIT_PROBE_H

/* Does QEMU at path resolve /dev/fdset/N for memory-backend-file's mem-path?
 * Starts it once with a 2 MiB memfd in fdset 1 and no machine: a QEMU that
 * opens mem-path with plain open() fails before its QMP greeting. Returns 1
 * (yes), 0 (no) or a negative errno when QEMU could not be run at all. */
int probe_fdset(const char *qemu);
/* Does QEMU at path support -sandbox with luoinit's deny options (seccomp)?
 * 1, 0 or -errno, as probe_fdset. */
int probe_sandbox(const char *qemu);

#endif
