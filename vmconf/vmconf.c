/* The parsed configuration: freeing, lookup, enum names, derived MACs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmconf.h"

static void vmconf_vm_clear(struct vmconf_vm *vm)
{
	free(vm->machine);
	free(vm->cpu);
	free(vm->kernel);
	free(vm->initrd);
	free(vm->cmdline);
	for (size_t i = 0; i < vm->n_disks; i++) {
		free(vm->disks[i].path);
		free(vm->disks[i].format);
	}
	free(vm->disks);
	free(vm->serial);
	free(vm->qemu);
	for (size_t i = 0; i < vm->n_qemu_args; i++)
		free(vm->qemu_args[i]);
	free(vm->qemu_args);
	free(vm->user);
	for (size_t i = 0; i < vm->n_nics; i++) {
		free(vm->nics[i].bridge);
		free(vm->nics[i].model);
	}
	free(vm->nics);
}

void vmconf_free(struct vmconf *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_vms; i++)
		vmconf_vm_clear(&c->vms[i]);
	free(c->vms);
	free(c->update_kernel);
	free(c->update_initrd);
	free(c->update_cmdline);
	for (size_t i = 0; i < c->n_bridges; i++)
		free(c->bridges[i].uplink);
	free(c->bridges);
	free(c);
}

const struct vmconf_vm *vmconf_find(const struct vmconf *c, const char *name)
{
	if (!c || !name)
		return NULL;
	for (size_t i = 0; i < c->n_vms; i++)
		if (strcmp(c->vms[i].name, name) == 0)
			return &c->vms[i];
	return NULL;
}

const char *vmconf_accel_name(enum vmconf_accel a)
{
	switch (a) {
	case VMCONF_ACCEL_AUTO: return "auto";
	case VMCONF_ACCEL_KVM: return "kvm";
	case VMCONF_ACCEL_TCG: return "tcg";
	}
	return "?";
}

const char *vmconf_ram_name(enum vmconf_ram r)
{
	switch (r) {
	case VMCONF_RAM_AUTO: return "auto";
	case VMCONF_RAM_FDSET: return "fdset";
	case VMCONF_RAM_PROCFD: return "procfd";
	}
	return "?";
}

const char *vmconf_restart_name(enum vmconf_restart r)
{
	switch (r) {
	case VMCONF_RESTART_ON_FAILURE: return "on-failure";
	case VMCONF_RESTART_ALWAYS: return "always";
	case VMCONF_RESTART_NEVER: return "never";
	}
	return "?";
}

void vmconf_mac_derive(const char *vm_name, size_t index, char *out)
{
	char key[VMCONF_NAME_MAX + 24];
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 */
	int n = snprintf(key, sizeof(key), "%s/%zu", vm_name, index);

	for (int i = 0; i < n && i < (int)sizeof(key) - 1; i++) {
		h ^= (unsigned char)key[i];
		h *= 0x100000001b3ULL;
	}
	/* 0x52: locally administered, unicast (QEMU's own default range). */
	snprintf(out, VMCONF_MAC_LEN + 1, "52:%02x:%02x:%02x:%02x:%02x", (unsigned)(h >> 32) & 0xff,
		 (unsigned)(h >> 24) & 0xff, (unsigned)(h >> 16) & 0xff, (unsigned)(h >> 8) & 0xff,
		 (unsigned)h & 0xff);
}
