/* QEMU's argv for one VM: headless, RAM in the memfd luoinit owns, QMP and
 * serial on sockets luoinit passes in. The order is part of the contract
 * (tests and operators read it). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "vmconf.h"

struct argv_buf {
	char **v;
	size_t n, cap;
	bool oom;
};

static void argv_take(struct argv_buf *a, char *s)
{
	if (!s || a->oom) {
		a->oom = true;
		free(s);
		return;
	}
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		char **v = realloc(a->v, cap * sizeof(*v));
		if (!v) {
			a->oom = true;
			free(s);
			return;
		}
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static void argv_add(struct argv_buf *a, const char *s)
{
	argv_take(a, strdup(s));
}

__attribute__((format(printf, 2, 3)))
static void argv_addf(struct argv_buf *a, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	argv_take(a, s);
}

/* QEMU's option syntax: a comma inside a value is written twice. */
static char *argv_escape_commas(const char *s)
{
	size_t n = strlen(s), extra = 0;

	for (size_t i = 0; i < n; i++)
		extra += s[i] == ',';
	char *r = malloc(n + extra + 1), *o = r;
	if (!r)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		*o++ = s[i];
		if (s[i] == ',')
			*o++ = ',';
	}
	*o = '\0';
	return r;
}

static int argv_check_opts(const struct vmconf_vm *vm, const struct vmconf_argv_opts *o)
{
	if (!vm || !o || !vm->qemu || !vm->machine || !vm->cpu || !vm->name[0])
		return -EINVAL;
	if (o->ram_backing != VMCONF_RAM_FDSET && o->ram_backing != VMCONF_RAM_PROCFD)
		return -EINVAL;
	if (o->accel != VMCONF_ACCEL_KVM && o->accel != VMCONF_ACCEL_TCG)
		return -EINVAL;
	if (o->ram_fd < 3 || o->qmp_fd < 3 || (o->serial_fd >= 0 && o->serial_fd < 3))
		return -EINVAL;
	if (o->ram_backing == VMCONF_RAM_FDSET && o->ram_fdset < 0)
		return -EINVAL;
	if (o->n_nics != vm->n_nics || (o->n_nics && !o->nics))
		return -EINVAL;
	if (o->disks_by_qmp && !o->preconfig) /* nothing could add the nodes in time */
		return -EINVAL;
	for (size_t i = 0; i < o->n_nics; i++)
		if (o->nics[i].tap_fd < 3 || (o->nics[i].vhost_fd >= 0 && o->nics[i].vhost_fd < 3) ||
		    !vm->nics[i].model || !vm->nics[i].mac[0])
			return -EINVAL;
	return 0;
}

/* The PCI root bus by machine type: the heartbeat guest (legacy virtio)
 * scans bus 0 only. NULL for machines we do not know: QEMU then picks. */
static const char *root_bus(const char *machine)
{
	size_t n = strcspn(machine, ",");

	if ((n == 3 && strncmp(machine, "q35", 3) == 0) || strncmp(machine, "pc-q35-", 7) == 0)
		return "pcie.0";
	if ((n == 2 && strncmp(machine, "pc", 2) == 0) || strncmp(machine, "pc-i440fx-", 10) == 0)
		return "pci.0";
	return NULL;
}

