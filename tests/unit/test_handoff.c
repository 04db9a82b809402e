/* The update manifest: round trip, atomic write, every corruption refused with
 * a message naming the field, stale states set aside and never deleted. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "update/handoff.h"

static char dir[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/luoinit-handoff-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[256];
	(void)state;
	/* test-only cleanup of a private temp dir */
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void sample(struct handoff *h)
{
	memset(h, 0, sizeof(*h));
	h->generation = handoff_new_generation();
	snprintf(h->mode, sizeof(h->mode), "luo");
	snprintf(h->old_kernel, sizeof(h->old_kernel), "7.2.13");
	h->kexec_at = 1795700000123.5;
	h->n_vms = 2;
	for (size_t i = 0; i < 2; i++) {
		struct handoff_vm *m = &h->vms[i];
		snprintf(m->name, sizeof(m->name), "vm%zu", i);
		m->memory_mib = 64;
		m->ram_size = 64 << 20;
		snprintf(m->machine, sizeof(m->machine), "pc-q35-10.0");
		snprintf(m->cpu, sizeof(m->cpu), "max");
		snprintf(m->accel, sizeof(m->accel), "tcg");
		snprintf(m->ram_backing, sizeof(m->ram_backing), "procfd");
		snprintf(m->qemu_version, sizeof(m->qemu_version), "10.0.2");
		m->vmstate_bytes = 291000 + (int64_t)i;
		m->ram_transferred = 532480;
		m->stopped_at = 1795700000000.25;
		m->save_ms = 9.5;
	}
	h->n_held = 1;
	snprintf(h->held[0], sizeof(h->held[0]), "vm9");
	for (size_t i = 0; i < 2; i++) {
		char text[256], err[256];
		struct vmconf *c = NULL;
		snprintf(text, sizeof(text), "{\"version\": 1, \"vms\": [{\"name\": \"vm%zu\", \"memory_mib\": 64, "
			 "\"vcpus\": 1}]}", i);
		assert_int_equal(vmconf_parse_buffer(text, strlen(text), &c, NULL), 0);
		assert_int_equal(handoff_vm_save_machine(&h->vms[i], &c->vms[0], err, sizeof(err)), 0);
		vmconf_free(c);
	}
}

static void write_text(const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, HANDOFF_FILE);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_round_trip(void **state)
{
	struct handoff a, b;
	char err[256], path[256];
	struct stat st;
	(void)state;

	sample(&a);
	assert_int_equal(handoff_write(dir, &a), 0);
	snprintf(path, sizeof(path), "%s/%s.tmp", dir, HANDOFF_FILE);
	assert_int_equal(stat(path, &st), -1); /* the temporary is gone */
	snprintf(path, sizeof(path), "%s/%s", dir, HANDOFF_FILE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 077, 0); /* not readable by others */
	assert_int_equal(handoff_read(dir, &b, err, sizeof(err)), 0);
	assert_true(a.generation == b.generation);
	assert_string_equal(b.mode, "luo");
	assert_int_equal(b.n_vms, 2);
	assert_string_equal(b.vms[1].name, "vm1");
	assert_int_equal(b.vms[1].vmstate_bytes, 291001);
	assert_int_equal(b.vms[0].ram_size, 64 << 20);
	assert_true(handoff_state_token(&b) == handoff_ram_token(&b) + 1);
	assert_true(b.kexec_at > 1795700000123.0 && b.kexec_at < 1795700000124.0);
	assert_int_equal(b.n_held, 1);
	assert_string_equal(b.held[0], "vm9");
	handoff_free(&a);
	handoff_free(&b);
}

/* The LUO copy: the same text parsed from memory, with the modules the
 * restore needs; a cut or padded copy, or a bad module name, is refused. */
