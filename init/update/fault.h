/* Test faults: `update fault=NAME`, accepted only when the kernel command
 * line has luoinit.test_faults=1 (--test-faults in --host mode). Each one
 * makes one step of the update fail as a real failure would, or damages
 * what the step hands on, so the tests reach every rollback. The update
 * checks them with one macro at each point below; nothing else knows. */
#ifndef LUOINIT_FAULT_H
#define LUOINIT_FAULT_H

#include <stddef.h>

enum fault_point {
	FAULT_AT_SPACE            = 1 << 0, /* the full-RAM space check fails */
	FAULT_AT_KEXEC_LOAD       = 1 << 1, /* kexec_file_load: -ENOEXEC */
	FAULT_AT_PRESERVE_RAM     = 1 << 2, /* PRESERVE_FD of a VM's RAM: -EIO */
	FAULT_AT_SAVE             = 1 << 3, /* the first QEMU dies mid-save (arg: its struct vm) */
	FAULT_AT_MANIFEST         = 1 << 4, /* the manifest stops matching (arg: struct handoff) */
	FAULT_AT_MANIFEST_WRITE   = 1 << 5, /* writing it: -ENOSPC */
	FAULT_AT_MANIFEST_WRITTEN = 1 << 6, /* it is cut in half, as a torn write (arg: its dir) */
	FAULT_AT_UMOUNT           = 1 << 7, /* unmounting /state: -EBUSY */
	FAULT_AT_KEXEC            = 1 << 8, /* reboot(KEXEC): -EINVAL */
	/* In the new init, named by the manifest (test_fault) and acted on
	 * only when its own kernel command line allows test faults too: */
	FAULT_AT_EARLY_QEMU       = 1 << 9, /* a QEMU started before /state (arg: its struct vm) */
};

struct fault;

/* The fault called name; NULL when there is none (err lists them). */
const struct fault *fault_find(const char *name, char *err, size_t errlen);
/* f (may be NULL) at point `at`: does what it does to arg (logged) and
 * returns the -errno the step fails with instead of running, else 0. */
int fault_inject(const struct fault *f, enum fault_point at, void *arg);

#endif
