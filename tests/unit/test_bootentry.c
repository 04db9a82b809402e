/* Boot entries on the ESP (update/bootentry.c): names with and without
 * systemd-boot's counter, its order (no tries left last, newest generation
 * first), the default and the running entry, marking good, installing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "pid1/bootparams.h"
#include "update/bootentry.h"

static char root[128], dir[256];

static void touch(const char *d, const char *name, const char *text)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", d, name);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	char p[256];

	(void)state;
	snprintf(root, sizeof(root), "/tmp/luoinit-bootentry-XXXXXX");
	assert_non_null(mkdtemp(root));
	snprintf(p, sizeof(p), "%s/loader", root);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(dir, sizeof(dir), "%s/loader/entries", root);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(p, sizeof(p), "%s/EFI", root);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/EFI/luoinit", root);
	assert_int_equal(mkdir(p, 0700), 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void test_parse(void **state)
{
	struct bootentry e;

	(void)state;
	assert_int_equal(bootentry_parse("luoinit-0002-v1.3+3.conf", &e), 0);
	assert_string_equal(e.id, "luoinit-0002-v1.3.conf");
	assert_string_equal(e.version, "v1.3");
	assert_int_equal(e.gen, 2);
	assert_int_equal(e.tries_left, 3);
	assert_int_equal(e.tries_done, 0);
	assert_int_equal(bootentry_parse("luoinit-0010-abc-dirty+0-3.conf", &e), 0);
	assert_string_equal(e.version, "abc-dirty");
	assert_int_equal(e.tries_left, 0);
	assert_int_equal(e.tries_done, 3);
	assert_int_equal(bootentry_parse("luoinit-0001-1.0+git.conf", &e), 0); /* '+' not a counter */
	assert_string_equal(e.version, "1.0+git");
	assert_int_equal(e.tries_left, -1);
	assert_string_equal(e.id, "luoinit-0001-1.0+git.conf");
	assert_int_equal(bootentry_parse("luoinit-0001-v1.conf", &e), 0);
	assert_int_equal(e.tries_left, -1);
	assert_int_equal(bootentry_parse("luoinit-01-v1.conf", &e), -EINVAL);
	assert_int_equal(bootentry_parse("luoinit-0001-.conf", &e), -EINVAL);
	assert_int_equal(bootentry_parse("luoinit-0001-v1.cfg", &e), -EINVAL);
	assert_int_equal(bootentry_parse("other-0001-v1.conf", &e), -EINVAL);
	assert_int_equal(bootentry_parse("luoinit-0001-.hidden.conf", &e), -EINVAL);
}

static void test_order_default_running(void **state)
{
	struct bootentry v[8];
	const struct bootentry *d;
	size_t n;

	(void)state;
	touch(dir, "luoinit-0001-a.conf", "");
	touch(dir, "luoinit-0002-b+2-1.conf", "");
	touch(dir, "luoinit-0003-c+0-3.conf", ""); /* bad: last */
	touch(dir, "not-ours.conf", "");
	n = bootentry_scan(dir, v, 8);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].id, "luoinit-0002-b.conf");
	assert_string_equal(v[1].id, "luoinit-0001-a.conf");
	assert_string_equal(v[2].id, "luoinit-0003-c.conf");
	d = bootentry_default(v, n);
	assert_non_null(d);
	assert_string_equal(d->id, "luoinit-0002-b.conf");
	/* systemd-boot's word when the version agrees; else by version. */
	assert_ptr_equal(bootentry_running(v, n, "luoinit-0001-a.conf", "a"), &v[1]);
	assert_ptr_equal(bootentry_running(v, n, "luoinit-0003-c+1-2.conf", "c"), &v[2]);
	assert_ptr_equal(bootentry_running(v, n, "luoinit-0001-a.conf", "b"), &v[0]);
	assert_null(bootentry_running(v, n, NULL, "zz"));
	assert_null(bootentry_running(v, n, NULL, ""));
	/* Bounded. */
	assert_int_equal(bootentry_scan(dir, v, 2), 2);
}

