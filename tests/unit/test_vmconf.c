/* vmconf: schema rules (valid and invalid, exact messages), hostile input,
 * the argv builder. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "vmconf.h"

/* Every error of a parse, formatted, one per line ("" when valid). */
static char *parse_messages(const char *json, size_t len, int *ret_r)
{
	struct vmconf *c = NULL;
	struct vmconf_errors errs = { 0 };
	int r = vmconf_parse_buffer(json, len, &c, &errs);
	size_t cap = 1;
	char *out;

	for (size_t i = 0; i < errs.n; i++) {
		char *s = vmconf_error_format(&errs.v[i]);
		assert_non_null(s);
		cap += strlen(s) + 1;
		free(s);
	}
	out = calloc(1, cap);
	assert_non_null(out);
	for (size_t i = 0; i < errs.n; i++) {
		char *s = vmconf_error_format(&errs.v[i]);
		if (i)
			strcat(out, "\n");
		strcat(out, s);
		free(s);
	}
	if (r == 0) {
		assert_non_null(c);
		assert_int_equal(errs.n, 0);
	} else {
		assert_null(c);
	}
	vmconf_free(c);
	vmconf_errors_clear(&errs);
	*ret_r = r;
	return out;
}

static void expect_msgs(const char *json, const char *want)
{
	int r;
	char *got = parse_messages(json, strlen(json), &r);

	if (strcmp(got, want) != 0)
		print_error("input: %s\n", json);
	assert_string_equal(got, want);
	assert_int_equal(r, want[0] ? -EINVAL : 0);
	free(got);
}

/* One VM: the required fields that extra (", \"key\": value"...) does not set, then extra. */
static char *vm_json(const char *extra)
{
	char *s = NULL;
	assert_true(asprintf(&s, "{\"version\": 1, \"vms\": [{\"n\": 0%s%s%s%s}]}",
			     strstr(extra, "\"name\":") ? "" : ", \"name\": \"vm0\"",
			     strstr(extra, "\"memory_mib\":") ? "" : ", \"memory_mib\": 64",
			     strstr(extra, "\"vcpus\":") ? "" : ", \"vcpus\": 1", extra) > 0);
	/* Drop the placeholder that lets every field start with a comma. */
	char *p = strstr(s, "\"n\": 0, ");
	memmove(p, p + 8, strlen(p + 8) + 1);
	return s;
}

static void expect_vm(const char *extra, const char *want)
{
	char *j = vm_json(extra);
	expect_msgs(j, want);
	free(j);
}

static struct vmconf *parse_ok(const char *json)
{
	struct vmconf *c = NULL;
	struct vmconf_errors errs = { 0 };
	int r = vmconf_parse_buffer(json, strlen(json), &c, &errs);
	for (size_t i = 0; i < errs.n; i++) {
		char *s = vmconf_error_format(&errs.v[i]);
		print_error("unexpected: %s\n", s);
		free(s);
	}
	assert_int_equal(r, 0);
	assert_int_equal(errs.n, 0);
	return c;
}

static char *repeat(char ch, size_t n)
{
	char *s = malloc(n + 1);
	assert_non_null(s);
	memset(s, ch, n);
	s[n] = '\0';
	return s;
}

/* ---- valid configs ---- */

static const char full_json[] =
	"{\"version\": 1, \"vms\": [{"
	"\"name\": \"vm0\", \"memory_mib\": 1024, \"vcpus\": 2, \"machine\": \"pc-q35-10.0\","
	"\"cpu\": \"Haswell,+vmx\", \"accel\": \"kvm\", \"kernel\": \"/state/guest/vm0.elf\","
	"\"initrd\": \"/state/guest/vm0.cpio\", \"cmdline\": \"console=ttyS0 quiet\","
	"\"disks\": [{\"path\": \"/state/guest/vm0.img\", \"format\": \"raw\", \"readonly\": false},"
	"            {\"path\": \"/state/guest/data.qcow2\", \"format\": \"qcow2\", \"readonly\": true}],"
	"\"serial\": \"/state/log/vm0.serial\", \"restart\": \"always\", \"ram_backing\": \"fdset\","
	"\"qemu\": \"/opt/qemu/bin/qemu-system-x86_64\", \"qemu_args\": [\"-device\", \"virtio-rng-pci\"],"
	"\"user\": \"qemu\"},"
	"{\"name\": \"vm-1_b\", \"memory_mib\": 16, \"vcpus\": 256, \"accel\": \"tcg\","
	" \"restart\": \"never\", \"ram_backing\": \"procfd\", \"serial\": \"log\"}],"
	"\"update\": {\"kernel\": \"/state/boot/vmlinuz\", \"initrd\": \"/state/boot/initramfs.img\","
	"\"cmdline\": \"console=ttyS0 liveupdate=on kho=on\"}}";