static void test_parse_text(void **state)
{
	struct handoff a, b;
	char err[256] = "", *text, *bad;
	size_t len;
	(void)state;

	sample(&a);
	a.n_modules = 2;
	snprintf(a.modules[0], sizeof(a.modules[0]), "virtio_blk");
	snprintf(a.modules[1], sizeof(a.modules[1]), "kvm-intel");
	text = handoff_text(&a);
	assert_non_null(text);
	len = strlen(text);
	assert_int_equal(handoff_parse(text, len, &b, err, sizeof(err)), 0);
	assert_true(a.generation == b.generation);
	assert_int_equal(b.n_vms, 2);
	assert_non_null(b.vms[1].saved);
	assert_int_equal(b.n_modules, 2);
	assert_string_equal(b.modules[1], "kvm-intel");
	assert_string_equal(b.test_fault, ""); /* none: not even written */
	assert_null(strstr(text, "test_fault"));
	handoff_free(&b);
	/* a test fault for the new init travels with it */
	snprintf(a.test_fault, sizeof(a.test_fault), "early-qemu");
	bad = handoff_text(&a);
	assert_non_null(bad);
	assert_int_equal(handoff_parse(bad, strlen(bad), &b, err, sizeof(err)), 0);
	assert_string_equal(b.test_fault, "early-qemu");
	handoff_free(&b);
	free(bad);
	a.test_fault[0] = 0;
	/* trailing white space is fine, anything else is not */
	bad = malloc(len + 3);
	assert_non_null(bad);
	memcpy(bad, text, len);
	memcpy(bad + len, " \n", 2);
	assert_int_equal(handoff_parse(bad, len + 2, &b, err, sizeof(err)), 0);
	handoff_free(&b);
	memcpy(bad + len, "x", 1);
	assert_int_equal(handoff_parse(bad, len + 1, &b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not valid JSON"));
	/* cut in half, as a torn copy */
	assert_int_equal(handoff_parse(text, len / 2, &b, err, sizeof(err)), -EINVAL);
	free(bad);
	free(text);
	/* a module name that is not one */
	snprintf(a.modules[1], sizeof(a.modules[1]), "../evil");
	text = handoff_text(&a);
	assert_int_equal(handoff_parse(text, strlen(text), &b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "restore_modules[1]"));
	free(text);
	handoff_free(&a);
}

static void test_generation(void **state)
{
	(void)state;
	for (int i = 0; i < 100; i++) {
		uint64_t g = handoff_new_generation();
		assert_true(g != 0 && (g & 1) == 0);
	}
	assert_true(handoff_new_generation() != handoff_new_generation());
}

static void test_missing(void **state)
{
	struct handoff h;
	char err[256];
	(void)state;
	assert_int_equal(handoff_read(dir, &h, err, sizeof(err)), -ENOENT);
}

static void expect_refused(const char *text, const char *needle)
{
	struct handoff h;
	char err[256] = "";

	write_text(text);
	assert_int_equal(handoff_read(dir, &h, err, sizeof(err)), -EINVAL);
	if (!strstr(err, needle))
		fail_msg("error '%s' does not name '%s'", err, needle);
}

static void test_corrupt(void **state)
{
	struct handoff a;
	char path[256], buf[8192];
	int fd;
	ssize_t n;
	(void)state;

	expect_refused("{\"version\": 1, \"gener", "not valid JSON");
	expect_refused("[]", "not a JSON object");
	expect_refused("{\"version\": 0}", "version");
	expect_refused("{\"version\": \"2\"}", "version");
	expect_refused("{\"version\": 1, \"generation\": \"xyz\"}", "generation");
	expect_refused("{\"version\": 1, \"generation\": \"00000000000000ff\", \"mode\": \"magic\", "
		       "\"old_kernel\": \"\", \"kexec_at_ms\": 1, \"tsc_hz\": 0, \"kexec_tsc\": 0, \"sandbox\": false}", "mode");
	expect_refused("{\"version\": 1, \"generation\": \"00000000000000ff\", \"mode\": \"luo\", "
		       "\"old_kernel\": \"\", \"kexec_at_ms\": 1, \"tsc_hz\": 0, \"kexec_tsc\": 0, \"sandbox\": false, \"vms\": [{\"name\": 3}]}", "vms[0].name");
	expect_refused("{\"version\": 1, \"generation\": \"00000000000000ff\", \"mode\": \"luo\", "
		       "\"old_kernel\": \"\", \"kexec_at_ms\": 1, \"tsc_hz\": 0, \"kexec_tsc\": 0, \"sandbox\": false, "
		       "\"vms\": [], \"held\": [\"\"]}", "held[0]");
	expect_refused("{\"version\": 1, \"generation\": \"00000000000000ff\", \"mode\": \"luo\", "
		       "\"old_kernel\": \"\", \"kexec_at_ms\": 1, \"tsc_hz\": 0, \"kexec_tsc\": 0, \"sandbox\": false, "
		       "\"vms\": [], \"held\": \"vm1\"}", "held");
	/* A torn write: the first half of a real manifest. */
	sample(&a);
	assert_int_equal(handoff_write(dir, &a), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, HANDOFF_FILE);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf));
	assert_true(n > 100);
	assert_int_equal(ftruncate(fd, n / 2), 0);
	close(fd);
	expect_refused("", "not valid JSON");
	handoff_free(&a);
}

