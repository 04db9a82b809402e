/* State filesystem lookup. We scan /proc/partitions and probe each device
 * ourselves rather than use the blkid cache: there is no udev (so no
 * /dev/disk/by-*), and the same probe function is then what the unit tests
 * exercise on an image file. */
#include "pid1/statefs.h"
#include "pid1/watchdog.h"
#include "pid1/loop.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>

#include <blkid/blkid.h>

#define STATEFS_STEP_MS 50

int statefs_spec_parse(const char *spec, enum statefs_key *ret_key, const char **ret_value)
{
	static const struct { const char *prefix; enum statefs_key key; } t[] = {
		{ "LABEL=", STATEFS_LABEL }, { "UUID=", STATEFS_UUID },
		{ "PARTLABEL=", STATEFS_PARTLABEL }, { "PARTUUID=", STATEFS_PARTUUID },
	};
	const char *v = NULL;
	enum statefs_key key = STATEFS_PATH;

	if (!spec)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t n = strlen(t[i].prefix);
		if (strncmp(spec, t[i].prefix, n) == 0) {
			key = t[i].key;
			v = spec + n;
			break;
		}
	}
	if (!v) {
		if (strncmp(spec, "/dev/", 5) != 0 || !spec[5])
			return -EINVAL;
		v = spec;
	}
	if (!*v || strlen(v) >= 256)
		return -EINVAL;
	*ret_key = key;
	*ret_value = v;
	return 0;
}

static void lookup(blkid_probe pr, const char *name, char *dst, size_t size)
{
	const char *v = NULL;

	if (blkid_probe_lookup_value(pr, name, &v, NULL) == 0 && v)
		(void)snprintf(dst, size, "%s", v);
}

int statefs_probe_file(const char *path, struct statefs_info *ret)
{
	struct statefs_info info;
	blkid_probe pr;
	int r;

	memset(&info, 0, sizeof(info));
	errno = 0;
	pr = blkid_new_probe_from_filename(path);
	if (!pr)
		return errno ? -errno : -ENOMEM;
	(void)blkid_probe_enable_superblocks(pr, 1);
	(void)blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID |
						    BLKID_SUBLKS_TYPE);
	/* PART_ENTRY_* come from the parent disk's table, for PARTLABEL/PARTUUID. */
	(void)blkid_probe_enable_partitions(pr, 1);
	(void)blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
	r = blkid_do_safeprobe(pr);
	if (r == 0) {
		lookup(pr, "TYPE", info.type, sizeof(info.type));
		lookup(pr, "LABEL", info.label, sizeof(info.label));
		lookup(pr, "UUID", info.uuid, sizeof(info.uuid));
		lookup(pr, "PART_ENTRY_NAME", info.partlabel, sizeof(info.partlabel));
		lookup(pr, "PART_ENTRY_UUID", info.partuuid, sizeof(info.partuuid));
	}
	blkid_free_probe(pr);
	*ret = info;
	if (r < 0)
		return -EIO;
	return info.type[0] ? 0 : -ENODATA;
}

static int info_matches(const struct statefs_info *i, enum statefs_key key, const char *v)
{
	switch (key) {
	case STATEFS_LABEL: return strcmp(i->label, v) == 0;
	/* blkid prints UUIDs in lower case; people may type them in upper. */
	case STATEFS_UUID: return strcasecmp(i->uuid, v) == 0;
	case STATEFS_PARTLABEL: return strcmp(i->partlabel, v) == 0;
	case STATEFS_PARTUUID: return strcasecmp(i->partuuid, v) == 0;
	default: return 0;
	}
}

/* One pass over /proc/partitions; 1 with DEV and *RET_INFO filled on a match. */
static int scan_once(enum statefs_key key, const char *v, char *dev, size_t dlen,
		     struct statefs_info *ret_info)
{
	char line[256], name[128];
	unsigned long long blocks;
	unsigned maj, min;
	FILE *f;
	int found = 0;

	f = fopen("/proc/partitions", "re");
	if (!f)
		return -errno;
	while (!found && fgets(line, sizeof(line), f)) {
		struct statefs_info info;

		if (sscanf(line, " %u %u %llu %127s", &maj, &min, &blocks, name) != 4)
			continue;
		/* Empty loop devices and extended-partition stubs hold nothing. */
		if (blocks <= 1)
			continue;
		if (snprintf(dev, dlen, "/dev/%s", name) >= (int)dlen)
			continue;
		memset(&info, 0, sizeof(info));
		/* Unreadable devices (no medium, gone) just do not match. */
		(void)statefs_probe_file(dev, &info);
		if (!info_matches(&info, key, v))
			continue;
		*ret_info = info;
		found = 1;
	}
	(void)fclose(f);
	return found;
}

int statefs_find(const char *spec, int timeout_ms, char *ret_dev, size_t len,
		 char *ret_fstype, size_t tlen)
{
	const struct timespec step = { 0, STATEFS_STEP_MS * 1000000L };
	uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	struct statefs_info info;
	enum statefs_key key;
	const char *v;
	char dev[4096];
	int r;

	r = statefs_spec_parse(spec, &key, &v);
	if (r < 0)
		return r;
	for (;;) {
		if (key == STATEFS_PATH) {
			struct stat st;

			r = stat(v, &st) == 0 ? 1 : 0;
			if (r) {
				(void)snprintf(dev, sizeof(dev), "%s", v);
				memset(&info, 0, sizeof(info));
				/* The type is only a hint: mount defaults to ext4. */
				(void)statefs_probe_file(dev, &info);
			}
		} else {
			r = scan_once(key, v, dev, sizeof(dev), &info);
			if (r < 0)
				return r;
		}
		if (r > 0)
			break;
		if (now_ms() >= deadline)
			return -ENOENT;
		/* Bounded: this runs once at boot, before the event loop exists. */
		(void)nanosleep(&step, NULL);
		watchdog_feed();
	}
	if (ret_dev && strlen(dev) >= len)
		return -ENAMETOOLONG;
	if (ret_fstype && strlen(info.type) >= tlen)
		return -ENAMETOOLONG;
	if (ret_dev)
		strcpy(ret_dev, dev);
	if (ret_fstype)
		strcpy(ret_fstype, info.type);
	return 0;
}

int statefs_mount(const char *dev, const char *fstype, const char *target)
{
	if (!dev || !target)
		return -EINVAL;
	if (mkdir(target, 0755) < 0 && errno != EEXIST)
		return -errno;
	if (!fstype || !*fstype)
		fstype = "ext4";
	if (mount(dev, target, fstype, MS_NOATIME | MS_NODEV | MS_NOSUID, NULL) < 0)
		return -errno;
	return 0;
}
