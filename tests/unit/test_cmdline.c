/* cmdline: defaults, quoting, warnings, kernel switches, list splitting. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "pid1/cmdline.h"
#include "pid1/log.h"

static char warned[8][256];
static int nwarned;

static void warn(const char *param)
{
	if (nwarned < 8)
		(void)snprintf(warned[nwarned], sizeof(warned[0]), "%s", param);
	nwarned++;
}

static void parse(const char *s, struct cmdline *c)
{
	nwarned = 0;
	assert_int_equal(cmdline_parse(s, c, warn), 0);
}

static void test_defaults(void **state)
{
	struct cmdline c;

	parse("", &c);
	assert_string_equal(c.state, "LABEL=luoinit-state");
	assert_string_equal(c.config, "");
	assert_string_equal(c.modules, "");
	assert_string_equal(c.mgmt, "luoinit.mgmt");
	assert_int_equal(c.log_level, LOG_INFO);
	assert_int_equal(c.liveupdate_on, 0);
	assert_int_equal(c.kho_on, 0);
	assert_int_equal(nwarned, 0);
	assert_int_equal(cmdline_parse(NULL, &c, warn), -EINVAL);
}

static void test_typical(void **state)
{
	struct cmdline c;

	parse("BOOT_IMAGE=/vmlinuz console=ttyS0 rdinit=/init liveupdate=on kho=1 quiet "
	      "luoinit.state=PARTUUID=0a1b-02 luoinit.config=/state/other.json "
	      "luoinit.modules=virtio_rng,virtio_blk luoinit.mgmt=mgmt0 luoinit.log=debug\n", &c);
	assert_string_equal(c.state, "PARTUUID=0a1b-02");
	assert_string_equal(c.config, "/state/other.json");
	assert_string_equal(c.modules, "virtio_rng,virtio_blk");
	assert_string_equal(c.mgmt, "mgmt0");
	assert_int_equal(c.log_level, LOG_DEBUG);
	assert_int_equal(c.liveupdate_on, 1);
	assert_int_equal(c.kho_on, 1);
	assert_int_equal(nwarned, 0);
}

static void test_quotes(void **state)
{
	struct cmdline c;

	parse("luoinit.state=\"LABEL=my state\" \"luoinit.config=/state/a b.json\"  foo=\"x y\" "
	      "luoinit.mgmt=\"\"port\"\"", &c);
	assert_string_equal(c.state, "LABEL=my state");
	assert_string_equal(c.config, "/state/a b.json");
	assert_string_equal(c.mgmt, "port");
	assert_int_equal(nwarned, 0);

	/* An unterminated quote runs to the end, as in the kernel. */
	parse("luoinit.state=\"LABEL=a b", &c);
	assert_string_equal(c.state, "LABEL=a b");
}

static void test_warnings(void **state)
{
	struct cmdline c;

	parse("luoinit.bogus=1 luoinit.log=loud luoinit.config=relative.json luoinit.state= "
	      "luoinit.mgmt luoinit.mgmt=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
	      "luoinit.log=warn other.param=3 luoinitx=1", &c);
	assert_int_equal(nwarned, 6);
	assert_string_equal(warned[0], "luoinit.bogus=1");
	assert_string_equal(warned[1], "luoinit.log=loud");
	assert_string_equal(warned[2], "luoinit.config=relative.json");
	assert_string_equal(warned[3], "luoinit.state=");
	assert_string_equal(warned[4], "luoinit.mgmt");
	assert_int_equal(strncmp(warned[5], "luoinit.mgmt=aaaa", 17), 0);
	/* Bad values keep the defaults; later good ones still apply. */
	assert_string_equal(c.state, "LABEL=luoinit-state");
	assert_string_equal(c.config, "");
	assert_string_equal(c.mgmt, "luoinit.mgmt");
	assert_int_equal(c.log_level, LOG_WARN);

	/* A NULL callback is fine. */
	assert_int_equal(cmdline_parse("luoinit.bogus", &c, NULL), 0);
}

static void test_switches(void **state)
{
	struct cmdline c;

	parse("liveupdate=off kho=on", &c);
	assert_int_equal(c.liveupdate_on, 0);
	assert_int_equal(c.kho_on, 1);
	parse("liveupdate=y kho", &c);
	assert_int_equal(c.liveupdate_on, 1);
	assert_int_equal(c.kho_on, 0);
	/* Last one wins, as for the kernel. */
	parse("liveupdate=1 liveupdate=0 luoinit.modules=a luoinit.modules=", &c);
	assert_int_equal(c.liveupdate_on, 0);
	assert_string_equal(c.modules, "");
	assert_int_equal(nwarned, 0);
	/* After "--" the words are init's arguments, not parameters. */
	parse("kho=on -- luoinit.log=debug liveupdate=on", &c);
	assert_int_equal(c.kho_on, 1);
	assert_int_equal(c.liveupdate_on, 0);
	assert_int_equal(c.log_level, LOG_INFO);
}

