/* Rotated log files: the cap holds, generations shift, the tail reads across
 * them in order, and a failing write never blocks the caller. */
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

#include "pid1/logfile.h"

static char dir[128], path[256];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/luoinit-logfile-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/vm0.serial", dir);
	return 0;
}

static int teardown(void **state)
{
	char p[300];
	(void)state;
	for (int g = 0; g < 10; g++) {
		snprintf(p, sizeof(p), g ? "%s.%d" : "%s", path, g);
		(void)unlink(p);
	}
	return rmdir(dir);
}

static off_t size_of(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? st.st_size : -1;
}

static void test_rotation(void **state)
{
	struct logfile f;
	char line[32], p[300], *t;
	size_t len;
	(void)state;

	assert_int_equal(logfile_open(&f, path, 100, 2), 0);
	/* 60 lines of 10 bytes: 600 bytes through a 100-byte cap, 2 kept. */
	for (int i = 0; i < 60; i++) {
		snprintf(line, sizeof(line), "line %03d\n", i);
		assert_int_equal(strlen(line), 9);
		logfile_write(&f, line, 9);
	}
	logfile_close(&f);
	assert_true(size_of(path) <= 100);
	snprintf(p, sizeof(p), "%s.1", path);
	assert_true(size_of(p) > 0 && size_of(p) <= 100);
	snprintf(p, sizeof(p), "%s.2", path);
	assert_true(size_of(p) > 0 && size_of(p) <= 100);
	snprintf(p, sizeof(p), "%s.3", path);
	assert_int_equal(size_of(p), -1); /* the oldest generations are gone */

	/* The tail across generations is the newest lines, in order. */
	t = logfile_tail(path, 2, 5 * 9, &len);
	assert_non_null(t);
	assert_int_equal(len, 45);
	assert_string_equal(t, "line 055\nline 056\nline 057\nline 058\nline 059\n");
	free(t);
	t = logfile_tail(path, 2, 100000, &len);
	assert_non_null(t);
	assert_true(len > 100 && len <= 300);
	assert_int_equal(len % 9, 0);
	assert_non_null(strstr(t, "line 050\nline 051\n")); /* across the .1 | current boundary */
	assert_string_equal(t + len - 9, "line 059\n");
	free(t);

	/* Reopened: appends to the current generation and keeps counting. */
	assert_int_equal(logfile_open(&f, path, 100, 2), 0);
	assert_int_equal(f.size, size_of(path));
	logfile_close(&f);
}

static void test_missing_and_failing(void **state)
{
	struct logfile f;
	size_t len = 7;
	char *t;
	(void)state;

	t = logfile_tail(path, 3, 100, &len); /* nothing there yet */
	assert_non_null(t);
	assert_int_equal(len, 0);
	free(t);
	assert_int_equal(logfile_open(&f, "/nonexistent-dir/x.log", 100, 1), -ENOENT);
	logfile_write(&f, "x", 1); /* closed: a no-op, not a crash */
	/* A write that fails is dropped and reported, not retried. */
	assert_int_equal(logfile_open(&f, path, 100, 1), 0);
	close(f.fd);
	f.fd = open("/dev/null", O_RDONLY | O_CLOEXEC); /* read-only: write fails with EBADF */
	assert_true(f.fd >= 0);
	logfile_write(&f, "abc", 3);
	assert_int_equal(f.error, EBADF);
	assert_int_equal(f.dropped, 3);
	logfile_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_and_failing, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