/* Written by an init from before "held": read, holding nothing back. */
static void test_manifest_without_held(void **state)
{
	struct handoff h;
	char err[256] = "";
	(void)state;

	write_text("{\"version\": 1, \"generation\": \"00000000000000ff\", \"mode\": \"luo\", "
		   "\"old_kernel\": \"7.2.13\", \"kexec_at_ms\": 1, \"tsc_hz\": 0, \"kexec_tsc\": 0, "
		   "\"sandbox\": false, \"vms\": []}");
	h.n_held = 7;
	assert_int_equal(handoff_read(dir, &h, err, sizeof(err)), 0);
	assert_int_equal(h.n_held, 0);
}

static void test_ram_size_mismatch(void **state)
{
	struct handoff a, b;
	char err[256];
	(void)state;

	sample(&a);
	a.vms[0].ram_size += 4096;
	assert_int_equal(handoff_write(dir, &a), 0);
	assert_int_equal(handoff_read(dir, &b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "vms[0].memory_mib/ram_size"));
	handoff_free(&a);
}

static void test_set_aside_and_consume(void **state)
{
	struct handoff a;
	char path[512], state_file[256], why[256];
	struct stat st;
	FILE *f;
	(void)state;

	sample(&a);
	snprintf(a.mode, sizeof(a.mode), "full-ram");
	snprintf(state_file, sizeof(state_file), "%s/vm0.vmstate", dir);
	f = fopen(state_file, "w");
	assert_non_null(f);
	fputs("state", f);
	fclose(f);
	snprintf(a.vms[0].vmstate_file, sizeof(a.vms[0].vmstate_file), "%s", state_file);
	assert_int_equal(handoff_write(dir, &a), 0);
	assert_int_equal(handoff_set_aside(dir, &a, "test: cold boot"), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, HANDOFF_FILE);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(stat(state_file, &st), -1);
	/* Both are under stale/TIME/, with the reason. */
	snprintf(path, sizeof(path), "find %s/stale -name vm0.vmstate | grep -q . && "
		 "find %s/stale -name %s | grep -q . && grep -rq 'cold boot' %s/stale", dir, dir, HANDOFF_FILE, dir);
	assert_int_equal(system(path), 0);
	(void)why;

	/* consume removes the manifest and the full-RAM state files. */
	f = fopen(state_file, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(handoff_write(dir, &a), 0);
	assert_int_equal(handoff_consume(dir, &a), 0);
	assert_int_equal(stat(state_file, &st), -1);
	snprintf(path, sizeof(path), "%s/%s", dir, HANDOFF_FILE);
	assert_int_equal(stat(path, &st), -1);
	handoff_free(&a);
}

/* stale/ past its cap: the oldest states go, the newest stays even alone
 * over the cap. */
static void test_prune_stale(void **state)
{
	char p[512], big[64 * 1024];
	const char *names[] = { "1790000000", "1790000001", "1790000002.1", "1790000003" };
	struct stat st;
	FILE *f;
	(void)state;

	memset(big, 'x', sizeof(big));
	snprintf(p, sizeof(p), "%s/stale", dir);
	assert_int_equal(mkdir(p, 0700), 0);
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/stale/%s", dir, names[i]);
		assert_int_equal(mkdir(p, 0700), 0);
		snprintf(p, sizeof(p), "%s/stale/%s/vm0.vmstate", dir, names[i]);
		f = fopen(p, "w");
		assert_non_null(f);
		assert_int_equal(fwrite(big, 1, sizeof(big), f), sizeof(big));
		fclose(f);
	}
	/* Room for two and a half: the two oldest go. */
	assert_int_equal(handoff_prune_stale(dir, 5 * sizeof(big) / 2), 2);
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/stale/%s", dir, names[i]);
		assert_int_equal(stat(p, &st) == 0, i >= 2);
	}
	/* A cap below one state: the newest is kept all the same. */
	assert_int_equal(handoff_prune_stale(dir, 1), 1);
	snprintf(p, sizeof(p), "%s/stale/%s/vm0.vmstate", dir, names[3]);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(handoff_prune_stale(dir, 1), 0);
}