static void test_full(void **state)
{
	(void)state;
	struct vmconf *c = parse_ok(full_json);

	assert_int_equal(c->version, 1);
	assert_int_equal(c->n_vms, 2);
	const struct vmconf_vm *vm = &c->vms[0];
	assert_string_equal(vm->name, "vm0");
	assert_int_equal(vm->memory_mib, 1024);
	assert_int_equal(vm->vcpus, 2);
	assert_string_equal(vm->machine, "pc-q35-10.0");
	assert_string_equal(vm->cpu, "Haswell,+vmx");
	assert_int_equal(vm->accel, VMCONF_ACCEL_KVM);
	assert_string_equal(vm->kernel, "/state/guest/vm0.elf");
	assert_string_equal(vm->initrd, "/state/guest/vm0.cpio");
	assert_string_equal(vm->cmdline, "console=ttyS0 quiet");
	assert_int_equal(vm->n_disks, 2);
	assert_string_equal(vm->disks[0].path, "/state/guest/vm0.img");
	assert_string_equal(vm->disks[0].format, "raw");
	assert_false(vm->disks[0].readonly);
	assert_string_equal(vm->disks[1].format, "qcow2");
	assert_true(vm->disks[1].readonly);
	assert_string_equal(vm->serial, "/state/log/vm0.serial");
	assert_int_equal(vm->restart, VMCONF_RESTART_ALWAYS);
	assert_int_equal(vm->ram_backing, VMCONF_RAM_FDSET);
	assert_string_equal(vm->qemu, "/opt/qemu/bin/qemu-system-x86_64");
	assert_int_equal(vm->n_qemu_args, 2);
	assert_string_equal(vm->qemu_args[1], "virtio-rng-pci");
	assert_string_equal(vm->user, "qemu");

	vm = &c->vms[1];
	assert_string_equal(vm->name, "vm-1_b");
	assert_int_equal(vm->memory_mib, 16);
	assert_int_equal(vm->vcpus, 256);
	assert_int_equal(vm->accel, VMCONF_ACCEL_TCG);
	assert_int_equal(vm->restart, VMCONF_RESTART_NEVER);
	assert_int_equal(vm->ram_backing, VMCONF_RAM_PROCFD);
	assert_string_equal(vm->serial, "log");

	assert_string_equal(c->update_kernel, "/state/boot/vmlinuz");
	assert_string_equal(c->update_initrd, "/state/boot/initramfs.img");
	assert_string_equal(c->update_cmdline, "console=ttyS0 liveupdate=on kho=on");

	assert_ptr_equal(vmconf_find(c, "vm-1_b"), &c->vms[1]);
	assert_null(vmconf_find(c, "vm2"));
	assert_null(vmconf_find(NULL, "vm0"));
	vmconf_free(c);
}

static void test_defaults(void **state)
{
	(void)state;
	char *j = vm_json(", \"kernel\": null, \"serial\": null, \"disks\": [{\"path\": \"/d.img\"}]");
	struct vmconf *c = parse_ok(j);
	const struct vmconf_vm *vm = &c->vms[0];

	assert_string_equal(vm->machine, "q35");
	assert_string_equal(vm->cpu, "max");
	assert_int_equal(vm->accel, VMCONF_ACCEL_AUTO);
	assert_null(vm->kernel);
	assert_null(vm->initrd);
	assert_null(vm->cmdline);
	assert_string_equal(vm->serial, "log");
	assert_int_equal(vm->restart, VMCONF_RESTART_ON_FAILURE);
	assert_int_equal(vm->ram_backing, VMCONF_RAM_AUTO);
	assert_string_equal(vm->qemu, "/usr/bin/qemu-system-x86_64");
	assert_int_equal(vm->n_qemu_args, 0);
	assert_null(vm->user);
	assert_int_equal(vm->n_disks, 1);
	assert_string_equal(vm->disks[0].format, "raw");
	assert_false(vm->disks[0].readonly);
	assert_null(c->update_kernel);
	assert_null(c->update_initrd);
	assert_null(c->update_cmdline);
	vmconf_free(c);
	free(j);

	c = parse_ok("{\"version\": 1}");
	assert_int_equal(c->n_vms, 0);
	vmconf_free(c);
	c = parse_ok(" {\"version\": 1, \"vms\": [], \"update\": {}}\n\n");
	assert_int_equal(c->n_vms, 0);
	vmconf_free(c);
}

static void test_valid_edges(void **state)
{
	(void)state;
	char *long_name = repeat('a', 32), *tok = repeat('x', 64);
	char *path = repeat('p', VMCONF_PATH_MAX), *cmd = repeat('c', VMCONF_CMDLINE_MAX);
	char extra[16384];

	path[0] = '/';
	expect_vm(", \"memory_mib\": 16", "");
	expect_vm(", \"memory_mib\": 1048576", "");
	expect_vm(", \"vcpus\": 256", "");
	snprintf(extra, sizeof(extra), ", \"machine\": \"%s\", \"cpu\": \"%s\", \"kernel\": \"%s\","
		 " \"cmdline\": \"%s\"", tok, tok, path, cmd);
	expect_vm(extra, "");
	snprintf(extra, sizeof(extra), "{\"version\": 1, \"vms\": [{\"name\": \"%s\", "
		 "\"memory_mib\": 64, \"vcpus\": 1}]}", long_name);
	expect_msgs(extra, "");
	expect_msgs("{\"version\": 1, \"vms\": [{\"name\": \"0\", \"memory_mib\": 64, \"vcpus\": 1}]}", "");
	for (const char *const *a = (const char *const[]){ "\"kvm\"", "\"tcg\"", "\"auto\"", NULL }; *a; a++) {
		snprintf(extra, sizeof(extra), ", \"accel\": %s", *a);
		expect_vm(extra, "");
	}
	expect_vm(", \"restart\": \"on-failure\", \"ram_backing\": \"auto\", \"user\": \"_svc-1\"", "");
	expect_vm(", \"user\": null, \"initrd\": null, \"cmdline\": \"\", \"qemu_args\": [\"\"]", "");
	expect_vm(", \"name\": \"vm0\"", "");
	free(long_name);
	free(tok);
	free(path);
	free(cmd);
}

/* ---- each rule, broken ---- */

struct rule_case {
	const char *extra;
	const char *want;
};

#define MEM "an integer from 16 to 1048576 that is a multiple of 2"
#define NAME "a name of 1 to 32 characters from a-z, 0-9, \"_\" and \"-\" that starts with a letter or digit"
#define TOKEN "a string of 1 to 64 printable characters without spaces"
#define PATHX "an absolute path of at most 4095 bytes"
#define USER "a user name of 1 to 32 characters from a-z, 0-9, \"_\" and \"-\" that starts with a letter or \"_\", or null"
#define VMKEYS "name, memory_mib, vcpus, machine, cpu, accel, kernel, initrd, cmdline, disks, serial, restart, ram_backing, qemu, qemu_args, user, nics"