int vmconf_build_argv(const struct vmconf_vm *vm, const struct vmconf_argv_opts *o, char ***ret)
{
	struct argv_buf a = { 0 };
	int r = argv_check_opts(vm, o);

	if (r < 0)
		return r;
	argv_add(&a, vm->qemu);
	argv_add(&a, "-name");
	argv_add(&a, vm->name);
	argv_add(&a, "-nodefaults");
	argv_add(&a, "-no-user-config");
	argv_add(&a, "-display");
	argv_add(&a, "none");
	argv_add(&a, "-machine");
	argv_addf(&a, "%s,memory-backend=ram0", vm->machine);
	argv_add(&a, "-accel");
	argv_add(&a, vmconf_accel_name(o->accel));
	argv_add(&a, "-cpu");
	argv_add(&a, vm->cpu);
	argv_add(&a, "-smp");
	argv_addf(&a, "%u", vm->vcpus);
	argv_add(&a, "-m");
	argv_addf(&a, "%uM", vm->memory_mib);

	/* -m equals the backend size; share=on keeps guest RAM out of the CPR
	 * stream; align=2M maps it on a 2 MiB boundary, without which the
	 * kernel backs a shmem mapping with 4 KiB pages only (memory_mib is even,
	 * so the size is a multiple of 2 MiB too). */
	if (o->ram_backing == VMCONF_RAM_FDSET) {
		argv_add(&a, "-add-fd");
		argv_addf(&a, "fd=%d,set=%d", o->ram_fd, o->ram_fdset);
		argv_add(&a, "-object");
		argv_addf(&a, "memory-backend-file,id=ram0,size=%uM,mem-path=/dev/fdset/%d,share=on,align=2M",
			  vm->memory_mib, o->ram_fdset);
	} else {
		argv_add(&a, "-object");
		argv_addf(&a, "memory-backend-file,id=ram0,size=%uM,mem-path=/proc/self/fd/%d,share=on,align=2M",
			  vm->memory_mib, o->ram_fd);
	}

	argv_add(&a, "-chardev");
	argv_addf(&a, "socket,id=qmp,fd=%d,server=off", o->qmp_fd);
	argv_add(&a, "-mon");
	argv_add(&a, "chardev=qmp,mode=control");
	if (o->serial_fd >= 0) {
		argv_add(&a, "-chardev");
		argv_addf(&a, "socket,id=ser0,fd=%d,server=off", o->serial_fd);
		argv_add(&a, "-serial");
		argv_add(&a, "chardev:ser0");
	}

	/* -kernel, -initrd and -append take their value whole: no escaping. */
	if (vm->kernel) {
		argv_add(&a, "-kernel");
		argv_add(&a, vm->kernel);
	}
	if (vm->initrd) {
		argv_add(&a, "-initrd");
		argv_add(&a, vm->initrd);
	}
	if (vm->cmdline) {
		argv_add(&a, "-append");
		argv_add(&a, vm->cmdline);
	}
	for (size_t i = 0; i < vm->n_disks && !o->disks_by_qmp; i++) {
		const struct vmconf_disk *d = &vm->disks[i];
		char *path = argv_escape_commas(d->path ? d->path : "");
		if (!path) {
			a.oom = true;
			break;
		}
		argv_add(&a, "-drive");
		argv_addf(&a, "file=%s,format=%s,if=virtio,id=disk%zu%s", path,
			  d->format ? d->format : "raw", i, d->readonly ? ",readonly=on" : "");
		free(path);
	}
	/* After the disks, always in the same order: the PCI slots a saved
	 * guest knows stay the same on the QEMU that restores it. */
	for (size_t i = 0; i < vm->n_nics; i++) {
		const struct vmconf_nic *n = &vm->nics[i];
		const char *bus = root_bus(vm->machine);
		argv_add(&a, "-netdev");
		if (o->nics[i].vhost_fd >= 0)
			argv_addf(&a, "tap,id=net%zu,fd=%d,vhost=on,vhostfd=%d", i, o->nics[i].tap_fd,
				  o->nics[i].vhost_fd);
		else
			argv_addf(&a, "tap,id=net%zu,fd=%d", i, o->nics[i].tap_fd);
		argv_add(&a, "-device");
		/* romfile= (none): no PXE option ROM, which the appliance's QEMU
		 * does not ship and guests that boot from -kernel or a disk never use. */
		argv_addf(&a, "%s,netdev=net%zu,mac=%s%s%s%s", n->model, i, n->mac, bus ? ",bus=" : "", bus ? bus : "",
			  bus ? ",romfile=" : "");
	}
	if (o->sandbox) {
		argv_add(&a, "-sandbox");
		argv_add(&a, VMCONF_SANDBOX_OPTS);
	}
	if (o->firmware_dir) {
		argv_add(&a, "-L");
		argv_add(&a, o->firmware_dir);
	}
	if (o->preconfig)
		argv_add(&a, "--preconfig");
	if (o->incoming_defer) {
		argv_add(&a, "-incoming");
		argv_add(&a, "defer");
	}
	for (size_t i = 0; i < vm->n_qemu_args; i++)
		argv_add(&a, vm->qemu_args[i] ? vm->qemu_args[i] : "");
	/* What -drive if=virtio turns into, and where: QEMU creates that device
	 * after every -device of the command line (qemu_args' too). So a guest
	 * saved under either form finds its disks at the same PCI slots under
	 * the other. */
	for (size_t i = 0; i < vm->n_disks && o->disks_by_qmp; i++) {
		argv_add(&a, "-device");
		argv_addf(&a, "virtio-blk,drive=disk%zu", i);
	}

	if (a.oom) {
		vmconf_argv_free(a.v);
		return -ENOMEM;
	}
	*ret = a.v;
	return 0;
}

void vmconf_argv_free(char **argv)
{
	if (!argv)
		return;
	for (char **p = argv; *p; p++)
		free(*p);
	free(argv);
}

struct json_object *vmconf_blockdev_args(const struct vmconf_vm *vm, size_t i)
{
	const struct vmconf_disk *d;
	json_object *o, *file;
	char name[32];

	if (!vm || i >= vm->n_disks)
		return NULL;
	d = &vm->disks[i];
	o = json_object_new_object();
	file = json_object_new_object();
	if (!o || !file || json_object_object_add(o, "file", file) < 0) {
		json_object_put(o);
		json_object_put(file);
		return NULL;
	}
	snprintf(name, sizeof(name), "disk%zu", i);
	/* -drive's defaults where blockdev-add's differ (auto-read-only); the
	 * rest (writeback cache, no discard, threads) are both's. */
	if (json_object_object_add(file, "driver", json_object_new_string("file")) < 0 ||
	    json_object_object_add(file, "filename", json_object_new_string(d->path ? d->path : "")) < 0 ||
	    json_object_object_add(o, "driver", json_object_new_string(d->format ? d->format : "raw")) < 0 ||
	    json_object_object_add(o, "node-name", json_object_new_string(name)) < 0 ||
	    json_object_object_add(o, "read-only", json_object_new_boolean(d->readonly)) < 0 ||
	    json_object_object_add(o, "auto-read-only", json_object_new_boolean(1)) < 0) {
		json_object_put(o); /* and file, o's now */
		return NULL;
	}
	return o;
}
