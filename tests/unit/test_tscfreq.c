/* tscfreq: the next kernel's command line gets this kernel's TSC rate,
 * once, before a "--"; a CPU that reports its frequency needs none. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "update/tscfreq.h"

static void test_added(void **state)
{
	char out[256];
	(void)state;

	assert_int_equal(tscfreq_cmdline("console=ttyS0 liveupdate=on", 2095993, out, sizeof(out)), 0);
	assert_string_equal(out, "console=ttyS0 liveupdate=on tsc_early_khz=2095993");
	assert_int_equal(tscfreq_cmdline("", 7, out, sizeof(out)), 0);
	assert_string_equal(out, "tsc_early_khz=7");
}

/* The previous kexec's word is replaced, not repeated. */
static void test_replaced(void **state)
{
	char out[256];
	(void)state;

	assert_int_equal(tscfreq_cmdline(" a tsc_early_khz=1 b  tsc_early_khz=2\n", 3, out, sizeof(out)), 0);
	assert_string_equal(out, "a b tsc_early_khz=3");
	/* only that word: a longer name stays */
	assert_int_equal(tscfreq_cmdline("xtsc_early_khz=1 tsc_early_khzz=2", 3, out, sizeof(out)), 0);
	assert_string_equal(out, "xtsc_early_khz=1 tsc_early_khzz=2 tsc_early_khz=3");
}

/* Quotes keep blanks inside a word; the words after "--" are init's. */
static void test_quotes_and_dashes(void **state)
{
	char out[256];
	(void)state;

	assert_int_equal(tscfreq_cmdline("a=\"x tsc_early_khz=1\" -- tsc_early_khz=9 z", 5, out, sizeof(out)), 0);
	assert_string_equal(out, "a=\"x tsc_early_khz=1\" tsc_early_khz=5 -- tsc_early_khz=9 z");
}

static void test_too_long(void **state)
{
	char out[24];
	(void)state;

	assert_int_equal(tscfreq_cmdline("console=ttyS0", 2095993, out, sizeof(out)), -E2BIG);
	assert_int_equal(tscfreq_cmdline("abcdefghijklmnopqrstuvwxyz", 1, out, sizeof(out)), -E2BIG);
	assert_int_equal(tscfreq_cmdline("a", 2095993, out, sizeof(out)), 0);
	assert_string_equal(out, "a tsc_early_khz=2095993");
}

static void test_cpu_knows(void **state)
{
	(void)state;
	assert_true(tscfreq_cpu_knows("processor\t: 0\nflags\t\t: fpu tsc constant_tsc tsc_known_freq nopl\n"));
	assert_true(tscfreq_cpu_knows("flags\t\t: fpu tsc_known_freq"));
	assert_false(tscfreq_cpu_knows("processor\t: 0\nflags\t\t: fpu tsc constant_tsc nopl\n"
				       "processor\t: 1\nflags\t\t: tsc_known_freq\n"));
	assert_false(tscfreq_cpu_knows("flags\t\t: tsc_known_freqx\n"));
	assert_false(tscfreq_cpu_knows(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_added),
		cmocka_unit_test(test_replaced),
		cmocka_unit_test(test_quotes_and_dashes),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_cpu_knows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