static const struct rule_case vm_rules[] = {
	{ ", \"memory_mib\": \"1G\"", "vms[0].memory_mib: expected " MEM ", got \"1G\"" },
	{ ", \"memory_mib\": 15", "vms[0].memory_mib: expected " MEM ", got 15" },
	{ ", \"memory_mib\": 65", "vms[0].memory_mib: expected " MEM ", got 65" },
	{ ", \"memory_mib\": 1048578", "vms[0].memory_mib: expected " MEM ", got 1048578" },
	{ ", \"memory_mib\": -64", "vms[0].memory_mib: expected " MEM ", got -64" },
	{ ", \"memory_mib\": 64.0", "vms[0].memory_mib: expected " MEM ", got 64.0" },
	{ ", \"memory_mib\": true", "vms[0].memory_mib: expected " MEM ", got true" },
	{ ", \"memory_mib\": null", "vms[0].memory_mib: expected " MEM ", got null" },
	{ ", \"vcpus\": 0", "vms[0].vcpus: expected an integer from 1 to 256, got 0" },
	{ ", \"vcpus\": 257", "vms[0].vcpus: expected an integer from 1 to 256, got 257" },
	{ ", \"vcpus\": \"2\"", "vms[0].vcpus: expected an integer from 1 to 256, got \"2\"" },
	{ ", \"name\": \"\"", "vms[0].name: expected " NAME ", got \"\"" },
	{ ", \"name\": \"Vm0\"", "vms[0].name: expected " NAME ", got \"Vm0\"" },
	{ ", \"name\": \"_vm\"", "vms[0].name: expected " NAME ", got \"_vm\"" },
	{ ", \"name\": \"-vm\"", "vms[0].name: expected " NAME ", got \"-vm\"" },
	{ ", \"name\": \"vm.0\"", "vms[0].name: expected " NAME ", got \"vm.0\"" },
	{ ", \"name\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
	  "vms[0].name: expected " NAME ", got \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"" },
	{ ", \"name\": 7", "vms[0].name: expected " NAME ", got 7" },
	{ ", \"machine\": \"\"", "vms[0].machine: expected " TOKEN ", got \"\"" },
	{ ", \"machine\": \"q 35\"", "vms[0].machine: expected " TOKEN ", got \"q 35\"" },
	{ ", \"machine\": null", "vms[0].machine: expected " TOKEN ", got null" },
	{ ", \"cpu\": \"max\\t\"", "vms[0].cpu: expected " TOKEN ", got \"max\\t\"" },
	{ ", \"cpu\": \"m\u00e4x\"", "vms[0].cpu: expected " TOKEN ", got \"m\u00e4x\"" },
	{ ", \"cpu\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"",
	  "vms[0].cpu: expected " TOKEN ", got \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..." },
	{ ", \"accel\": \"hvf\"", "vms[0].accel: expected \"kvm\", \"tcg\" or \"auto\", got \"hvf\"" },
	{ ", \"accel\": \"KVM\"", "vms[0].accel: expected \"kvm\", \"tcg\" or \"auto\", got \"KVM\"" },
	{ ", \"accel\": null", "vms[0].accel: expected \"kvm\", \"tcg\" or \"auto\", got null" },
	{ ", \"kernel\": \"vmlinuz\"", "vms[0].kernel: expected " PATHX ", or null, got \"vmlinuz\"" },
	{ ", \"kernel\": \"\"", "vms[0].kernel: expected " PATHX ", or null, got \"\"" },
	{ ", \"kernel\": false", "vms[0].kernel: expected " PATHX ", or null, got false" },
	{ ", \"initrd\": [\"/a\"]", "vms[0].initrd: expected " PATHX ", or null, got [\"/a\"]" },
	{ ", \"cmdline\": 1", "vms[0].cmdline: expected a string of at most 4096 bytes, or null, got 1" },
	{ ", \"disks\": {}", "vms[0].disks: expected an array of at most 16 disks, got {}" },
	{ ", \"disks\": null", "vms[0].disks: expected an array of at most 16 disks, got null" },
	{ ", \"disks\": [\"/a.img\"]", "vms[0].disks[0]: expected an object, got \"/a.img\"" },
	{ ", \"disks\": [{}]", "vms[0].disks[0].path: expected " PATHX ", got nothing" },
	{ ", \"disks\": [{\"path\": \"a.img\"}]", "vms[0].disks[0].path: expected " PATHX ", got \"a.img\"" },
	{ ", \"disks\": [{\"path\": \"/a\", \"format\": \"vmdk\"}]",
	  "vms[0].disks[0].format: expected \"raw\" or \"qcow2\", got \"vmdk\"" },
	{ ", \"disks\": [{\"path\": \"/a\"}, {\"path\": \"/b\", \"readonly\": \"yes\"}]",
	  "vms[0].disks[1].readonly: expected true or false, got \"yes\"" },
	{ ", \"disks\": [{\"path\": \"/a\", \"cache\": \"none\"}]",
	  "vms[0].disks[0].cache: expected no such key (known: path, format, readonly), got \"none\"" },
	{ ", \"serial\": \"vm0.log\"", "vms[0].serial: expected " PATHX ", \"log\" or null, got \"vm0.log\"" },
	{ ", \"serial\": \"LOG\"", "vms[0].serial: expected " PATHX ", \"log\" or null, got \"LOG\"" },
	{ ", \"restart\": \"sometimes\"",
	  "vms[0].restart: expected \"always\", \"on-failure\" or \"never\", got \"sometimes\"" },
	{ ", \"ram_backing\": \"memfd\"",
	  "vms[0].ram_backing: expected \"fdset\", \"procfd\" or \"auto\", got \"memfd\"" },
	{ ", \"qemu\": \"qemu-system-x86_64\"", "vms[0].qemu: expected " PATHX ", got \"qemu-system-x86_64\"" },
	{ ", \"qemu\": null", "vms[0].qemu: expected " PATHX ", got null" },
	{ ", \"qemu_args\": \"-S\"", "vms[0].qemu_args: expected an array of at most 64 strings, got \"-S\"" },
	{ ", \"qemu_args\": [\"-S\", 1]", "vms[0].qemu_args[1]: expected a string, got 1" },
	{ ", \"user\": \"Root\"", "vms[0].user: expected " USER ", got \"Root\"" },
	{ ", \"user\": \"0day\"", "vms[0].user: expected " USER ", got \"0day\"" },
	{ ", \"user\": \"\"", "vms[0].user: expected " USER ", got \"\"" },
	{ ", \"foo\": 1", "vms[0].foo: expected no such key (known: " VMKEYS "), got 1" },
	{ ", \"Name\": \"x\"", "vms[0].Name: expected no such key (known: " VMKEYS "), got \"x\"" },
	{ ", \"a b\": {\"c\": [1, 2]}", "vms[0][\"a b\"]: expected no such key (known: " VMKEYS "), got {\"c\":[1,2]}" },
};

static void test_vm_rules(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vm_rules) / sizeof(vm_rules[0]); i++)
		expect_vm(vm_rules[i].extra, vm_rules[i].want);
}

