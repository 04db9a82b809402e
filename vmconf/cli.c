/* vmconf: check a VM configuration, or print the QEMU argv of one VM.
 *
 *   vmconf check FILE
 *   vmconf argv [--accel kvm|tcg] [--ram-backing procfd|fdset] FILE NAME
 *
 * Exit codes: 0 ok, 1 invalid config (or no such VM), 2 usage. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmconf.h"

/* The fd layout luoinit uses when it starts QEMU. */
#define CLI_QMP_FD    3
#define CLI_SERIAL_FD 4
#define CLI_RAM_FD    5
#define CLI_FDSET     1
#define CLI_NIC_FD    6 /* then each NIC's tap, and its vhost-net when it has one */

static const char usage[] =
	"usage: vmconf check FILE\n"
	"       vmconf argv [--accel kvm|tcg] [--ram-backing procfd|fdset] FILE NAME\n";

static int cli_usage(const char *why)
{
	if (why)
		fprintf(stderr, "vmconf: %s\n", why);
	fputs(usage, stderr);
	return 2;
}

/* Parse, printing every error as "FILE: ERROR". */
static int cli_load(const char *file, struct vmconf **ret)
{
	struct vmconf_errors errs = { 0 };
	int r = vmconf_parse_file(file, ret, &errs);

	if (r < 0) {
		for (size_t i = 0; i < errs.n; i++) {
			char *s = vmconf_error_format(&errs.v[i]);
			/* I/O errors already name the file in their path. */
			if (r == -EINVAL)
				fprintf(stderr, "%s: %s\n", file, s ? s : "(out of memory)");
			else
				fprintf(stderr, "vmconf: %s\n", s ? s : "(out of memory)");
			free(s);
		}
		if (errs.n == 0)
			fprintf(stderr, "vmconf: %s: %s\n", file, strerror(-r));
	}
	vmconf_errors_clear(&errs);
	return r;
}

static int cli_check(int argc, char **argv)
{
	struct vmconf *c = NULL;

	if (argc != 3)
		return cli_usage("check takes one FILE");
	if (cli_load(argv[2], &c) < 0)
		return 1;
	printf("%s: ok\n", argv[2]);
	vmconf_free(c);
	return 0;
}

static enum vmconf_accel cli_resolve_accel(enum vmconf_accel a)
{
	if (a != VMCONF_ACCEL_AUTO)
		return a;
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return VMCONF_ACCEL_TCG;
	close(fd);
	return VMCONF_ACCEL_KVM;
}

static int cli_argv(int argc, char **argv)
{
	enum vmconf_accel accel = VMCONF_ACCEL_AUTO;
	enum vmconf_ram ram = VMCONF_RAM_AUTO;
	bool have_accel = false, have_ram = false;
	int i = 2;

	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *opt = argv[i], *val = NULL;
		const char *eq = strchr(opt, '=');
		size_t optlen = eq ? (size_t)(eq - opt) : strlen(opt);

		if (optlen == 2 && !eq) { /* "--" ends the options */
			i++;
			break;
		}
		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else
			return cli_usage("missing value for an option");
		if (optlen == 7 && strncmp(opt, "--accel", 7) == 0) {
			if (strcmp(val, "kvm") == 0)
				accel = VMCONF_ACCEL_KVM;
			else if (strcmp(val, "tcg") == 0)
				accel = VMCONF_ACCEL_TCG;
			else
				return cli_usage("--accel takes kvm or tcg");
			have_accel = true;
		} else if (optlen == 13 && strncmp(opt, "--ram-backing", 13) == 0) {
			if (strcmp(val, "procfd") == 0)
				ram = VMCONF_RAM_PROCFD;
			else if (strcmp(val, "fdset") == 0)
				ram = VMCONF_RAM_FDSET;
			else
				return cli_usage("--ram-backing takes procfd or fdset");
			have_ram = true;
		} else {
			return cli_usage("unknown option");
		}
	}
	if (argc - i != 2)
		return cli_usage("argv takes FILE and NAME");
	const char *file = argv[i], *name = argv[i + 1];

	struct vmconf *c = NULL;
	if (cli_load(file, &c) < 0)
		return 1;
	const struct vmconf_vm *vm = vmconf_find(c, name);
	if (!vm) {
		fprintf(stderr, "vmconf: no VM named %s in %s\n", name, file);
		vmconf_free(c);
		return 1;
	}
	if (!have_accel)
		accel = vm->accel;
	if (!have_ram)
		ram = vm->ram_backing;
	struct vmconf_argv_opts o = {
		.ram_backing = ram == VMCONF_RAM_AUTO ? VMCONF_RAM_PROCFD : ram,
		.ram_fd = CLI_RAM_FD,
		.ram_fdset = CLI_FDSET,
		.accel = cli_resolve_accel(accel),
		.qmp_fd = CLI_QMP_FD,
		.serial_fd = CLI_SERIAL_FD,
	};
	/* As luoinit does: vhost-net only under KVM, where the device opens. */
	struct vmconf_argv_nic nics[VMCONF_MAX_NICS];
	bool vhost = false;
	if (o.accel == VMCONF_ACCEL_KVM && vm->n_nics) {
		int fd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);
		vhost = fd >= 0;
		if (fd >= 0)
			close(fd);
	}
	for (size_t k = 0, fd = CLI_NIC_FD; k < vm->n_nics; k++) {
		nics[k].tap_fd = (int)fd++;
		nics[k].vhost_fd = vhost ? (int)fd++ : -1;
	}
	o.nics = nics;
	o.n_nics = vm->n_nics;
	char **av = NULL;
	int r = vmconf_build_argv(vm, &o, &av);
	if (r < 0) {
		fprintf(stderr, "vmconf: cannot build the argv: %s\n", strerror(-r));
		vmconf_free(c);
		return 1;
	}
	for (char **p = av; *p; p++)
		printf("%s\n", *p);
	vmconf_argv_free(av);
	vmconf_free(c);
	return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		fputs(usage, stdout);
		return 0;
	}
	if (argc < 2)
		return cli_usage(NULL);
	if (strcmp(argv[1], "check") == 0)
		return cli_check(argc, argv);
	if (strcmp(argv[1], "argv") == 0)
		return cli_argv(argc, argv);
	return cli_usage("unknown command");
}