/* Fault injection is off unless the command line says so in so many words. */
static void test_test_faults(void **state)
{
	struct cmdline c;

	parse("console=ttyS0", &c);
	assert_int_equal(c.test_faults, 0);
	parse("luoinit.test_faults=1", &c);
	assert_int_equal(c.test_faults, 1);
	assert_int_equal(nwarned, 0);
	parse("luoinit.test_faults=1 luoinit.test_faults=off", &c);
	assert_int_equal(c.test_faults, 0);
	/* A bare switch or a bad value is a warning, and stays off. */
	parse("luoinit.test_faults", &c);
	assert_int_equal(c.test_faults, 0);
	assert_int_equal(nwarned, 1);
	parse("luoinit.test_faults=maybe", &c);
	assert_int_equal(c.test_faults, 0);
	assert_int_equal(nwarned, 1);
}

/* luoinit.watchdog=SECONDS: 0 is off; a bad value warns and keeps the default. */
static void test_watchdog(void **state)
{
	static const char *const bad[] = { "luoinit.watchdog", "luoinit.watchdog=", "luoinit.watchdog=-1",
					   "luoinit.watchdog=10s", "luoinit.watchdog=65536",
					   "luoinit.watchdog=99999999999999999999", "luoinit.watchdog= 5" };
	struct cmdline c;

	parse("console=ttyS0", &c);
	assert_int_equal(c.watchdog, CMDLINE_WATCHDOG_DEFAULT);
	parse("luoinit.watchdog=0", &c);
	assert_int_equal(c.watchdog, 0);
	parse("luoinit.watchdog=15 luoinit.watchdog=65535", &c);
	assert_int_equal(c.watchdog, 65535);
	assert_int_equal(nwarned, 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		parse(bad[i], &c);
		assert_int_equal(c.watchdog, CMDLINE_WATCHDOG_DEFAULT);
		assert_int_equal(nwarned, 1);
	}
	/* The last good one wins; a later bad one does not undo it. */
	parse("luoinit.watchdog=20 luoinit.watchdog=x", &c);
	assert_int_equal(c.watchdog, 20);
	assert_int_equal(nwarned, 1);
}

static void test_split(void **state)
{
	char **l = NULL;

	assert_int_equal(cmdline_list_split("a,b,,c , d,", ',', &l), 0);
	assert_non_null(l);
	assert_string_equal(l[0], "a");
	assert_string_equal(l[1], "b");
	assert_string_equal(l[2], "c");
	assert_string_equal(l[3], "d");
	assert_null(l[4]);
	cmdline_list_free(l);

	assert_int_equal(cmdline_list_split("", ',', &l), 0);
	assert_null(l[0]);
	cmdline_list_free(l);

	assert_int_equal(cmdline_list_split("virtio_rng", ',', &l), 0);
	assert_string_equal(l[0], "virtio_rng");
	assert_null(l[1]);
	cmdline_list_free(l);

	cmdline_list_free(NULL);
	assert_int_equal(cmdline_list_split(NULL, ',', &l), -EINVAL);
}

static void test_read(void **state)
{
	struct cmdline c;

	char raw[8192], small[4];

	/* Whatever this machine booted with, it must parse. */
	assert_int_equal(cmdline_read(&c), 0);
	assert_int_equal(cmdline_read_raw(raw, sizeof(raw)), 0);
	assert_null(strchr(raw, '\n'));
	/* Cut to the buffer, always terminated. */
	assert_int_equal(cmdline_read_raw(small, sizeof(small)), 0);
	assert_true(strlen(small) < sizeof(small));
	assert_int_equal(cmdline_read_raw(small, 0), -EINVAL);
}

/* What a kexec into a firmware image keeps of this boot's command line. */
static void test_extra(void **state)
{
	const char *B = "console=ttyS0 liveupdate=on kho=on panic=10";
	char out[256];

	(void)state;
	/* The kernel glued "B" + " " + the boot loader's. */
	cmdline_extra(B, "console=ttyS0 liveupdate=on kho=on panic=10 panic=0 luoinit.test_faults=1", out, sizeof(out));
	assert_string_equal(out, "panic=0 luoinit.test_faults=1");
	/* Nothing added (a trailing space from the kernel's glue), or just B. */
	cmdline_extra(B, "console=ttyS0 liveupdate=on kho=on panic=10 ", out, sizeof(out));
	assert_string_equal(out, "");
	cmdline_extra(B, B, out, sizeof(out));
	assert_string_equal(out, "");
	/* Not B's words: a kernel without it built in, booted with another line. */
	cmdline_extra(B, "console=ttyS0 liveupdate=on kho=on panic=100", out, sizeof(out));
	assert_string_equal(out, "console=ttyS0 liveupdate=on kho=on panic=100");
	cmdline_extra(B, "root=/dev/vda", out, sizeof(out));
	assert_string_equal(out, "root=/dev/vda");
	/* No firmware line: everything; blanks around trimmed. */
	cmdline_extra("", "  a=b c  ", out, sizeof(out));
	assert_string_equal(out, "a=b c");
	cmdline_extra(NULL, "a=b", out, sizeof(out));
	assert_string_equal(out, "a=b");
	cmdline_extra(" a=b ", "a=b x", out, sizeof(out));
	assert_string_equal(out, "x");
	/* Cut to the buffer, terminated. */
	cmdline_extra(B, "console=ttyS0 liveupdate=on kho=on panic=10 abcdefghij", out, 5);
	assert_string_equal(out, "abcd");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_typical),
		cmocka_unit_test(test_quotes),
		cmocka_unit_test(test_warnings),
		cmocka_unit_test(test_switches),
		cmocka_unit_test(test_test_faults),
		cmocka_unit_test(test_watchdog),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_read),
		cmocka_unit_test(test_extra),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