static void test_required(void **state)
{
	(void)state;
	expect_msgs("{\"version\": 1, \"vms\": [{}]}",
		    "vms[0].name: expected " NAME ", got nothing\n"
		    "vms[0].memory_mib: expected " MEM ", got nothing\n"
		    "vms[0].vcpus: expected an integer from 1 to 256, got nothing");
	expect_msgs("{\"vms\": []}", "version: expected the integer 1, got nothing");
	expect_msgs("{\"version\": 2}", "version: expected the integer 1, got 2");
	expect_msgs("{\"version\": \"1\"}", "version: expected the integer 1, got \"1\"");
	expect_msgs("{\"version\": 1.0}", "version: expected the integer 1, got 1.0");
	expect_msgs("{\"version\": 1, \"vms\": {}}", "vms: expected an array of at most 64 VMs, got {}");
	expect_msgs("{\"version\": 1, \"vms\": [1, null]}",
		    "vms[0]: expected an object, got 1\nvms[1]: expected an object, got null");
	expect_msgs("{\"version\": 1, \"extra\": true}",
		    "extra: expected no such key (known: version, vms, update, network), got true");
}

static void test_too_many(void **state)
{
	(void)state;
	char *big = malloc(65536);
	size_t o;

	assert_non_null(big);
	o = (size_t)sprintf(big, "{\"version\": 1, \"vms\": [");
	for (int i = 0; i < 65; i++)
		o += (size_t)sprintf(big + o, "%s{\"name\": \"vm%d\", \"memory_mib\": 64, \"vcpus\": 1}",
				     i ? "," : "", i);
	strcpy(big + o, "]}");
	expect_msgs(big, "vms: expected an array of at most 64 VMs, got an array of 65 VMs");

	o = (size_t)sprintf(big, "{\"version\": 1, \"vms\": [{\"name\": \"a\", \"memory_mib\": 64,"
			    " \"vcpus\": 1, \"disks\": [");
	for (int i = 0; i < 17; i++)
		o += (size_t)sprintf(big + o, "%s{\"path\": \"/d%d\"}", i ? "," : "", i);
	o += (size_t)sprintf(big + o, "], \"qemu_args\": [");
	for (int i = 0; i < 65; i++)
		o += (size_t)sprintf(big + o, "%s\"-S\"", i ? "," : "");
	strcpy(big + o, "]}]}");
	expect_msgs(big, "vms[0].disks: expected an array of at most 16 disks, got an array of 17 disks\n"
		    "vms[0].qemu_args: expected an array of at most 64 strings, got an array of 65 elements");
	free(big);
}

static void test_long_strings(void **state)
{
	(void)state;
	char *path = repeat('p', VMCONF_PATH_MAX + 1), *cmd = repeat('c', VMCONF_CMDLINE_MAX + 1);
	char *j = NULL;

	path[0] = '/';
	assert_true(asprintf(&j, "{\"version\": 1, \"update\": {\"kernel\": \"%s\", \"cmdline\": \"%s\"}}",
			     path, cmd) > 0);
	expect_msgs(j, "update.kernel: expected " PATHX ", or null, got \"/ppppppppppppppppppppppppppppppppppp...\n"
		    "update.cmdline: expected a string of at most 4096 bytes, or null, got \"cccccccccccccccccccccccccccccccccccc...");
	free(j);
	free(path);
	free(cmd);
}

static void test_update(void **state)
{
	(void)state;
	expect_msgs("{\"version\": 1, \"update\": []}",
		    "update: expected an object with kernel, initrd and cmdline, got []");
	expect_msgs("{\"version\": 1, \"update\": {\"kernel\": \"vmlinuz\", \"append\": \"x\"}}",
		    "update.kernel: expected " PATHX ", or null, got \"vmlinuz\"\n"
		    "update.append: expected no such key (known: kernel, initrd, cmdline), got \"x\"");
	struct vmconf *c = parse_ok("{\"version\": 1, \"update\": {\"kernel\": \"/k\", \"initrd\": null}}");
	assert_string_equal(c->update_kernel, "/k");
	assert_null(c->update_initrd);
	assert_null(c->update_cmdline);
	vmconf_free(c);
}