/* A VM config with one disk, as the schema reads it. */
static struct vmconf *one_vm(const char *disk, unsigned vcpus)
{
	char text[1024];
	struct vmconf *c = NULL;

	snprintf(text, sizeof(text),
		 "{\"version\": 1, \"vms\": [{\"name\": \"vm0\", \"memory_mib\": 64, \"vcpus\": %u, "
		 "\"accel\": \"auto\", \"qemu\": \"/bin/true\", \"qemu_args\": [\"-no-reboot\"], "
		 "\"disks\": [{\"path\": \"%s\"}]}]}", vcpus, disk);
	assert_int_equal(vmconf_parse_buffer(text, strlen(text), &c, NULL), 0);
	return c;
}

static void make_file(const char *path)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("disk", f);
	fclose(f);
}

/* Version 2: the saved machine travels, comes back through the validator,
 * and a restore gets it with the resolved machine type, not the alias. */
static void test_machine_round_trip(void **state)
{
	struct handoff a, b;
	struct vmconf *conf, *m = NULL;
	char err[256] = "", disk[256];
	(void)state;

	snprintf(disk, sizeof(disk), "%s/vm0.img", dir);
	make_file(disk);
	conf = one_vm(disk, 3);
	sample(&a);
	a.n_vms = 1;
	snprintf(a.vms[0].name, sizeof(a.vms[0].name), "vm0");
	assert_int_equal(handoff_vm_save_machine(&a.vms[0], &conf->vms[0], err, sizeof(err)), 0);
	assert_int_equal(handoff_write(dir, &a), 0);
	assert_int_equal(handoff_read(dir, &b, err, sizeof(err)), 0);
	assert_int_equal(b.version, HANDOFF_VERSION);
	assert_non_null(b.vms[0].saved);
	assert_int_equal(b.vms[0].saved->vms[0].vcpus, 3);
	assert_string_equal(b.vms[0].saved->vms[0].machine, "q35"); /* as configured */
	assert_int_equal(b.vms[0].saved->vms[0].accel, VMCONF_ACCEL_AUTO);
	assert_int_equal(handoff_vm_machine(&b.vms[0], &m, err, sizeof(err)), 0);
	assert_string_equal(m->vms[0].machine, "pc-q35-10.0"); /* as resolved */
	assert_int_equal(m->vms[0].accel, VMCONF_ACCEL_TCG);
	assert_int_equal(m->vms[0].ram_backing, VMCONF_RAM_PROCFD);
	assert_string_equal(m->vms[0].disks[0].path, disk);
	assert_string_equal(m->vms[0].qemu_args[0], "-no-reboot");
	vmconf_free(m);
	handoff_free(&a);
	handoff_free(&b);
	vmconf_free(conf);
}

