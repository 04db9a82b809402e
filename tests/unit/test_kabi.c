/* The live-update ABI line: kernel-abi.sh writes it from a kernel tree, kabi
 * reads and compares it; a file about another kernel release is not believed. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <cmocka.h>

#include "update/kabi.h"

#define SCRIPT "board/qemu-x86_64/kernel-abi.sh"
static char dir[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/luoinit-kabi-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[256];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir); /* test-only cleanup of a private temp dir */
	return system(cmd) == 0 ? 0 : -1;
}

static void put(const char *rel, const char *text)
{
	char path[512], cmd[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	snprintf(cmd, sizeof(cmd), "mkdir -p $(dirname %s)", path);
	assert_int_equal(system(cmd), 0);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static void test_parse(void **state)
{
	struct kabi k;

	(void)state;
	assert_int_equal(kabi_parse("kho=kho-v4 luo=luo-v5 memfd=memfd-v2 release=7.2.13\n", &k), 0);
	assert_true(k.known);
	assert_string_equal(kabi_get(&k, "luo"), "luo-v5");
	assert_string_equal(kabi_get(&k, "memfd"), "memfd-v2");
	assert_string_equal(kabi_get(&k, "release"), "7.2.13");
	assert_null(kabi_get(&k, "vfio"));
	assert_int_equal(kabi_parse("  memfd=none\tluo=luo-v1 kho=kho-v1 vfio=vfio-v1", &k), 0);
	assert_string_equal(kabi_get(&k, "vfio"), "vfio-v1");

	static const struct { const char *line, *why; } bad[] = {
		{ "", "no kho= word" },
		{ "kho=kho-v4 luo=luo-v5", "no memfd= word" },
		{ "kho=kho-v4 luo luo=luo-v5 memfd=memfd-v2", "expected key=value" },
		{ "kho=kho-v4 luo= memfd=memfd-v2", "bad value" },
		{ "kho=kho-v4 =luo-v5 memfd=memfd-v2", "expected key=value" },
		{ "kho=kho-v4 luo=luo-v5 memfd=memfd-v2 luo=luo-v5", "luo given twice" },
		{ "kho=kho-v4 luo=luo\"v5 memfd=memfd-v2", "bad value" },
		{ "kho=kho-v4 LUO=luo-v5 memfd=memfd-v2", "expected key=value" },
		{ "kho=kho-v4 luo=luo-v5 memfd=memfd-v2\nkho=kho-v5\n", "more than one line" },
		{ "a=1 b=1 c=1 d=1 e=1 f=1 g=1 h=1 i=1", "more than 8 words" },
		{ "kho=kho-v4 luo=luo-v5 memfd=0123456789012345678901234567890123456789012345678901234567890123",
		  "word too long" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(kabi_parse(bad[i].line, &k), -EINVAL);
		assert_false(k.known);
		if (!strstr(k.why, bad[i].why))
			fail_msg("\"%s\": got \"%s\", want \"%s\"", bad[i].line, k.why, bad[i].why);
	}
}

static void test_compare(void **state)
{
	struct kabi a, b;
	char why[256];

	(void)state;
	assert_int_equal(kabi_parse("kho=kho-v4 luo=luo-v5 memfd=memfd-v2 release=7.2.13", &a), 0);
	assert_int_equal(kabi_parse("memfd=memfd-v2 kho=kho-v4 luo=luo-v5 release=7.3.0", &b), 0);
	assert_int_equal(kabi_compare(&a, &b, why, sizeof(why)), 0);
	assert_int_equal(kabi_parse("kho=kho-v4 luo=luo-v5 memfd=memfd-v3", &b), 0);
	assert_int_equal(kabi_compare(&a, &b, why, sizeof(why)), -1);
	assert_string_equal(why, "memfd: memfd-v2 on the running kernel, memfd-v3 on the target");
	assert_int_equal(kabi_parse("kho=kho-v4 luo=luo-v5 memfd=memfd-v2 vfio=vfio-v1", &b), 0);
	assert_int_equal(kabi_compare(&a, &b, why, sizeof(why)), -1);
	assert_string_equal(why, "vfio: vfio-v1 on the target kernel, absent on the running");
	assert_int_equal(kabi_compare(&b, &a, why, sizeof(why)), -1);
	assert_string_equal(why, "vfio: vfio-v1 on the running kernel, absent on the target");
	assert_int_equal(kabi_parse("kho=kho-v4 luo=none memfd=memfd-v2", &b), 0);
	assert_int_equal(kabi_compare(&a, &b, why, sizeof(why)), -1);
	assert_string_equal(why, "the target kernel is built without the Live Update Orchestrator (luo=none)");
	assert_int_equal(kabi_compare(&b, &b, why, sizeof(why)), -1); /* none is never a match */
	assert_int_equal(kabi_parse("bogus", &b), -EINVAL);
	assert_int_equal(kabi_compare(&a, &b, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "the target kernel's is unknown: "));
	assert_int_equal(kabi_compare(&b, &a, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "the running kernel's is unknown: "));
}

static void test_read(void **state)
{
	struct kabi k;
	char path[256];

	(void)state;
	put("good", "kho=kho-v4 luo=luo-v5 memfd=memfd-v2 release=7.2.13\n");
	snprintf(path, sizeof(path), "%s/good", dir);
	kabi_read(path, NULL, &k);
	assert_true(k.known);
	kabi_read(path, "7.2.13", &k);
	assert_true(k.known);
	assert_string_equal(kabi_get(&k, "luo"), "luo-v5");
	kabi_read(path, "7.2.14", &k);
	assert_false(k.known);
	assert_non_null(strstr(k.why, "describes kernel 7.2.13, not 7.2.14"));

	put("norel", "kho=kho-v4 luo=luo-v5 memfd=memfd-v2");
	snprintf(path, sizeof(path), "%s/norel", dir);
	kabi_read(path, "7.2.14", &k); /* no release recorded: nothing to check */
	assert_true(k.known);

	put("bad", "luo=luo-v5\n");
	snprintf(path, sizeof(path), "%s/bad", dir);
	kabi_read(path, NULL, &k);
	assert_false(k.known);
	assert_non_null(strstr(k.why, "/bad: no kho= word"));

	snprintf(path, sizeof(path), "%s/missing", dir);
	kabi_read(path, NULL, &k);
	assert_false(k.known);
	assert_non_null(strstr(k.why, "/missing: No such file or directory"));

	/* The running kernel: checked against uname. */
	{
		struct utsname u;
		char line[200];
		assert_int_equal(uname(&u), 0);
		snprintf(line, sizeof(line), "kho=kho-v4 luo=luo-v5 memfd=memfd-v2 release=%s\n", u.release);
		put("running", line);
		snprintf(path, sizeof(path), "%s/running", dir);
		kabi_running(path, &k);
		assert_true(k.known);
		kabi_running(strcat(strcpy(path, dir), "/good"), &k);
		assert_int_equal(k.known, strcmp(u.release, "7.2.13") == 0);
	}
}

/* A file with just enough of a bzImage setup header. */
static void fake_bzimage(const char *path, const char *version)
{
	unsigned char buf[0x1000] = { 0 };
	int fd;

	memcpy(buf + 0x202, "HdrS", 4);
	buf[0x206] = 0x0f;
	buf[0x207] = 0x02; /* protocol 2.15 */
	buf[0x20e] = 0x00;
	buf[0x20f] = 0x0c; /* kernel_version at 0x0c00 + 0x200 */
	memcpy(buf + 0xe00, version, strlen(version) + 1);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	close(fd);
}

static void test_bzimage_and_target(void **state)
{
	char kernel[256], rel[65];
	struct kabi k;

	(void)state;
	snprintf(kernel, sizeof(kernel), "%s/vmlinuz", dir);
	fake_bzimage(kernel, "7.2.13 (luoinit@luoinit) #1 SMP PREEMPT 2025-01-01 00:00:00 UTC");
	assert_int_equal(kabi_bzimage_release(kernel, rel, sizeof(rel)), 0);
	assert_string_equal(rel, "7.2.13");
	assert_int_equal(kabi_bzimage_release(kernel, rel, 4), -ENOEXEC); /* does not fit */

	/* KERNEL.abi about this kernel: believed; about another: not. */
	put("vmlinuz.abi", "kho=kho-v4 luo=luo-v5 memfd=memfd-v2 release=7.2.13\n");
	kabi_target(kernel, &k);
	assert_true(k.known);
	fake_bzimage(kernel, "7.3.1 (luoinit@luoinit) #1 SMP");
	kabi_target(kernel, &k);
	assert_false(k.known);
	assert_non_null(strstr(k.why, "vmlinuz.abi describes kernel 7.2.13, not 7.3.1"));
	/* Not a bzImage: no release to check against (kexec_file_load judges the image). */
	put("vmlinuz", "not a kernel");
	assert_int_equal(kabi_bzimage_release(kernel, rel, sizeof(rel)), -ENOEXEC);
	kabi_target(kernel, &k);
	assert_true(k.known);
	put("other", "x");
	snprintf(kernel, sizeof(kernel), "%s/other", dir);
	kabi_target(kernel, &k);
	assert_false(k.known);
	assert_non_null(strstr(k.why, "other.abi: No such file or directory"));
	assert_int_equal(kabi_bzimage_release("/nonexistent", rel, sizeof(rel)), -ENOENT);

	/* The board kernel, when this tree has built one. */
	if (access("build/qemu-x86_64/bzImage", R_OK) == 0) {
		assert_int_equal(kabi_bzimage_release("build/qemu-x86_64/bzImage", rel, sizeof(rel)), 0);
		assert_true(rel[0] >= '0' && rel[0] <= '9');
	}
}

/* Run kernel-abi.sh; its stdout, or NULL when it failed. */
static char *run_script(const char *args, char *out, size_t len)
{
	char cmd[512];
	size_t n;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "sh " SCRIPT " %s 2>/dev/null", args);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, len - 1, p);
	out[n] = 0;
	return pclose(p) == 0 ? out : NULL;
}

static void test_script(void **state)
{
	char out[256], args[300];
	struct kabi k;

	(void)state;
	assert_int_equal(access(SCRIPT, R_OK), 0);
	/* The 7.2 layout. */
	put("k72/Makefile", "");
	put("k72/kernel/liveupdate/luo_core.c", "\tstrscpy(x, LUO_ABI_COMPATIBLE, n);\n");
	put("k72/include/linux/kho/abi/kexec_handover.h", "#define KHO_FDT_COMPATIBLE \"kho-v4\"\n");
	put("k72/include/linux/kho/abi/luo.h", "#define LUO_KHO_ENTRY_NAME\t\"LUO\"\n"
	    "#define LUO_ABI_COMPATIBLE\t\"luo-v5\"\n#define LUO_ABI_COMPAT_LEN\tALIGN(sizeof(LUO_ABI_COMPATIBLE), 8)\n"
	    "#define LIVEUPDATE_TEST_FLB_COMPATIBLE(i)\t\"liveupdate-test-flb-v\" #i\n");
	put("k72/include/linux/kho/abi/memfd.h", "/* x */\n#define MEMFD_LUO_FH_COMPATIBLE\t\"memfd-v2\" /* seals */\n");
	snprintf(args, sizeof(args), "%s/k72 --release 7.2.13", dir);
	assert_non_null(run_script(args, out, sizeof(out)));
	assert_string_equal(out, "kho=kho-v4 luo=luo-v5 memfd=memfd-v2 release=7.2.13\n");
	assert_int_equal(kabi_parse(out, &k), 0);

	/* With a .config: what is not built is none. */
	put("config", "CONFIG_KEXEC_HANDOVER=y\nCONFIG_LIVEUPDATE=y\n# CONFIG_LIVEUPDATE_MEMFD is not set\n");
	snprintf(args, sizeof(args), "%s/k72 --config %s/config", dir, dir);
	assert_non_null(run_script(args, out, sizeof(out)));
	assert_string_equal(out, "kho=kho-v4 luo=luo-v5 memfd=none\n");

	/* The 6.19 layout: an FDT-based LUO, KHO's string in the .c file. */
	put("k619/Makefile", "");
	put("k619/kernel/kexec_handover.c", "#define KHO_FDT_COMPATIBLE \"kho-v1\"\n");
	put("k619/include/linux/liveupdate/abi/luo.h", "#define LUO_FDT_COMPATIBLE\t\"luo-v1\"\n");
	put("k619/include/linux/liveupdate/abi/memfd.h", "#define MEMFD_LUO_FH_COMPATIBLE\t\"memfd-v1\"\n");
	snprintf(args, sizeof(args), "%s/k619", dir);
	assert_non_null(run_script(args, out, sizeof(out)));
	assert_string_equal(out, "kho=kho-v1 luo=luo-v1 memfd=memfd-v1\n");

	/* A string built from other macros: an error, not a guess. */
	put("k619/include/linux/liveupdate/abi/memfd.h", "#define MEMFD_LUO_FH_COMPAT_BASE \"memfd-v2\"\n"
	    "#define MEMFD_LUO_FH_COMPATIBLE\t\\\n\tMEMFD_LUO_FH_COMPAT_BASE \"-x\"\n");
	assert_null(run_script(args, out, sizeof(out)));
	/* Two different values: an error. */
	put("k619/include/linux/liveupdate/abi/memfd.h", "#define MEMFD_LUO_FH_COMPATIBLE\t\"memfd-v1\"\n");
	put("k619/mm/memfd_luo.c", "#define MEMFD_LUO_FH_COMPATIBLE\t\"memfd-v2\"\n");
	assert_null(run_script(args, out, sizeof(out)));
	/* Not a kernel tree. */
	assert_null(run_script(dir, out, sizeof(out)));

	/* The pinned kernel source, when unpacked. */
	if (access("build/linux-source-7.2/Makefile", R_OK) == 0) {
		assert_non_null(run_script("build/linux-source-7.2", out, sizeof(out)));
		assert_int_equal(kabi_parse(out, &k), 0);
		assert_int_equal(strncmp(kabi_get(&k, "luo"), "luo-v", 5), 0);
		assert_int_equal(strncmp(kabi_get(&k, "memfd"), "memfd-v", 7), 0);
		assert_int_equal(strncmp(kabi_get(&k, "kho"), "kho-v", 5), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_compare),
		cmocka_unit_test_setup_teardown(test_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bzimage_and_target, setup, teardown),
		cmocka_unit_test_setup_teardown(test_script, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