static void test_duplicate_names(void **state)
{
	(void)state;
	expect_msgs("{\"version\": 1, \"vms\": ["
		    "{\"name\": \"vm0\", \"memory_mib\": 64, \"vcpus\": 1},"
		    "{\"name\": \"vm1\", \"memory_mib\": 64, \"vcpus\": 1},"
		    "{\"name\": \"vm0\", \"memory_mib\": 64, \"vcpus\": 1}]}",
		    "vms[2].name: expected a name not used by another VM, got \"vm0\"");
}

static void test_many_errors_collected(void **state)
{
	(void)state;
	expect_msgs("{\"version\": 3, \"vms\": ["
		    "{\"name\": \"vm0\", \"memory_mib\": \"1G\", \"vcpus\": 0, \"foo\": 1},"
		    "{\"name\": \"vm0\", \"memory_mib\": 64, \"vcpus\": 1, \"accel\": \"hvf\"}],"
		    "\"update\": {\"kernel\": \"k\"}}",
		    "version: expected the integer 1, got 3\n"
		    "vms[0].memory_mib: expected " MEM ", got \"1G\"\n"
		    "vms[0].vcpus: expected an integer from 1 to 256, got 0\n"
		    "vms[0].foo: expected no such key (known: " VMKEYS "), got 1\n"
		    "vms[1].name: expected a name not used by another VM, got \"vm0\"\n"
		    "vms[1].accel: expected \"kvm\", \"tcg\" or \"auto\", got \"hvf\"\n"
		    "update.kernel: expected " PATHX ", or null, got \"k\"");
}

static void test_error_cap(void **state)
{
	(void)state;
	char *big = malloc(65536);
	size_t o = (size_t)sprintf(big, "{\"version\": 1");
	struct vmconf *c = NULL;
	struct vmconf_errors errs = { 0 };

	for (int i = 0; i < 300; i++)
		o += (size_t)sprintf(big + o, ", \"k%d\": %d", i, i);
	strcpy(big + o, "}");
	assert_int_equal(vmconf_parse_buffer(big, strlen(big), &c, &errs), -EINVAL);
	assert_int_equal(errs.n, VMCONF_MAX_ERRORS + 1);
	char *s = vmconf_error_format(&errs.v[VMCONF_MAX_ERRORS]);
	assert_string_equal(s, "expected at most 100 errors, got more (the rest are not listed)");
	free(s);
	vmconf_errors_clear(&errs);
	/* errs may be NULL: the result is the same. */
	assert_int_equal(vmconf_parse_buffer(big, strlen(big), &c, NULL), -EINVAL);
	free(big);

	/* 100000 copies of one key: listed up to the cap, and quickly (no
	 * line counting per copy). */
	size_t n = 100000;
	big = malloc(n * 7 + 64);
	o = (size_t)sprintf(big, "{\"version\": 1, \"x\": {");
	for (size_t i = 0; i < n; i++)
		o += (size_t)sprintf(big + o, "%s\"a\": 1", i ? "," : "");
	strcpy(big + o, "}}");
	assert_int_equal(vmconf_parse_buffer(big, strlen(big), &c, &errs), -EINVAL);
	assert_int_equal(errs.n, VMCONF_MAX_ERRORS + 1);
	s = vmconf_error_format(&errs.v[0]);
	assert_string_equal(s, "x.a: expected a key that appears once in its object, got it again at line 1, column 29 (byte 28)");
	free(s);
	vmconf_errors_clear(&errs);
	assert_int_equal(vmconf_parse_buffer(big, strlen(big), &c, NULL), -EINVAL);
	free(big);
}

/* ---- hostile input ---- */

static void test_json_errors(void **state)
{
	(void)state;
	expect_msgs("", "expected a JSON object, got nothing");
	expect_msgs(" \n\t ", "expected a JSON object, got nothing");
	expect_msgs("[]", "expected a JSON object, got []");
	expect_msgs("1", "expected a JSON object, got 1");
	expect_msgs("\"x\"", "expected a JSON object, got \"x\"");
	expect_msgs("null", "expected a JSON object, got null");
	expect_msgs("{\"version\": 1",
		    "expected valid JSON, got the end of the text at line 1, column 14 (byte 13)");
	expect_msgs("{\"version\": 1,\n \"vms\": [}",
		    "expected valid JSON, got a syntax error at line 2, column 10 (byte 24): unexpected character");
	expect_msgs("{\"version\": 1} x",
		    "expected valid JSON, got a syntax error at line 1, column 16 (byte 15): unexpected character");
	expect_msgs("{\"version\": 1, }",
		    "expected valid JSON, got a syntax error at line 1, column 16 (byte 15): unexpected character");
	expect_msgs("/* c */ {\"version\": 1}",
		    "expected valid JSON, got a syntax error at line 1, column 1 (byte 0): unexpected character");
	expect_msgs("{\"version\": 1, \"vms\": [{\"name\": \"\xff\"}]}",
		    "expected valid JSON, got a syntax error at line 1, column 34 (byte 33): invalid utf-8 string");
	expect_msgs("{\"version\": 01}",
		    "expected valid JSON, got a syntax error at line 1, column 15 (byte 14): number expected");
}

