/* statefs: spec parsing, libblkid probing of a real ext4 image made with
 * mke2fs, and (as root, with loop devices) statefs_find() end to end,
 * including a device that appears while it waits, a PARTUUID on an MBR
 * partition, statefs_mount() and mounts_sync_umount(). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "pid1/mounts.h"
#include "pid1/statefs.h"

#define UUID "6a1c0f3e-9b2d-4c5e-8f70-112233445566"
#define DISKID "4c756f31" /* MBR disk signature: PARTUUID 4c756f31-01 */

static char tmpdir[] = "/tmp/luoinit-test-statefs-XXXXXX";
static char img[256], pimg[256], label[17];
static int have_mke2fs;

/* fork/exec ARGV; with OUT, its first stdout line. Exit status or -1. */
static int run(char *const argv[], char *out, size_t olen)
{
	int p[2], status;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			(void)dup2(out ? p[1] : fd, 1);
			(void)dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	(void)close(p[1]);
	if (out) {
		ssize_t n = read(p[0], out, olen - 1);
		out[n > 0 ? n : 0] = '\0';
		out[strcspn(out, "\n")] = '\0';
	}
	(void)close(p[0]);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static int mke2fs(const char *path, const char *extra)
{
	char *argv[] = { "mke2fs", "-q", "-t", "ext4", "-F", "-L", label, "-U", UUID,
			 "-E", (char *)(extra ? extra : "lazy_itable_init=1"), (char *)path, "8M", NULL };
	return run(argv, NULL, 0);
}

static int setup(void **state)
{
	assert_non_null(mkdtemp(tmpdir));
	/* Unique per run: the whole machine's devices are scanned. */
	(void)snprintf(label, sizeof(label), "lt-%d", (int)getpid());
	(void)snprintf(img, sizeof(img), "%s/state.img", tmpdir);
	(void)snprintf(pimg, sizeof(pimg), "%s/disk.img", tmpdir);
	have_mke2fs = mke2fs(img, NULL) == 0;
	if (!have_mke2fs)
		fprintf(stderr, "test_statefs: mke2fs failed or missing, probe tests skipped\n");
	return 0;
}

static int teardown(void **state)
{
	char *argv[] = { "rm", "-rf", tmpdir, NULL };
	(void)run(argv, NULL, 0);
	return 0;
}

static void test_spec_parse(void **state)
{
	enum statefs_key k;
	const char *v;
	char big[300];

	assert_int_equal(statefs_spec_parse("LABEL=luoinit-state", &k, &v), 0);
	assert_int_equal(k, STATEFS_LABEL);
	assert_string_equal(v, "luoinit-state");
	assert_int_equal(statefs_spec_parse("UUID=" UUID, &k, &v), 0);
	assert_int_equal(k, STATEFS_UUID);
	assert_string_equal(v, UUID);
	assert_int_equal(statefs_spec_parse("PARTLABEL=state", &k, &v), 0);
	assert_int_equal(k, STATEFS_PARTLABEL);
	assert_string_equal(v, "state");
	assert_int_equal(statefs_spec_parse("PARTUUID=" DISKID "-01", &k, &v), 0);
	assert_int_equal(k, STATEFS_PARTUUID);
	assert_string_equal(v, DISKID "-01");
	assert_int_equal(statefs_spec_parse("/dev/vdb1", &k, &v), 0);
	assert_int_equal(k, STATEFS_PATH);
	assert_string_equal(v, "/dev/vdb1");
	/* A label may hold '=' and spaces. */
	assert_int_equal(statefs_spec_parse("LABEL=a=b c", &k, &v), 0);
	assert_string_equal(v, "a=b c");

	static const char *const bad[] = { "", "LABEL=", "UUID=", "label=x", "vdb1", "/dev/",
					   "/tmp/x", "TYPE=ext4", "PARTUUID=", NULL };
	for (size_t i = 0; bad[i]; i++)
		assert_int_equal(statefs_spec_parse(bad[i], &k, &v), -EINVAL);
	assert_int_equal(statefs_spec_parse(NULL, &k, &v), -EINVAL);
	memset(big, 'x', sizeof(big));
	memcpy(big, "LABEL=", 6);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(statefs_spec_parse(big, &k, &v), -EINVAL);
}

static void test_probe_file(void **state)
{
	struct statefs_info info;
	char path[300];
	int fd;

	if (!have_mke2fs)
		skip();
	assert_int_equal(statefs_probe_file(img, &info), 0);
	assert_string_equal(info.type, "ext4");
	assert_string_equal(info.label, label);
	assert_string_equal(info.uuid, UUID);
	assert_string_equal(info.partlabel, "");

	/* Zeros: readable, no filesystem. */
	(void)snprintf(path, sizeof(path), "%s/zero.img", tmpdir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	assert_int_equal(close(fd), 0);
	assert_int_equal(statefs_probe_file(path, &info), -ENODATA);
	assert_string_equal(info.type, "");

	(void)snprintf(path, sizeof(path), "%s/missing.img", tmpdir);
	assert_int_equal(statefs_probe_file(path, &info), -ENOENT);
}

static void test_find_timeout(void **state)
{
	struct timespec a, b;
	char dev[64], type[32];
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(statefs_find("LABEL=luoinit-no-such-fs", 150, dev, sizeof(dev),
				      type, sizeof(type)), -ENOENT);
	assert_int_equal(statefs_find("/dev/luoinit-no-such-dev", 0, dev, sizeof(dev),
				      type, sizeof(type)), -ENOENT);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	assert_true(ms >= 150 && ms < 2000);
	assert_int_equal(statefs_find("bogus", 0, dev, sizeof(dev), type, sizeof(type)), -EINVAL);
}

/* Attach FILE to a free loop device (with partitions scanned). */
static int loop_attach(const char *file, char *dev, size_t len)
{
	char *argv[] = { "losetup", "--find", "--show", "--partscan", (char *)file, NULL };
	return run(argv, dev, len) == 0 && strncmp(dev, "/dev/loop", 9) == 0 ? 0 : -1;
}

static void loop_detach(const char *dev)
{
	char *argv[] = { "losetup", "-d", (char *)dev, NULL };
	(void)run(argv, NULL, 0);
}

static int can_loop(void)
{
	return have_mke2fs && geteuid() == 0 && access("/dev/loop-control", W_OK) == 0;
}

static void test_find_loop(void **state)
{
	char dev[64], loopdev[64], type[32], spec[64], mnt[300], path[400];
	pid_t pid;
	int status, r;

	if (!can_loop()) {
		fprintf(stderr, "test_statefs: no root or no loop devices, skipped\n");
		skip();
	}
	/* The device appears while statefs_find() is already waiting. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct timespec t = { 0, 300 * 1000000L };
		(void)nanosleep(&t, NULL);
		char *argv[] = { "losetup", "--find", (char *)img, NULL };
		execvp(argv[0], argv);
		_exit(127);
	}
	(void)snprintf(spec, sizeof(spec), "LABEL=%s", label);
	r = statefs_find(spec, 5000, dev, sizeof(dev), type, sizeof(type));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "test_statefs: losetup failed, skipped\n");
		skip();
	}
	assert_int_equal(r, 0);
	assert_int_equal(strncmp(dev, "/dev/loop", 9), 0);
	assert_string_equal(type, "ext4");

	/* Same device by UUID (upper case too) and by path. */
	assert_int_equal(statefs_find("UUID=6A1C0F3E-9B2D-4C5E-8F70-112233445566", 0, loopdev,
				      sizeof(loopdev), type, sizeof(type)), 0);
	assert_string_equal(loopdev, dev);
	assert_int_equal(statefs_find(dev, 0, loopdev, sizeof(loopdev), type, sizeof(type)), 0);
	assert_string_equal(loopdev, dev);
	assert_string_equal(type, "ext4");
	/* Buffers too small. */
	assert_int_equal(statefs_find(spec, 0, loopdev, 5, type, sizeof(type)), -ENAMETOOLONG);

	(void)snprintf(mnt, sizeof(mnt), "%s/mnt", tmpdir);
	r = statefs_mount(dev, type, mnt);
	if (r == -EPERM) {
		loop_detach(dev);
		fprintf(stderr, "test_statefs: mount not permitted, skipped\n");
		skip();
	}
	assert_int_equal(r, 0);
	assert_int_equal(mounts_is_mountpoint(mnt), 1);
	(void)snprintf(path, sizeof(path), "%s/lost+found", mnt);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(mounts_sync_umount(mnt), 0);
	assert_int_equal(mounts_is_mountpoint(mnt), 0);
	assert_int_equal(mounts_sync_umount(mnt), -EINVAL);
	loop_detach(dev);
}

/* An MBR disk whose first partition (at 1 MiB) holds the filesystem. */
static void test_find_partuuid(void **state)
{
	unsigned char mbr[512] = { 0 };
	static const unsigned char entry[16] = {
		0x00, 0, 0, 0, 0x83, 0, 0, 0,
		0x00, 0x08, 0x00, 0x00, /* first LBA 2048 */
		0x00, 0x40, 0x00, 0x00, /* 16384 sectors: 8 MiB */
	};
	char loopdev[64], dev[64], type[32];
	int fd;

	if (!can_loop())
		skip();
	if (mke2fs(pimg, "offset=1048576") != 0)
		skip();
	mbr[440] = 0x31; mbr[441] = 0x6f; mbr[442] = 0x75; mbr[443] = 0x4c;
	memcpy(mbr + 446, entry, sizeof(entry));
	mbr[510] = 0x55;
	mbr[511] = 0xaa;
	fd = open(pimg, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, mbr, sizeof(mbr), 0), (ssize_t)sizeof(mbr));
	assert_int_equal(ftruncate(fd, 9 << 20), 0);
	assert_int_equal(close(fd), 0);

	if (loop_attach(pimg, loopdev, sizeof(loopdev)) < 0)
		skip();
	/* The partition device node shows up asynchronously. */
	int r = statefs_find("PARTUUID=" DISKID "-01", 3000, dev, sizeof(dev), type, sizeof(type));
	char part[80];
	(void)snprintf(part, sizeof(part), "%sp1", loopdev);
	int has_part = access(part, F_OK) == 0;
	loop_detach(loopdev);
	if (r == -ENOENT && !has_part) {
		fprintf(stderr, "test_statefs: kernel made no partition device (no MSDOS_PARTITION?), skipped\n");
		skip();
	}
	assert_int_equal(r, 0);
	assert_true(strncmp(dev, loopdev, strlen(loopdev)) == 0 && strcmp(dev + strlen(loopdev), "p1") == 0);
	assert_string_equal(type, "ext4");
}

/* In a child with its own mount namespace, chrooted into an empty
 * directory, so the host's mounts are never touched. Exit codes: 0 ok,
 * 77 cannot isolate, else the failed step. */
static int mounts_child(const char *root)
{
	static const char *const paths[] = { "/proc", "/sys", "/dev", "/run", "/dev/pts", "/dev/shm" };
	struct stat st;

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return 77;
	if (mkdir(root, 0755) < 0 || chroot(root) < 0 || chdir("/") < 0)
		return 77;
	if (mounts_early() != 0)
		return 1;
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (mounts_is_mountpoint(paths[i]) != 1)
			return 10 + (int)i;
	if (stat("/run", &st) < 0 || (st.st_mode & 07777) != 0755)
		return 2;
	if (access("/proc/self/mountinfo", F_OK) < 0 || access("/dev/null", F_OK) < 0)
		return 3;
	/* Again, as after a kexec into an init that finds some mounted. */
	if (mounts_early() != 0)
		return 4;
	if (mounts_sync_umount("/dev/shm") != 0 || mounts_is_mountpoint("/dev/shm") != 0)
		return 5;
	return 0;
}

static void test_mounts_early(void **state)
{
	char root[300];
	int status;
	pid_t pid;

	if (geteuid() != 0)
		skip();
	(void)snprintf(root, sizeof(root), "%s/root", tmpdir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(mounts_child(root));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77) {
		fprintf(stderr, "test_statefs: no mount namespace, mounts_early skipped\n");
		skip();
	}
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_parse),
		cmocka_unit_test(test_probe_file),
		cmocka_unit_test(test_find_timeout),
		cmocka_unit_test(test_find_loop),
		cmocka_unit_test(test_find_partuuid),
		cmocka_unit_test(test_mounts_early),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
