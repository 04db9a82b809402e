/* libFuzzer target: vmconf_parse_buffer (json-c tokenizer guards, the text
 * scan, the schema) and, for configs it accepts, the argv builder.
 *
 * Beyond "no crash, no leak, no UB" it checks the API's promises:
 * success means no errors and a well-formed config whose every VM builds an
 * argv; -EINVAL means at least one error, each one complete and formattable. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmconf.h"

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "fuzz_vmconf: %s:%d: check failed: %s\n",   \
				__FILE__, __LINE__, #cond);                          \
			abort();                                                     \
		}                                                                    \
	} while (0)

/* QEMU's reading of "file=PATH,format=...": ",," is a comma, "," ends it. */
static void check_drive(const char *opt, const struct vmconf_disk *d)
{
	size_t n = strlen(d->path), i = 0;

	CHECK(strncmp(opt, "file=", 5) == 0);
	opt += 5;
	for (;; opt++, i++) {
		if (opt[0] == ',' && opt[1] == ',')
			opt++;
		else if (opt[0] == ',' || opt[0] == '\0')
			break;
		CHECK(i < n && *opt == d->path[i]);
	}
	CHECK(i == n);
	CHECK(strncmp(opt, ",format=", 8) == 0 && strncmp(opt + 8, d->format, strlen(d->format)) == 0);
}

static void check_vm(const struct vmconf *c, const struct vmconf_vm *vm)
{
	struct vmconf_argv_opts opts[] = {
		{ .ram_backing = VMCONF_RAM_PROCFD, .ram_fd = 3, .accel = VMCONF_ACCEL_TCG,
		  .qmp_fd = 4, .serial_fd = -1 },
		{ .ram_backing = VMCONF_RAM_FDSET, .ram_fd = 5, .ram_fdset = 1,
		  .accel = VMCONF_ACCEL_KVM, .qmp_fd = 6, .serial_fd = 7,
		  .incoming_defer = true, .sandbox = true, .firmware_dir = "/usr/share/qemu" },
	};
	size_t len = strnlen(vm->name, sizeof(vm->name));

	CHECK(len >= 1 && len <= VMCONF_NAME_MAX);
	CHECK(vmconf_find(c, vm->name) == vm);
	CHECK(vm->memory_mib >= 16 && vm->memory_mib <= 1048576 && vm->memory_mib % 2 == 0);
	CHECK(vm->vcpus >= 1 && vm->vcpus <= 256);
	CHECK(vm->machine && vm->cpu && vm->qemu && vm->serial);
	CHECK(vm->n_disks <= VMCONF_MAX_DISKS && (vm->n_disks == 0 || vm->disks));
	for (size_t i = 0; i < vm->n_disks; i++)
		CHECK(vm->disks[i].path && vm->disks[i].format);
	CHECK(vm->n_qemu_args <= VMCONF_MAX_QEMU_ARGS);
	/* NICs: on a configured bridge, a unicast MAC no other NIC has. */
	struct vmconf_argv_nic nics[VMCONF_MAX_NICS];
	CHECK(vm->n_nics <= VMCONF_MAX_NICS && (vm->n_nics == 0 || vm->nics));
	for (size_t i = 0; i < vm->n_nics; i++) {
		const struct vmconf_nic *n = &vm->nics[i];
		size_t b = 0;
		CHECK(n->bridge && n->model && strlen(n->mac) == VMCONF_MAC_LEN && n->mac[2] == ':');
		CHECK(strchr("02468ace", n->mac[1]) != NULL);
		while (b < c->n_bridges && strcmp(c->bridges[b].name, n->bridge) != 0)
			b++;
		CHECK(b < c->n_bridges);
		for (size_t v = 0; v < c->n_vms; v++)
			for (size_t k = 0; k < c->vms[v].n_nics; k++)
				CHECK(&c->vms[v].nics[k] == n || strcmp(c->vms[v].nics[k].mac, n->mac) != 0);
		nics[i].tap_fd = 8 + (int)i;
		nics[i].vhost_fd = i % 2 ? 20 + (int)i : -1;
	}
	for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
		opts[k].nics = nics;
		opts[k].n_nics = vm->n_nics;
	}
	for (size_t i = 0; i < vm->n_qemu_args; i++)
		CHECK(vm->qemu_args[i]);
	CHECK(strcmp(vmconf_accel_name(vm->accel), "?") != 0);
	CHECK(strcmp(vmconf_ram_name(vm->ram_backing), "?") != 0);
	CHECK(strcmp(vmconf_restart_name(vm->restart), "?") != 0);

	for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
		char **argv = NULL;
		int r = vmconf_build_argv(vm, &opts[k], &argv);

		CHECK(r == 0 || r == -ENOMEM);
		if (r < 0)
			continue;
		CHECK(argv && argv[0] && strcmp(argv[0], vm->qemu) == 0);
		size_t n = 0;
		while (argv[n])
			n++;
		CHECK(n > vm->n_qemu_args);
		/* Before qemu_args: options, each with one value but these two.
		 * Each disk is one -drive whose file= reads back as its path. */
		size_t disk = 0, end = n - vm->n_qemu_args, j;
		for (j = 1; j < end; j++) {
			CHECK(argv[j][0] == '-');
			if (strcmp(argv[j], "-nodefaults") == 0 || strcmp(argv[j], "-no-user-config") == 0)
				continue;
			CHECK(j + 1 < end);
			if (strcmp(argv[j], "-drive") == 0) {
				CHECK(disk < vm->n_disks);
				check_drive(argv[j + 1], &vm->disks[disk++]);
			}
			j++;
		}
		CHECK(j == end && disk == vm->n_disks);
		/* qemu_args come last, verbatim */
		for (size_t i = 0; i < vm->n_qemu_args; i++)
			CHECK(strcmp(argv[n - vm->n_qemu_args + i], vm->qemu_args[i]) == 0);
		vmconf_argv_free(argv);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmconf_errors errs = { 0 };
	struct vmconf *c = NULL;
	int r;

	/* Copy: the parser must not read past len, and ASan sees it if it does. */
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	r = vmconf_parse_buffer(buf, size, &c, &errs);
	CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
	if (r == 0) {
		CHECK(c && errs.n == 0);
		CHECK(c->version == 1);
		CHECK(c->n_vms <= VMCONF_MAX_VMS && (c->n_vms == 0 || c->vms));
		for (size_t i = 0; i < c->n_vms; i++)
			check_vm(c, &c->vms[i]);
		vmconf_free(c);
	} else if (r == -EINVAL) {
		CHECK(errs.n >= 1 && errs.n <= VMCONF_MAX_ERRORS + 1);
	}
	for (size_t i = 0; i < errs.n; i++) {
		const struct vmconf_error *e = &errs.v[i];
		CHECK(e->path && e->expected && e->found);
		char *s = vmconf_error_format(e);
		CHECK(s || r == -ENOMEM);
		free(s);
	}
	vmconf_errors_clear(&errs);

	/* Without an error list the answer must be the same. */
	c = NULL;
	int r2 = vmconf_parse_buffer(buf, size, &c, NULL);
	CHECK(r2 == r || r2 == -ENOMEM || r == -ENOMEM);
	vmconf_free(c);
	free(buf);
	return 0;
}