static void test_nul(void **state)
{
	(void)state;
	int r;
	static const char raw[] = "{\"version\": 1,\n\"vms\": [\0]}";
	char *got = parse_messages(raw, sizeof(raw) - 1, &r);
	assert_int_equal(r, -EINVAL);
	assert_string_equal(got, "expected text without NUL bytes, got a NUL byte at line 2, column 9 (byte 23)");
	free(got);

	expect_vm(", \"name\": \"vm\\u0000x\"",
		  "vms[0].name: expected a string without NUL bytes, got \"vm\\u0000x\"");
	expect_vm(", \"cmdline\": \"\\u0000\"",
		  "vms[0].cmdline: expected a string without NUL bytes, got \"\\u0000\"");
	expect_vm(", \"disks\": [{\"path\": \"/a\\u0000b\"}]",
		  "vms[0].disks[0].path: expected a string without NUL bytes, got \"/a\\u0000b\"");
	/* json-c cuts keys at the NUL: "vcpus\u0000x" would pass as "vcpus". */
	expect_msgs("{\"version\": 1, \"vms\": [{\"name\": \"a\", \"memory_mib\": 64, \"vcpus\\u0000x\": 1}]}",
		    "vms[0][\"vcpus\\u0000x\"]: expected a key without NUL bytes, got \"vcpus\\u0000x\"");
}

static void test_huge_numbers(void **state)
{
	(void)state;
	expect_vm(", \"memory_mib\": 99999999999999999999",
		  "vms[0].memory_mib: expected " MEM ", got 99999999999999999999");
	expect_vm(", \"memory_mib\": -99999999999999999999",
		  "vms[0].memory_mib: expected " MEM ", got -99999999999999999999");
	expect_vm(", \"memory_mib\": 18446744073709551616",
		  "vms[0].memory_mib: expected " MEM ", got 18446744073709551616");
	expect_vm(", \"memory_mib\": 18446744073709551615",
		  "vms[0].memory_mib: expected " MEM ", got 18446744073709551615");
	expect_vm(", \"memory_mib\": 4294967360",
		  "vms[0].memory_mib: expected " MEM ", got 4294967360");
	expect_vm(", \"vcpus\": 1e30", "vms[0].vcpus: expected an integer from 1 to 256, got 1e30");
	expect_vm(", \"vcpus\": 2e0", "vms[0].vcpus: expected an integer from 1 to 256, got 2e0");
	expect_vm(", \"vcpus\": NaN", "vms[0].vcpus: expected an integer from 1 to 256, got NaN");
	expect_msgs("{\"version\": 4294967297}", "version: expected the integer 1, got 4294967297");
	expect_msgs("{\"version\": 1000000000000000000000000000000000000000000000000001}",
		    "version: expected the integer 1, got 1000000000000000000000000000000000000...");
}

static void test_duplicate_keys(void **state)
{
	(void)state;
	expect_msgs("{\"version\": 1, \"vms\": [{\"name\": \"vm0\", \"memory_mib\": 64, \"vcpus\": 1, \"vcpus\": 2}]}",
		    "vms[0].vcpus: expected a key that appears once in its object, got it again at line 1, column 70 (byte 69)");
	/* An escaped spelling of the same key is the same key. */
	expect_msgs("{\"version\": 1,\n\"vers\\u0069on\": 1}",
		    "version: expected a key that appears once in its object, got it again at line 2, column 1 (byte 15)");
}

static void test_size_and_depth(void **state)
{
	(void)state;
	size_t n = VMCONF_MAX_FILE;
	char *buf = repeat(' ', n + 1);
	int r;

	memcpy(buf, "{\"version\": 1}", 14);
	struct vmconf *c = NULL;
	assert_int_equal(vmconf_parse_buffer(buf, n, &c, NULL), 0); /* at the limit: fine */
	vmconf_free(c);
	char *got = parse_messages(buf, n + 1, &r);
	assert_int_equal(r, -EINVAL);
	assert_string_equal(got, "expected at most 1048576 bytes, got 1048577 bytes");
	free(got);
	free(buf);

	/* 16 levels parse (then fail the schema); 17 do not. */
	char deep[256];
	size_t o = (size_t)sprintf(deep, "{\"version\": 1, \"x\": ");
	for (int i = 0; i < VMCONF_MAX_DEPTH - 1; i++)
		deep[o++] = '[';
	for (int i = 0; i < VMCONF_MAX_DEPTH - 1; i++)
		deep[o++] = ']';
	strcpy(deep + o, "}");
	expect_msgs(deep, "x: expected no such key (known: version, vms, update, network), got [[[[[[[[[[[[[[[]]]]]]]]]]]]]]]");
	o = (size_t)sprintf(deep, "{\"version\": 1, \"x\": ");
	for (int i = 0; i < VMCONF_MAX_DEPTH; i++)
		deep[o++] = '[';
	for (int i = 0; i < VMCONF_MAX_DEPTH; i++)
		deep[o++] = ']';
	strcpy(deep + o, "}");
	expect_msgs(deep, "expected at most 16 levels of nesting, got more at line 1, column 36 (byte 35)");

	/* Very deep input stops early, without recursion. */
	buf = repeat('[', 200000);
	got = parse_messages(buf, 200000, &r);
	assert_string_equal(got, "expected at most 16 levels of nesting, got more at line 1, column 17 (byte 16)");
	free(got);
	free(buf);
}

static void test_parse_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_vmconf.XXXXXX", path[64];
	struct vmconf *c = NULL;
	struct vmconf_errors errs = { 0 };

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/missing.json", dir);
	assert_int_equal(vmconf_parse_file(path, &c, &errs), -ENOENT);
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.v[0].path, path);
	char *s = vmconf_error_format(&errs.v[0]);
	char want[128];
	snprintf(want, sizeof(want), "%s: expected a readable file, got No such file or directory", path);
	assert_string_equal(s, want);
	free(s);
	vmconf_errors_clear(&errs);

	snprintf(path, sizeof(path), "%s/ok.json", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(full_json, f);
	fclose(f);
	assert_int_equal(vmconf_parse_file(path, &c, &errs), 0);
	assert_int_equal(c->n_vms, 2);
	vmconf_free(c);
	c = NULL;

	f = fopen(path, "w");
	for (size_t i = 0; i < VMCONF_MAX_FILE / 16 + 1; i++)
		fputs("                ", f);
	fclose(f);
	assert_int_equal(vmconf_parse_file(path, &c, &errs), -EINVAL);
	assert_int_equal(errs.n, 1);
	s = vmconf_error_format(&errs.v[0]);
	assert_string_equal(s, "expected at most 1048576 bytes, got more");
	free(s);
	vmconf_errors_clear(&errs);
	assert_null(c);
	unlink(path);
	rmdir(dir);
}

