/* Memory headroom before PRESERVE_FD, on real memfds (sparse, written,
 * fallocated) and fake /proc/meminfo files. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "update/headroom.h"

#define MiB (1ull << 20)
#define META(size) ((size) / 4096 * 24)

static char meminfo_path[64];

static int memfd(uint64_t size)
{
	int fd = memfd_create("headroom-test", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

static void fill(int fd, uint64_t off, uint64_t len)
{
	static char buf[1 << 16];

	memset(buf, 0x5a, sizeof(buf));
	for (uint64_t o = 0; o < len; o += sizeof(buf))
		assert_int_equal(pwrite(fd, buf, sizeof(buf), (off_t)(off + o)), (ssize_t)sizeof(buf));
}

static void fake_meminfo(uint64_t total_kb, uint64_t avail_kb, uint64_t swap_total_kb, uint64_t swap_free_kb)
{
	FILE *f = fopen(meminfo_path, "w");

	assert_non_null(f);
	fprintf(f, "MemTotal:       %8llu kB\nMemFree:          123456 kB\nMemAvailable:   %8llu kB\n"
		   "Buffers:            1000 kB\nSwapTotal:      %8llu kB\nSwapFree:       %8llu kB\n",
		(unsigned long long)total_kb, (unsigned long long)avail_kb,
		(unsigned long long)swap_total_kb, (unsigned long long)swap_free_kb);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	int fd;

	(void)state;
	snprintf(meminfo_path, sizeof(meminfo_path), "/tmp/luoinit-meminfo-XXXXXX");
	fd = mkstemp(meminfo_path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return unlink(meminfo_path);
}

static void test_memfd_need(void **state)
{
	uint64_t need, alloc, size = 16 * MiB;
	int fd = memfd(size);

	(void)state;
	/* Sparse: everything is still to allocate. */
	assert_int_equal(headroom_memfd(fd, &need, &alloc), 0);
	assert_int_equal(alloc, 0);
	assert_int_equal(need, size + META(size));
	/* Half written: half. */
	fill(fd, 0, size / 2);
	assert_int_equal(headroom_memfd(fd, &need, &alloc), 0);
	assert_true(alloc >= size / 2);
	assert_int_equal(need, size - alloc + META(size));
	/* fallocate()d pages are allocated though SEEK_DATA calls them holes. */
	assert_int_equal(fallocate(fd, 0, (off_t)(size / 2), (off_t)(size / 4)), 0);
	assert_int_equal(headroom_memfd(fd, &need, &alloc), 0);
	assert_true(alloc >= size / 2 + size / 4);
	assert_true(need <= size / 4 + META(size));
	/* Filled: only LUO's records. */
	fill(fd, size / 2, size / 2);
	assert_int_equal(headroom_memfd(fd, &need, NULL), 0);
	assert_int_equal(need, META(size));
	/* A hole punched: allocated again at PRESERVE_FD. */
	assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)(4 * MiB)), 0);
	assert_int_equal(headroom_memfd(fd, &need, NULL), 0);
	assert_int_equal(need, 4 * MiB + META(size));
	close(fd);
	assert_int_equal(headroom_memfd(fd, &need, NULL), -EBADF);
}

static void test_check(void **state)
{
	int fds[2] = { memfd(64 * MiB), memfd(32 * MiB) };
	const char *names[2] = { "vm0", "vm1" };
	struct headroom h;
	char err[512];

	(void)state;
	fill(fds[1], 0, 32 * MiB);
	/* 2 GiB total: margin max(64 MiB, 5% = 102 MiB). Need 64 MiB + 24 KiB records. */
	fake_meminfo(2048 * 1024, 1024 * 1024, 0, 0);
	assert_int_equal(headroom_check(meminfo_path, fds, names, 2, &h, err, sizeof(err)), 0);
	assert_int_equal(h.need, 64 * MiB + META(64 * MiB) + META(32 * MiB));
	assert_int_equal(h.available, 1024 * MiB);
	assert_int_equal(h.margin, 2048 * MiB / 20);
	assert_int_equal(h.swapped, 0);

	/* 150 MiB available, 102 MiB kept: 48 usable, short by 17. */
	fake_meminfo(2048 * 1024, 150 * 1024, 0, 0);
	assert_int_equal(headroom_check(meminfo_path, fds, names, 2, &h, err, sizeof(err)), -ENOMEM);
	assert_non_null(strstr(err, "not enough memory to preserve the RAM of 2 VM(s)"));
	assert_non_null(strstr(err, "65 MiB (vm0: 65 MiB)"));
	assert_non_null(strstr(err, "MemAvailable is 150 MiB of which 103 MiB stay free: 17 MiB short"));

	/* A small machine: the 64 MiB floor of the margin. */
	fake_meminfo(512 * 1024, 64 * 1024 + 65 * 1024, 0, 0);
	assert_int_equal(headroom_check(meminfo_path, fds, names, 2, &h, err, sizeof(err)), 0);
	assert_int_equal(h.margin, HEADROOM_MARGIN_MIN);
	fake_meminfo(512 * 1024, 64 * 1024 + 64 * 1024, 0, 0);
	assert_int_equal(headroom_check(meminfo_path, fds, names, 2, &h, err, sizeof(err)), -ENOMEM);

	/* Swap in use counts as pages to bring back (at most what is allocated). */
	fake_meminfo(2048 * 1024, 1024 * 1024, 4096 * 1024, 4096 * 1024 - 8 * 1024);
	assert_int_equal(headroom_check(meminfo_path, fds, names, 2, &h, err, sizeof(err)), 0);
	assert_int_equal(h.swapped, 8 * MiB);
	assert_int_equal(h.need, 72 * MiB + META(64 * MiB) + META(32 * MiB));
	fake_meminfo(2048 * 1024, 1024 * 1024, 4096 * 1024, 0);
	assert_int_equal(headroom_check(meminfo_path, fds, names, 2, &h, err, sizeof(err)), 0);
	assert_int_equal(h.swapped, 32 * MiB);
	fake_meminfo(2048 * 1024, 190 * 1024, 4096 * 1024, 0);
	assert_int_equal(headroom_check(meminfo_path, fds, names, 2, &h, err, sizeof(err)), -ENOMEM);
	assert_non_null(strstr(err, "with swapped-out pages"));
	close(fds[0]);
	close(fds[1]);
}

static void test_bad_inputs(void **state)
{
	int fd = memfd(4 * MiB), bad = -1;
	const char *name = "vm0";
	char err[512];
	FILE *f;

	(void)state;
	assert_int_equal(headroom_check("/nonexistent/meminfo", &fd, &name, 1, NULL, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/meminfo: No such file or directory"));
	f = fopen(meminfo_path, "w");
	assert_non_null(f);
	fputs("MemTotal: 1000 kB\nMemFree: 10 kB\n", f); /* a kernel older than 3.14 */
	assert_int_equal(fclose(f), 0);
	assert_int_equal(headroom_check(meminfo_path, &fd, &name, 1, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no MemAvailable line"));
	assert_int_equal(headroom_check(meminfo_path, &bad, &name, 1, NULL, err, sizeof(err)), -EBADF);
	assert_non_null(strstr(err, "vm0's RAM memfd"));
	/* The real one parses. */
	assert_int_equal(headroom_check(HEADROOM_MEMINFO, &fd, &name, 1, NULL, err, sizeof(err)) == 0 ||
			 strstr(err, "not enough memory") != NULL, 1);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memfd_need),
		cmocka_unit_test_setup_teardown(test_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_inputs, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