/* A disk replaced at the same path, or gone, is never restored onto. */
static void test_machine_disk_replaced(void **state)
{
	struct handoff a, b;
	struct vmconf *conf, *m = NULL;
	char err[256] = "", disk[256], other[256];
	(void)state;

	snprintf(disk, sizeof(disk), "%s/vm0.img", dir);
	snprintf(other, sizeof(other), "%s/other.img", dir);
	make_file(disk);
	make_file(other);
	conf = one_vm(disk, 1);
	sample(&a);
	a.n_vms = 1;
	snprintf(a.vms[0].name, sizeof(a.vms[0].name), "vm0");
	assert_int_equal(handoff_vm_save_machine(&a.vms[0], &conf->vms[0], err, sizeof(err)), 0);
	assert_int_equal(handoff_write(dir, &a), 0);
	assert_int_equal(rename(other, disk), 0); /* same path, another file */
	assert_int_equal(handoff_read(dir, &b, err, sizeof(err)), 0);
	assert_int_equal(handoff_vm_machine(&b.vms[0], &m, err, sizeof(err)), -ESTALE);
	assert_null(m);
	if (!strstr(err, "disks[0]") || !strstr(err, "another file"))
		fail_msg("error '%s' does not name the replaced disk", err);
	/* Before /state an early QEMU's machine is built without the disks;
	 * their check, once they are there, refuses the same. */
	assert_int_equal(handoff_vm_machine_early(&b.vms[0], &m, err, sizeof(err)), 0);
	assert_string_equal(m->vms[0].disks[0].path, disk);
	vmconf_free(m);
	m = NULL;
	err[0] = 0;
	assert_int_equal(handoff_vm_disks_check(&b.vms[0], err, sizeof(err)), -ESTALE);
	if (!strstr(err, "disks[0]") || !strstr(err, "another file"))
		fail_msg("error '%s' does not name the replaced disk", err);
	assert_int_equal(unlink(disk), 0);
	assert_int_equal(handoff_vm_machine(&b.vms[0], &m, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, disk));
	assert_int_equal(handoff_vm_disks_check(&b.vms[0], err, sizeof(err)), -ENOENT);
	assert_int_equal(handoff_vm_machine_early(&b.vms[0], &m, err, sizeof(err)), 0);
	vmconf_free(m);
	handoff_free(&a);
	handoff_free(&b);
	vmconf_free(conf);
}

/* A manifest from a newer luoinit is refused as such, not as corrupt. */
static void test_newer_manifest(void **state)
{
	struct handoff h;
	char err[256] = "";
	(void)state;

	write_text("{\"version\": 3, \"generation\": \"00000000000000ff\", \"something_new\": 1}");
	assert_int_equal(handoff_read(dir, &h, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "version 3 is newer"));
}

/* A version 2 manifest whose saved config is not a valid VM is refused. */
static void test_machine_corrupt(void **state)
{
	struct handoff h;
	char err[256] = "";
	(void)state;

	write_text("{\"version\": 2, \"generation\": \"00000000000000ff\", \"mode\": \"luo\", "
		   "\"old_kernel\": \"7.2.13\", \"kexec_at_ms\": 1, \"tsc_hz\": 0, \"kexec_tsc\": 0, "
		   "\"sandbox\": false, \"vms\": [{\"name\": \"vm0\", \"machine\": \"q35\", \"cpu\": \"max\", "
		   "\"accel\": \"tcg\", \"ram_backing\": \"procfd\", \"qemu_version\": \"10.0.2\", "
		   "\"vmstate_file\": \"\", \"memory_mib\": 64, \"ram_size\": 67108864, \"vmstate_bytes\": 1, "
		   "\"ram_transferred\": 0, \"stopped_at_ms\": 1, \"save_ms\": 1, "
		   "\"saved\": {\"name\": \"vm0\", \"memory_mib\": 64, \"vcpus\": 0}, \"disk_ids\": []}]}");
	assert_int_equal(handoff_read(dir, &h, err, sizeof(err)), -EINVAL);
	if (!strstr(err, "vms[0].saved") || !strstr(err, "vcpus"))
		fail_msg("error '%s' does not name the saved vcpus", err);
}

static void test_config_diff(void **state)
{
	struct vmconf *a = one_vm("/a.img", 1), *b = one_vm("/b.img", 2);
	char **d = NULL;
	(void)state;

	assert_int_equal(vmconf_vm_diff(&a->vms[0], &a->vms[0], &d), 0);
	assert_null(d);
	assert_int_equal(vmconf_vm_diff(&a->vms[0], &b->vms[0], &d), 2);
	assert_string_equal(d[0], "vcpus");
	assert_string_equal(d[1], "disks[0].path");
	assert_null(d[2]);
	vmconf_strv_free(d);
	vmconf_free(a);
	vmconf_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_without_held, setup, teardown),
		cmocka_unit_test(test_parse_text),
		cmocka_unit_test(test_generation),
		cmocka_unit_test_setup_teardown(test_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ram_size_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_aside_and_consume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_machine_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_machine_disk_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_manifest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_machine_corrupt, setup, teardown),
		cmocka_unit_test(test_config_diff),
		cmocka_unit_test_setup_teardown(test_prune_stale, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