static void test_misc(void **state)
{
	(void)state;
	vmconf_free(NULL);
	vmconf_argv_free(NULL);
	vmconf_errors_clear(NULL);
	assert_null(vmconf_error_format(NULL));
	assert_string_equal(vmconf_accel_name(VMCONF_ACCEL_TCG), "tcg");
	assert_string_equal(vmconf_ram_name(VMCONF_RAM_FDSET), "fdset");
	assert_string_equal(vmconf_ram_name(VMCONF_RAM_PROCFD), "procfd");
	assert_string_equal(vmconf_restart_name(VMCONF_RESTART_ON_FAILURE), "on-failure");
	assert_string_equal(vmconf_restart_name(VMCONF_RESTART_NEVER), "never");
}

/* ---- argv ---- */

static void expect_argv(char **argv, const char *const *want)
{
	size_t i;
	for (i = 0; want[i]; i++) {
		assert_non_null(argv[i]);
		assert_string_equal(argv[i], want[i]);
	}
	assert_null(argv[i]);
}

static void test_argv_procfd(void **state)
{
	(void)state;
	struct vmconf *c = parse_ok("{\"version\": 1, \"vms\": [{\"name\": \"vm0\", \"memory_mib\": 64, \"vcpus\": 2}]}");
	struct vmconf_argv_opts o = { .ram_backing = VMCONF_RAM_PROCFD, .ram_fd = 5, .accel = VMCONF_ACCEL_TCG,
				      .qmp_fd = 3, .serial_fd = 4 };
	char **argv = NULL;

	assert_int_equal(vmconf_build_argv(&c->vms[0], &o, &argv), 0);
	expect_argv(argv, (const char *const[]){
		"/usr/bin/qemu-system-x86_64", "-name", "vm0", "-nodefaults", "-no-user-config",
		"-display", "none", "-machine", "q35,memory-backend=ram0", "-accel", "tcg",
		"-cpu", "max", "-smp", "2", "-m", "64M",
		"-object", "memory-backend-file,id=ram0,size=64M,mem-path=/proc/self/fd/5,share=on,align=2M",
		"-chardev", "socket,id=qmp,fd=3,server=off", "-mon", "chardev=qmp,mode=control",
		"-chardev", "socket,id=ser0,fd=4,server=off", "-serial", "chardev:ser0", NULL });
	vmconf_argv_free(argv);

	/* No serial socket: no serial port at all (-nodefaults). */
	o.serial_fd = -1;
	o.accel = VMCONF_ACCEL_KVM;
	assert_int_equal(vmconf_build_argv(&c->vms[0], &o, &argv), 0);
	expect_argv(argv, (const char *const[]){
		"/usr/bin/qemu-system-x86_64", "-name", "vm0", "-nodefaults", "-no-user-config",
		"-display", "none", "-machine", "q35,memory-backend=ram0", "-accel", "kvm",
		"-cpu", "max", "-smp", "2", "-m", "64M",
		"-object", "memory-backend-file,id=ram0,size=64M,mem-path=/proc/self/fd/5,share=on,align=2M",
		"-chardev", "socket,id=qmp,fd=3,server=off", "-mon", "chardev=qmp,mode=control", NULL });
	vmconf_argv_free(argv);
	vmconf_free(c);
}

static void test_argv_fdset_full(void **state)
{
	(void)state;
	struct vmconf *c = parse_ok(full_json);
	struct vmconf_argv_opts o = { .ram_backing = VMCONF_RAM_FDSET, .ram_fd = 7, .ram_fdset = 2,
				      .accel = VMCONF_ACCEL_KVM, .qmp_fd = 3, .serial_fd = 4,
				      .incoming_defer = true, .preconfig = true, .sandbox = true,
				      .firmware_dir = "/usr/share/qemu" };
	char **argv = NULL;

	free(c->vms[0].disks[1].path);
	c->vms[0].disks[1].path = strdup("/state/a,b,,c.qcow2");
	assert_int_equal(vmconf_build_argv(&c->vms[0], &o, &argv), 0);
	expect_argv(argv, (const char *const[]){
		"/opt/qemu/bin/qemu-system-x86_64", "-name", "vm0", "-nodefaults", "-no-user-config",
		"-display", "none", "-machine", "pc-q35-10.0,memory-backend=ram0", "-accel", "kvm",
		"-cpu", "Haswell,+vmx", "-smp", "2", "-m", "1024M",
		"-add-fd", "fd=7,set=2",
		"-object", "memory-backend-file,id=ram0,size=1024M,mem-path=/dev/fdset/2,share=on,align=2M",
		"-chardev", "socket,id=qmp,fd=3,server=off", "-mon", "chardev=qmp,mode=control",
		"-chardev", "socket,id=ser0,fd=4,server=off", "-serial", "chardev:ser0",
		"-kernel", "/state/guest/vm0.elf", "-initrd", "/state/guest/vm0.cpio",
		"-append", "console=ttyS0 quiet",
		"-drive", "file=/state/guest/vm0.img,format=raw,if=virtio,id=disk0",
		"-drive", "file=/state/a,,b,,,,c.qcow2,format=qcow2,if=virtio,id=disk1,readonly=on",
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
		"-L", "/usr/share/qemu", "--preconfig", "-incoming", "defer",
		"-device", "virtio-rng-pci", NULL });
	vmconf_argv_free(argv);
	vmconf_free(c);
}