static void test_mark_good(void **state)
{
	struct bootentry v[4];
	char p[512];
	size_t n;

	(void)state;
	touch(dir, "luoinit-0001-a+2-1.conf", "title a\n");
	n = bootentry_scan(dir, v, 4);
	assert_int_equal(n, 1);
	assert_int_equal(bootentry_mark_good(dir, &v[0]), 0);
	snprintf(p, sizeof(p), "%s/luoinit-0001-a.conf", dir);
	assert_int_equal(access(p, F_OK), 0);
	n = bootentry_scan(dir, v, 4);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].tries_left, -1);
	assert_int_equal(bootentry_mark_good(dir, &v[0]), 0); /* good already: nothing */
}

static void test_install(void **state)
{
	struct bootentry e, v[4];
	char img[300], p[600], buf[512] = "", err[256] = "";
	FILE *f;
	size_t n;

	(void)state;
	snprintf(img, sizeof(img), "%s/img.efi", root);
	touch(root, "img.efi", "MZ firmware bytes");
	touch(dir, "luoinit-0004-old.conf", "");
	assert_int_equal(bootentry_install(root, img, "v2", "console=ttyS0 a=b", 3, &e, err, sizeof(err)), 0);
	assert_string_equal(e.file, "luoinit-0005-v2+3.conf");
	assert_int_equal(e.tries_left, 3);
	snprintf(p, sizeof(p), "%s/EFI/luoinit/v2.efi", root);
	f = fopen(p, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "MZ firmware bytes");
	snprintf(p, sizeof(p), "%s/luoinit-0005-v2+3.conf", dir);
	f = fopen(p, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	assert_string_equal(buf, "title luoinit v2\nversion v2\nlinux /EFI/luoinit/v2.efi\noptions console=ttyS0 a=b\n");
	/* The new one is the default; no temporary file is left. */
	n = bootentry_scan(dir, v, 4);
	assert_int_equal(n, 2);
	assert_string_equal(bootentry_default(v, n)->id, "luoinit-0005-v2.conf");
	snprintf(p, sizeof(p), "%s/.luoinit-0005-v2+3.conf.tmp", dir);
	assert_int_equal(access(p, F_OK), -1);
	/* Refusals, with what was wrong. */
	assert_int_equal(bootentry_install(root, img, "v+3", "", 3, &e, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cannot name a boot entry"));
	assert_int_equal(bootentry_install(root, img, "../x", "", 3, &e, err, sizeof(err)), -EINVAL);
	assert_int_equal(bootentry_install(root, img, "v3", "", 0, &e, err, sizeof(err)), -EINVAL);
	err[0] = '\0';
	assert_true(bootentry_install(root, "/nonexistent/img.efi", "v3", "", 3, &e, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "/nonexistent/img.efi"));
	assert_int_equal(bootentry_scan(dir, v, 4), 2);
}

static int exists(const char *d, const char *name)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", d, name);
	return access(p, F_OK) == 0;
}

static void test_prune(void **state)
{
	char idir[300], removed[8][FWIMAGE_VERSION_MAX + 1];

	(void)state;
	snprintf(idir, sizeof(idir), "%s/EFI/luoinit", root);
	/* Five generations: 1 and 2 good (2 is the fallback), 3 on trial
	 * from a run that never finished, 4 running (good), 5 bad (newer:
	 * kept, status names it), 6 on trial for the next cold boot. */
	touch(dir, "luoinit-0001-a.conf", "");
	touch(dir, "luoinit-0002-b.conf", "");
	touch(dir, "luoinit-0003-c+1-2.conf", "");
	touch(dir, "luoinit-0004-d.conf", "");
	touch(dir, "luoinit-0005-e+0-3.conf", "");
	touch(dir, "luoinit-0006-f+3.conf", "");
	touch(dir, "other.conf", ""); /* not ours: left alone */
	for (const char *const *v = (const char *const[]){ "a", "b", "c", "d", "e", "f", "x", NULL }; *v; v++) {
		char name[64];
		snprintf(name, sizeof(name), "%s.efi", *v);
		touch(idir, name, "MZ");
	}
	touch(idir, "g.efi.tmp", "half"); /* a copy a power cut broke off */
	/* An id that is not there: nothing removed. */
	assert_int_equal(bootentry_prune(root, "luoinit-0009-z.conf", removed, 8), 0);
	assert_true(exists(dir, "luoinit-0001-a.conf") && exists(idir, "x.efi"));
	assert_int_equal(bootentry_prune(root, "luoinit-0004-d.conf", removed, 8), 2);
	assert_string_equal(removed[0], "c"); /* systemd-boot's order: newest first */
	assert_string_equal(removed[1], "a");
	assert_false(exists(dir, "luoinit-0001-a.conf") || exists(dir, "luoinit-0003-c+1-2.conf"));
	assert_true(exists(dir, "luoinit-0002-b.conf") && exists(dir, "luoinit-0004-d.conf") &&
		    exists(dir, "luoinit-0005-e+0-3.conf") && exists(dir, "luoinit-0006-f+3.conf") &&
		    exists(dir, "other.conf"));
	assert_false(exists(idir, "a.efi") || exists(idir, "c.efi") || exists(idir, "x.efi") ||
		     exists(idir, "g.efi.tmp"));
	assert_true(exists(idir, "b.efi") && exists(idir, "d.efi") && exists(idir, "e.efi") && exists(idir, "f.efi"));
	/* Again: nothing more to remove. */
	assert_int_equal(bootentry_prune(root, "luoinit-0004-d.conf", removed, 8), 0);
	/* Once 6 runs and is good, 4 is its fallback and 2 goes; 5 (bad, older
	 * now) goes too. */
	{
		char from[600], to[600];
		snprintf(from, sizeof(from), "%s/luoinit-0006-f+3.conf", dir);
		snprintf(to, sizeof(to), "%s/luoinit-0006-f.conf", dir);
		assert_int_equal(rename(from, to), 0);
	}
	assert_int_equal(bootentry_prune(root, "luoinit-0006-f.conf", removed, 1), 2);
	assert_string_equal(removed[0], "b"); /* only max of them named */
	assert_true(exists(dir, "luoinit-0004-d.conf") && exists(dir, "luoinit-0006-f.conf"));
	assert_false(exists(dir, "luoinit-0002-b.conf") || exists(dir, "luoinit-0005-e+0-3.conf"));
	assert_true(exists(idir, "d.efi") && exists(idir, "f.efi"));
	assert_false(exists(idir, "b.efi") || exists(idir, "e.efi"));
}

static void test_attempt(void **state)
{
	char v[80], p[300];

	(void)state;
	snprintf(p, sizeof(p), "%s/firmware", root);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(bootentry_attempt_read(root, v, sizeof(v)), -ENOENT);
	assert_int_equal(bootentry_attempt_clear(root), 0); /* none: fine */
	assert_int_equal(bootentry_attempt_write(root, "v2.1"), 0);
	assert_int_equal(bootentry_attempt_read(root, v, sizeof(v)), 0);
	assert_string_equal(v, "v2.1");
	assert_int_equal(bootentry_attempt_clear(root), 0);
	assert_int_equal(bootentry_attempt_read(root, v, sizeof(v)), -ENOENT);
	/* Not a version: not believed. */
	touch(p, ".live-update-into", "../etc\n");
	assert_int_equal(bootentry_attempt_read(root, v, sizeof(v)), -EINVAL);
}

static void test_bootparams(void **state)
{
	char p[300];
	unsigned char data[0x400] = { 0 };
	FILE *f;

	(void)state;
	snprintf(p, sizeof(p), "%s/data", root);
	data[0x210] = 0xD0;
	f = fopen(p, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, sizeof(data), f), sizeof(data));
	fclose(f);
	assert_int_equal(bootparams_loader(p), 0xD0);
	assert_string_equal(bootparams_loader_name(0xD0), "kexec");
	assert_string_equal(bootparams_loader_name(0x21), "efi-stub");
	assert_string_equal(bootparams_loader_name(0xB0), "qemu");
	assert_string_equal(bootparams_loader_name(-ENOENT), "unknown");
	assert_int_equal(truncate(p, 0x100), 0);
	assert_int_equal(bootparams_loader(p), -ENODATA);
	assert_int_equal(bootparams_loader("/nonexistent/data"), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test_setup_teardown(test_order_default_running, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mark_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_install, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attempt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bootparams, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
