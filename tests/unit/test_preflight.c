/* Pre-flight checks of an update: the target command line read as the kernel
 * reads it, and every refusal and mode choice. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "update/preflight.h"

#define GOOD "console=ttyS0 liveupdate=on kho=on kho_scratch=64M luoinit.log=info"

static enum preflight_switch sw(const char *cmdline, const char *name)
{
	return preflight_cmdline_switch(cmdline, name, NULL, 0);
}

static void test_switch_values(void **state)
{
	static const char *const on[] = { "on", "ON", "oN", "y", "Y", "yes", "1", "t", "true", "e", "enable" };
	static const char *const off[] = { "off", "OFF", "n", "no", "0", "f", "false", "d", "disable" };
	char line[64];

	(void)state;
	for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
		snprintf(line, sizeof(line), "liveupdate=%s", on[i]);
		assert_int_equal(sw(line, "liveupdate"), PREFLIGHT_ON);
	}
	for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
		snprintf(line, sizeof(line), "liveupdate=%s", off[i]);
		assert_int_equal(sw(line, "liveupdate"), PREFLIGHT_OFF);
	}
	/* kstrtobool refuses these: the kernel ignores the parameter. */
	assert_int_equal(sw("liveupdate", "liveupdate"), PREFLIGHT_INVALID);
	assert_int_equal(sw("liveupdate=", "liveupdate"), PREFLIGHT_INVALID);
	assert_int_equal(sw("liveupdate=o", "liveupdate"), PREFLIGHT_INVALID);
	assert_int_equal(sw("liveupdate=2", "liveupdate"), PREFLIGHT_INVALID);
	assert_int_equal(sw("liveupdate=maybe", "liveupdate"), PREFLIGHT_INVALID);
	assert_int_equal(sw("", "liveupdate"), PREFLIGHT_ABSENT);
	assert_int_equal(sw(NULL, "liveupdate"), PREFLIGHT_ABSENT);
}

static void test_switch_words(void **state)
{
	char v[16];

	(void)state;
	/* Whole words only: kho_scratch= and xkho= are other parameters. */
	assert_int_equal(sw("kho_scratch=64M xkho=on liveupdate.kho=on", "kho"), PREFLIGHT_ABSENT);
	assert_int_equal(sw(GOOD, "kho"), PREFLIGHT_ON);
	/* The last valid one wins; an invalid one after it is ignored. */
	assert_int_equal(sw("kho=on kho=off", "kho"), PREFLIGHT_OFF);
	assert_int_equal(sw("kho=off kho=on", "kho"), PREFLIGHT_ON);
	assert_int_equal(preflight_cmdline_switch("kho=on kho=bogus", "kho", v, sizeof(v)), PREFLIGHT_ON);
	assert_string_equal(v, "on");
	assert_int_equal(preflight_cmdline_switch("kho=bogus", "kho", v, sizeof(v)), PREFLIGHT_INVALID);
	assert_string_equal(v, "bogus");
	/* Quotes: around the value, around the whole word; spaces inside quotes. */
	assert_int_equal(sw("kho=\"on\"", "kho"), PREFLIGHT_ON);
	assert_int_equal(sw("\"kho=on\"", "kho"), PREFLIGHT_ON);
	assert_int_equal(sw("dyndbg=\"file x kho=off +p\" kho=on", "kho"), PREFLIGHT_ON);
	assert_int_equal(sw("foo=\"a kho=on b\"", "kho"), PREFLIGHT_ABSENT);
	/* Tabs, newlines and runs of spaces separate words. */
	assert_int_equal(sw("  a=1\tkho=on\n  b", "kho"), PREFLIGHT_ON);
	/* After "--" come init's arguments, not kernel parameters. */
	assert_int_equal(sw("console=ttyS0 -- kho=on", "kho"), PREFLIGHT_ABSENT);
	assert_int_equal(sw("kho=on --x kho=off", "kho"), PREFLIGHT_OFF);
	/* '-' and '_' are the same in parameter names. */
	assert_int_equal(sw("live-update=on", "live_update"), PREFLIGHT_ON);
}

static struct kabi kabi_of(const char *line)
{
	struct kabi k;

	assert_int_equal(kabi_parse(line, &k), 0);
	return k;
}

static int check(const char *initrd, const char *cmdline, enum preflight_mode mode, bool luo,
		 const struct kabi *run, const struct kabi *tgt, enum preflight_mode *got,
		 char *reason, char *err)
{
	struct preflight p = {
		.kernel = "/state/boot/vmlinuz", .initrd = initrd, .cmdline = cmdline,
		.mode = mode, .luo_available = luo, .running = run, .target = tgt,
	};

	err[0] = 0;
	return preflight_check(&p, got, reason, 512, err, 512);
}