/* An early QEMU's disks: the same argv but for them, no -drive, their
 * devices last (where QEMU creates what -drive if=virtio makes), their nodes
 * by QMP. */
static void test_argv_disks_by_qmp(void **state)
{
	(void)state;
	struct vmconf *c = parse_ok(full_json);
	struct vmconf_argv_opts o = { .ram_backing = VMCONF_RAM_FDSET, .ram_fd = 7, .ram_fdset = 2,
				      .accel = VMCONF_ACCEL_KVM, .qmp_fd = 3, .serial_fd = 4,
				      .incoming_defer = true, .preconfig = true, .sandbox = true };
	char **drive = NULL, **argv = NULL;
	size_t i = 0, j = 0, drives = 0;
	json_object *b;

	free(c->vms[0].disks[1].path);
	c->vms[0].disks[1].path = strdup("/state/a,b\"c.qcow2");
	assert_int_equal(vmconf_build_argv(&c->vms[0], &o, &drive), 0);
	o.disks_by_qmp = true;
	assert_int_equal(vmconf_build_argv(&c->vms[0], &o, &argv), 0);
	for (; drive[i]; i++) {
		if (strcmp(drive[i], "-drive") == 0 && drive[i + 1]) {
			i++;
			drives++;
			continue;
		}
		assert_non_null(argv[j]);
		assert_string_equal(argv[j++], drive[i]);
	}
	assert_int_equal(drives, 2);
	expect_argv(argv + j, (const char *const[]){
		"-device", "virtio-blk,drive=disk0", "-device", "virtio-blk,drive=disk1", NULL });
	assert_string_equal(argv[j - 1], "virtio-rng-pci"); /* after qemu_args' -device */
	vmconf_argv_free(drive);
	vmconf_argv_free(argv);

	b = vmconf_blockdev_args(&c->vms[0], 0);
	assert_non_null(b);
	assert_string_equal(json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN),
			    "{\"file\":{\"driver\":\"file\",\"filename\":\"\\/state\\/guest\\/vm0.img\"},"
			    "\"driver\":\"raw\",\"node-name\":\"disk0\",\"read-only\":false,\"auto-read-only\":true}");
	json_object_put(b);
	/* The path as it is: JSON quotes it, no comma doubling. */
	b = vmconf_blockdev_args(&c->vms[0], 1);
	assert_non_null(b);
	assert_string_equal(json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
			    "{\"file\":{\"driver\":\"file\",\"filename\":\"/state/a,b\\\"c.qcow2\"},"
			    "\"driver\":\"qcow2\",\"node-name\":\"disk1\",\"read-only\":true,\"auto-read-only\":true}");
	json_object_put(b);
	assert_null(vmconf_blockdev_args(&c->vms[0], 2));
	assert_null(vmconf_blockdev_args(NULL, 0));

	/* Without --preconfig nothing could add the nodes before the machine. */
	o.preconfig = false;
	argv = (char **)0x1;
	assert_int_equal(vmconf_build_argv(&c->vms[0], &o, &argv), -EINVAL);
	assert_ptr_equal(argv, (char **)0x1);
	vmconf_free(c);
}

static void test_argv_bad_opts(void **state)
{
	(void)state;
	struct vmconf *c = parse_ok("{\"version\": 1, \"vms\": [{\"name\": \"vm0\", \"memory_mib\": 64, \"vcpus\": 2}]}");
	const struct vmconf_argv_opts good = { .ram_backing = VMCONF_RAM_PROCFD, .ram_fd = 5,
					       .accel = VMCONF_ACCEL_TCG, .qmp_fd = 3, .serial_fd = -1 };
	struct vmconf_argv_opts o;
	char **argv = (char **)0x1;

	o = good; o.accel = VMCONF_ACCEL_AUTO;
	assert_int_equal(vmconf_build_argv(&c->vms[0], &o, &argv), -EINVAL);
	o = good; o.ram_backing = VMCONF_RAM_AUTO;
	assert_int_equal(vmconf_build_argv(&c->vms[0], &o, &argv), -EINVAL);
	o = good; o.ram_fd = 2;
	assert_int_equal(vmconf_build_argv(&c->vms[0], &o, &argv), -EINVAL);
	o = good; o.qmp_fd = -1;
	assert_int_equal(vmconf_build_argv(&c->vms[0], &o, &argv), -EINVAL);
	o = good; o.ram_backing = VMCONF_RAM_FDSET; o.ram_fdset = -1;
	assert_int_equal(vmconf_build_argv(&c->vms[0], &o, &argv), -EINVAL);
	assert_int_equal(vmconf_build_argv(NULL, &good, &argv), -EINVAL);
	assert_ptr_equal(argv, (char **)0x1); /* untouched on failure */
	vmconf_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_valid_edges),
		cmocka_unit_test(test_vm_rules),
		cmocka_unit_test(test_required),
		cmocka_unit_test(test_too_many),
		cmocka_unit_test(test_long_strings),
		cmocka_unit_test(test_update),
		cmocka_unit_test(test_duplicate_names),
		cmocka_unit_test(test_many_errors_collected),
		cmocka_unit_test(test_error_cap),
		cmocka_unit_test(test_json_errors),
		cmocka_unit_test(test_nul),
		cmocka_unit_test(test_huge_numbers),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_size_and_depth),
		cmocka_unit_test(test_parse_file),
		cmocka_unit_test(test_misc),
		cmocka_unit_test(test_argv_procfd),
		cmocka_unit_test(test_argv_fdset_full),
		cmocka_unit_test(test_argv_disks_by_qmp),
		cmocka_unit_test(test_argv_bad_opts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
