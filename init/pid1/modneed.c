/* sysfs: /sys/dev/block/MAJ:MIN is a link into /sys/devices; each device on
 * the way up names its driver, and a modular driver its module
 * (driver/module -> /sys/module/NAME). sysfs is a parameter for the tests. */
#include "pid1/modneed.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

void modneed_add(const char *sysfs, const char *name, char (*out)[MODNEED_NAME], size_t max, size_t *n)
{
	char path[PATH_MAX];
	struct stat st;

	if (strlen(name) >= MODNEED_NAME || *n >= max)
		return;
	for (size_t i = 0; i < *n; i++)
		if (strcmp(out[i], name) == 0)
			return;
	/* initstate exists only for loadable modules. */
	snprintf(path, sizeof(path), "%s/module/%s/initstate", sysfs, name);
	if (stat(path, &st) < 0)
		return;
	snprintf(out[(*n)++], MODNEED_NAME, "%s", name);
}

void modneed_blockdev(const char *sysfs, dev_t rdev, char (*out)[MODNEED_NAME], size_t max, size_t *n)
{
	char link[PATH_MAX], dev[PATH_MAX], mod[PATH_MAX + 32], target[PATH_MAX];
	char *slash;

	snprintf(link, sizeof(link), "%s/dev/block/%u:%u", sysfs, major(rdev), minor(rdev));
	if (!realpath(link, dev))
		return;
	/* Up to /sys/devices: every device with a modular driver. */
	while (strlen(dev) > strlen(sysfs) + strlen("/devices")) {
		ssize_t len;
		snprintf(mod, sizeof(mod), "%s/driver/module", dev);
		len = readlink(mod, target, sizeof(target) - 1);
		if (len > 0) {
			target[len] = 0;
			slash = strrchr(target, '/');
			modneed_add(sysfs, slash ? slash + 1 : target, out, max, n);
		}
		slash = strrchr(dev, '/');
		if (!slash)
			break;
		*slash = 0;
	}
}
