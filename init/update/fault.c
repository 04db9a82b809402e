/* The test faults of the update, one table: where each acts and how. */
#include "update/fault.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pid1/log.h"
#include "update/handoff.h"
#include "vm/vm.h"

static void crash_qemu(enum fault_point at, void *vm)
{
	(void)at;
	if (vm)
		vm_crash(vm);
}

/* The new init's LUO retrieve finds no session of this generation. */
static void skew_generation(enum fault_point at, void *h)
{
	(void)at;
	((struct handoff *)h)->generation += 2;
}

/* The manifest carries the fault to the new init, which kills the QEMU it
 * started before /state: the usual start must take over. */
static void early_qemu(enum fault_point at, void *arg)
{
	if (at == FAULT_AT_MANIFEST)
		snprintf(((struct handoff *)arg)->test_fault, sizeof(((struct handoff *)arg)->test_fault), "early-qemu");
	else
		crash_qemu(at, arg);
}

/* The retrieved states are not the size the manifest says. */
static void skew_sizes(enum fault_point at, void *arg)
{
	struct handoff *h = arg;

	(void)at;
	for (size_t i = 0; i < h->n_vms; i++)
		h->vms[i].vmstate_bytes += 1;
}

static void cut_manifest(enum fault_point at, void *dir)
{
	char path[512];
	struct stat st;
	int fd;

	(void)at;
	snprintf(path, sizeof(path), "%s/%s", (const char *)dir, HANDOFF_FILE);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && ftruncate(fd, st.st_size / 2) == 0)
		(void)fsync(fd);
	close(fd);
}

struct fault {
	const char *name;
	unsigned at;                /* enum fault_point bits */
	int err;                    /* what the step returns instead, or 0 */
	void (*act)(enum fault_point at, void *arg); /* or what is done to the step's data */
};

static const struct fault faults[] = {
	/* Full-RAM: refused up front; LUO: the manifest cannot be written. */
	{ "no-space", FAULT_AT_SPACE | FAULT_AT_MANIFEST_WRITE, -ENOSPC, NULL },
	{ "kexec-load", FAULT_AT_KEXEC_LOAD, -ENOEXEC, NULL },
	{ "preserve-fd", FAULT_AT_PRESERVE_RAM, -EIO, NULL },
	{ "qemu-dies", FAULT_AT_SAVE, 0, crash_qemu },
	{ "umount", FAULT_AT_UMOUNT, -EBUSY, NULL },
	{ "kexec", FAULT_AT_KEXEC, -EINVAL, NULL },
	/* The kexec happens: the new init must survive these. */
	{ "retrieve", FAULT_AT_MANIFEST, 0, skew_generation },
	{ "size-mismatch", FAULT_AT_MANIFEST, 0, skew_sizes },
	{ "corrupt-manifest", FAULT_AT_MANIFEST_WRITTEN, 0, cut_manifest },
	{ "early-qemu", FAULT_AT_MANIFEST | FAULT_AT_EARLY_QEMU, 0, early_qemu },
};

#define N_FAULTS (sizeof(faults) / sizeof(faults[0]))

const struct fault *fault_find(const char *name, char *err, size_t errlen)
{
	size_t off;

	for (size_t i = 0; i < N_FAULTS; i++)
		if (strcmp(faults[i].name, name) == 0)
			return &faults[i];
	off = (size_t)snprintf(err, errlen, "fault=%.64s: no such fault (known:", name);
	for (size_t i = 0; i < N_FAULTS && off < errlen; i++)
		off += (size_t)snprintf(err + off, errlen - off, " %s", faults[i].name);
	if (off < errlen)
		snprintf(err + off, errlen - off, ")");
	return NULL;
}

int fault_inject(const struct fault *f, enum fault_point at, void *arg)
{
	if (!f || !(f->at & (unsigned)at))
		return 0;
	log_warn("update: injecting fault '%s' (test switch)", f->name);
	if (f->act)
		f->act(at, arg);
	return f->err;
}
