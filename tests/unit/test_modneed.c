/* Which modules a device needs, from a fake sysfs: the block device's link
 * into devices/, each ancestor's driver/module, only loadable modules now
 * loaded (module/NAME/initstate), no duplicates, bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <cmocka.h>

#include "pid1/modneed.h"

static char root[128];

static void mkpath(const char *rel)
{
	char p[512], *s;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	for (s = p + strlen(root) + 1; (s = strchr(s, '/')); s++) {
		*s = 0;
		(void)mkdir(p, 0700);
		*s = '/';
	}
	(void)mkdir(p, 0700);
}

static void touch(const char *rel)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs("live\n", f);
	fclose(f);
}

static void link_to(const char *target, const char *rel)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	assert_int_equal(symlink(target, p), 0);
}

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/luoinit-modneed-XXXXXX");
	if (!mkdtemp(root))
		return -1;
	/* pci 00:02.0 (virtio-pci, built in) -> virtio0 (virtio_blk) -> vda -> vda1 */
	mkpath("devices/pci0000:00/0000:00:02.0/virtio0/block/vda/vda1");
	mkpath("bus/pci/drivers/virtio-pci");
	mkpath("bus/virtio/drivers/virtio_blk");
	link_to("../../../bus/pci/drivers/virtio-pci", "devices/pci0000:00/0000:00:02.0/driver");
	link_to("../../../../bus/virtio/drivers/virtio_blk", "devices/pci0000:00/0000:00:02.0/virtio0/driver");
	link_to("../../../../module/virtio_blk", "bus/virtio/drivers/virtio_blk/module");
	mkpath("module/virtio_blk");
	touch("module/virtio_blk/initstate");
	mkpath("module/kvm_amd");
	touch("module/kvm_amd/initstate");
	mkpath("module/tun"); /* built in: no initstate */
	mkpath("dev/block");
	link_to("../../devices/pci0000:00/0000:00:02.0/virtio0/block/vda", "dev/block/254:0");
	link_to("../../devices/pci0000:00/0000:00:02.0/virtio0/block/vda/vda1", "dev/block/254:1");
	return 0;
}

static int teardown(void **state)
{
	char cmd[256];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root); /* test-only cleanup of a private temp dir */
	return system(cmd) == 0 ? 0 : -1;
}

static void test_blockdev(void **state)
{
	char out[4][MODNEED_NAME];
	size_t n = 0;
	(void)state;

	modneed_blockdev(root, makedev(254, 0), out, 4, &n);
	assert_int_equal(n, 1);
	assert_string_equal(out[0], "virtio_blk");
	/* not listed twice */
	modneed_blockdev(root, makedev(254, 0), out, 4, &n);
	assert_int_equal(n, 1);
	/* a partition: found through its disk */
	n = 0;
	modneed_blockdev(root, makedev(254, 1), out, 4, &n);
	assert_int_equal(n, 1);
	assert_string_equal(out[0], "virtio_blk");
	/* no such device: nothing */
	modneed_blockdev(root, makedev(8, 0), out, 4, &n);
	assert_int_equal(n, 1);
}

static void test_add(void **state)
{
	char out[2][MODNEED_NAME];
	size_t n = 0;
	(void)state;

	modneed_add(root, "kvm_intel", out, 2, &n); /* not loaded */
	modneed_add(root, "tun", out, 2, &n);       /* built in */
	assert_int_equal(n, 0);
	modneed_add(root, "kvm_amd", out, 2, &n);
	modneed_add(root, "kvm_amd", out, 2, &n);
	assert_int_equal(n, 1);
	modneed_add(root, "virtio_blk", out, 2, &n);
	assert_int_equal(n, 2);
	modneed_add(root, "virtio_blk", out, 2, &n); /* full: bounded */
	assert_int_equal(n, 2);
	assert_string_equal(out[0], "kvm_amd");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_blockdev, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