static void test_no_initramfs(void **state)
{
	struct kabi a = kabi_of("kho=kho-v4 luo=luo-v5 memfd=memfd-v2");
	enum preflight_mode got;
	char reason[512], err[512];
	struct preflight p = { .kernel = NULL, .initrd = "/i", .cmdline = GOOD };

	(void)state;
	for (int m = PREFLIGHT_AUTO; m <= PREFLIGHT_FULL_RAM; m++) {
		assert_int_equal(check(NULL, GOOD, m, true, &a, &a, &got, reason, err), -EINVAL);
		assert_non_null(strstr(err, "no initramfs: luoinit would not run after the kexec and "
					    "the VMs would never come back"));
		assert_int_equal(check("", GOOD, m, true, &a, &a, &got, reason, err), -EINVAL);
	}
	assert_int_equal(preflight_check(&p, &got, reason, sizeof(reason), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no kernel"));
}

static void test_luo_chosen(void **state)
{
	struct kabi a = kabi_of("kho=kho-v4 luo=luo-v5 memfd=memfd-v2 release=7.2.13");
	struct kabi b = kabi_of("release=7.2.14 memfd=memfd-v2 luo=luo-v5 kho=kho-v4");
	enum preflight_mode got = PREFLIGHT_AUTO;
	char reason[512] = "x", err[512];

	(void)state;
	assert_int_equal(check("/i", GOOD, PREFLIGHT_AUTO, true, &a, &b, &got, reason, err), 0);
	assert_int_equal(got, PREFLIGHT_LUO);
	assert_string_equal(reason, "");
	got = PREFLIGHT_AUTO;
	assert_int_equal(check("/i", GOOD, PREFLIGHT_LUO, true, &a, &b, &got, reason, err), 0);
	assert_int_equal(got, PREFLIGHT_LUO);
}

static void test_cmdline_switches_refused(void **state)
{
	struct kabi a = kabi_of("kho=kho-v4 luo=luo-v5 memfd=memfd-v2");
	enum preflight_mode got;
	char reason[512], err[512];

	(void)state;
	for (int m = PREFLIGHT_AUTO; m <= PREFLIGHT_LUO; m++) {
		assert_int_equal(check("/i", "console=ttyS0 kho=on", m, true, &a, &a, &got, reason, err), -EINVAL);
		assert_non_null(strstr(err, "no liveupdate=on"));
		assert_null(strstr(err, "no kho"));
		assert_int_equal(check("/i", "liveupdate=1", m, true, &a, &a, &got, reason, err), -EINVAL);
		assert_non_null(strstr(err, "no kho=on"));
		assert_null(strstr(err, "no liveupdate"));
		assert_int_equal(check("/i", "console=ttyS0", m, true, &a, &a, &got, reason, err), -EINVAL);
		assert_non_null(strstr(err, "no liveupdate=on and no kho=on"));
		assert_int_equal(check("/i", "liveupdate=on kho=off", m, true, &a, &a, &got, reason, err), -EINVAL);
		assert_non_null(strstr(err, "kho=off (off)"));
		assert_int_equal(check("/i", "liveupdate=yes kho=sure", m, true, &a, &a, &got, reason, err), -EINVAL);
		assert_non_null(strstr(err, "kho=sure, which the kernel ignores"));
		assert_int_equal(check("/i", "liveupdate=y kho=1", m, true, &a, &a, &got, reason, err), 0);
		assert_int_equal(got, PREFLIGHT_LUO);
	}
	/* full-ram needs neither. */
	assert_int_equal(check("/i", "console=ttyS0", PREFLIGHT_FULL_RAM, true, &a, &a, &got, reason, err), 0);
	assert_int_equal(got, PREFLIGHT_FULL_RAM);
}

/* An armed watchdog cannot be disarmed (nowayout): a target that would not
 * feed it is refused in every mode; one that keeps it, or changes its
 * timeout, goes ahead; nothing is asked when none is armed. */
static void test_watchdog_off_refused(void **state)
{
	struct kabi a = kabi_of("kho=kho-v4 luo=luo-v5 memfd=memfd-v2");
	struct preflight p = { .kernel = "/k", .initrd = "/i", .luo_available = true, .running = &a, .target = &a };
	enum preflight_mode got;
	char reason[512], err[512];

	(void)state;
	for (int m = PREFLIGHT_AUTO; m <= PREFLIGHT_FULL_RAM; m++) {
		p.mode = (enum preflight_mode)m;
		p.watchdog_timeout = 60;
		p.cmdline = GOOD " luoinit.watchdog=0";
		assert_int_equal(preflight_check(&p, &got, reason, sizeof(reason), err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "luoinit.watchdog=0, but the watchdog is armed (60 s)"));
		/* The last one counts, as for the new init; a bad one is ignored. */
		p.cmdline = GOOD " luoinit.watchdog=0 luoinit.watchdog=30";
		assert_int_equal(preflight_check(&p, &got, reason, sizeof(reason), err, sizeof(err)), 0);
		p.cmdline = GOOD " luoinit.watchdog=0 luoinit.watchdog=soon";
		assert_int_equal(preflight_check(&p, &got, reason, sizeof(reason), err, sizeof(err)), -EINVAL);
		p.cmdline = GOOD; /* the default arms it */
		assert_int_equal(preflight_check(&p, &got, reason, sizeof(reason), err, sizeof(err)), 0);
		p.watchdog_timeout = 0;
		p.cmdline = GOOD " luoinit.watchdog=0";
		assert_int_equal(preflight_check(&p, &got, reason, sizeof(reason), err, sizeof(err)), 0);
	}
}

static void test_abi(void **state)
{
	struct kabi a = kabi_of("kho=kho-v4 luo=luo-v5 memfd=memfd-v2");
	struct kabi newer = kabi_of("kho=kho-v4 luo=luo-v6 memfd=memfd-v2");
	struct kabi nomemfd = kabi_of("kho=kho-v4 luo=luo-v5 memfd=none");
	struct kabi missing;
	enum preflight_mode got;
	char reason[512], err[512];

	(void)state;
	kabi_read("/nonexistent/vmlinuz.abi", NULL, &missing);
	assert_false(missing.known);

	/* auto: full-ram, with a reason for the log. */
	assert_int_equal(check("/i", GOOD, PREFLIGHT_AUTO, true, &a, &newer, &got, reason, err), 0);
	assert_int_equal(got, PREFLIGHT_FULL_RAM);
	assert_non_null(strstr(reason, "luo: luo-v5 on the running kernel, luo-v6 on the target"));
	assert_int_equal(check("/i", GOOD, PREFLIGHT_AUTO, true, &a, &missing, &got, reason, err), 0);
	assert_int_equal(got, PREFLIGHT_FULL_RAM);
	assert_non_null(strstr(reason, "target kernel's is unknown: /nonexistent/vmlinuz.abi"));
	assert_int_equal(check("/i", GOOD, PREFLIGHT_AUTO, true, NULL, &a, &got, reason, err), 0);
	assert_int_equal(got, PREFLIGHT_FULL_RAM);
	assert_non_null(strstr(reason, "running kernel's is unknown"));
	assert_int_equal(check("/i", GOOD, PREFLIGHT_AUTO, true, &a, &nomemfd, &got, reason, err), 0);
	assert_int_equal(got, PREFLIGHT_FULL_RAM);
	assert_non_null(strstr(reason, "target kernel is built without memfd preservation"));
	/* With a full-ram fallback, the target command line does not matter. */
	assert_int_equal(check("/i", "console=ttyS0", PREFLIGHT_AUTO, true, &a, &newer, &got, reason, err), 0);
	assert_int_equal(got, PREFLIGHT_FULL_RAM);

	/* luo: refused, naming the difference. */
	assert_int_equal(check("/i", GOOD, PREFLIGHT_LUO, true, &a, &newer, &got, reason, err), -EPROTO);
	assert_non_null(strstr(err, "mode=luo"));
	assert_non_null(strstr(err, "luo: luo-v5 on the running kernel, luo-v6 on the target"));
	assert_int_equal(check("/i", GOOD, PREFLIGHT_LUO, true, &a, &missing, &got, reason, err), -EPROTO);
	assert_non_null(strstr(err, "/nonexistent/vmlinuz.abi"));

	/* full-ram: always. */
	assert_int_equal(check("/i", GOOD, PREFLIGHT_FULL_RAM, true, &a, &newer, &got, reason, err), 0);
	assert_int_equal(got, PREFLIGHT_FULL_RAM);
	assert_string_equal(reason, "");
}

static void test_no_luo_now(void **state)
{
	struct kabi a = kabi_of("kho=kho-v4 luo=luo-v5 memfd=memfd-v2");
	enum preflight_mode got;
	char reason[512], err[512];

	(void)state;
	assert_int_equal(check("/i", GOOD, PREFLIGHT_AUTO, false, &a, &a, &got, reason, err), 0);
	assert_int_equal(got, PREFLIGHT_FULL_RAM);
	assert_non_null(strstr(reason, "LUO is not available on the running kernel"));
	assert_int_equal(check("/i", GOOD, PREFLIGHT_LUO, false, &a, &a, &got, reason, err), -ENODEV);
	assert_non_null(strstr(err, "mode=luo: LUO is not available"));
}

static void test_mode_names(void **state)
{
	enum preflight_mode m;

	(void)state;
	assert_int_equal(preflight_mode_parse(NULL, &m), 0);
	assert_int_equal(m, PREFLIGHT_AUTO);
	assert_int_equal(preflight_mode_parse("", &m), 0);
	assert_int_equal(m, PREFLIGHT_AUTO);
	assert_int_equal(preflight_mode_parse("full-ram", &m), 0);
	assert_int_equal(m, PREFLIGHT_FULL_RAM);
	assert_int_equal(preflight_mode_parse("luo", &m), 0);
	assert_int_equal(m, PREFLIGHT_LUO);
	assert_int_equal(preflight_mode_parse("LUO", &m), -EINVAL);
	assert_int_equal(preflight_mode_parse("full_ram", &m), -EINVAL);
	assert_string_equal(preflight_mode_name(PREFLIGHT_FULL_RAM), "full-ram");
	assert_string_equal(preflight_mode_name(PREFLIGHT_AUTO), "auto");
}

/* A firmware's QEMU and the machine each guest runs on. */
static void test_qemu_machine(void **state)
{
	unsigned a, b;
	char err[512];

	(void)state;
	assert_int_equal(preflight_qemu_version("10.0.13", &a, &b), 0);
	assert_int_equal(a, 10);
	assert_int_equal(b, 0);
	assert_int_equal(preflight_qemu_version("9.2", &a, &b), 0);
	assert_int_equal(b, 2);
	const char *badv[] = { "", "10", "10.", "10.0.", "v10.0", "10.0.1.2", "10.0-rc1", "1234567890.0" };
	for (size_t i = 0; i < sizeof(badv) / sizeof(badv[0]); i++)
		assert_int_equal(preflight_qemu_version(badv[i], &a, &b), -EINVAL);
	assert_int_equal(preflight_machine_version("pc-q35-10.0", &a, &b), 0);
	assert_int_equal(a * 100 + b, 1000);
	assert_int_equal(preflight_machine_version("pc-i440fx-2.12", &a, &b), 0);
	assert_int_equal(a * 100 + b, 212);
	const char *unversioned[] = { "microvm", "none", "q35", "pc-q35-10", "pc-q35-10.0.1", "x-10.0y", "", NULL };
	for (size_t i = 0; i < sizeof(unversioned) / sizeof(unversioned[0]); i++)
		assert_int_equal(preflight_machine_version(unversioned[i], &a, &b), -ENOENT);

	/* Same release, newer, much newer: fine. */
	assert_int_equal(preflight_qemu_machine("vm0", "pc-q35-10.0", "10.0.13", "v2", err, sizeof(err)), 0);
	assert_int_equal(preflight_qemu_machine("vm0", "pc-q35-10.0", "10.1.0", "v2", err, sizeof(err)), 0);
	assert_int_equal(preflight_qemu_machine("vm0", "pc-q35-9.2", "11.0.0", "v2", err, sizeof(err)), 0);
	/* An older QEMU than the machine: refused, with what and why. */
	assert_int_equal(preflight_qemu_machine("vm0", "pc-q35-10.0", "9.2.0", "v2", err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "vm0 runs on machine pc-q35-10.0, which firmware v2's QEMU 9.2.0 does not have"));
	assert_int_equal(preflight_qemu_machine("vm1", "pc-i440fx-10.1", "10.0.13", "v3", err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "its newest is 10.0"));
	/* An older QEMU, but the guest's machine is older still: fine. */
	assert_int_equal(preflight_qemu_machine("vm0", "pc-q35-8.2", "9.2.0", "v2", err, sizeof(err)), 0);
	/* Unknown on either side: no verdict (an image without a note). */
	assert_int_equal(preflight_qemu_machine("vm0", "pc-q35-10.0", "", "v2", err, sizeof(err)), 0);
	assert_int_equal(preflight_qemu_machine("vm0", "pc-q35-10.0", NULL, "v2", err, sizeof(err)), 0);
	assert_int_equal(preflight_qemu_machine("vm0", "microvm", "1.0.0", "v2", err, sizeof(err)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_switch_values),
		cmocka_unit_test(test_switch_words),
		cmocka_unit_test(test_no_initramfs),
		cmocka_unit_test(test_luo_chosen),
		cmocka_unit_test(test_cmdline_switches_refused),
		cmocka_unit_test(test_watchdog_off_refused),
		cmocka_unit_test(test_abi),
		cmocka_unit_test(test_no_luo_now),
		cmocka_unit_test(test_mode_names),
		cmocka_unit_test(test_qemu_machine),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
