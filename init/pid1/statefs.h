/* The state filesystem (design.md §5): found by LABEL/UUID/PARTLABEL/
 * PARTUUID or path with libblkid, mounted at /state. */
#ifndef LUOINIT_STATEFS_H
#define LUOINIT_STATEFS_H

#include <stddef.h>

enum statefs_key { STATEFS_LABEL, STATEFS_UUID, STATEFS_PARTLABEL, STATEFS_PARTUUID, STATEFS_PATH };

/* Split SPEC ("LABEL=x", "UUID=x", "PARTLABEL=x", "PARTUUID=x" or a
 * "/dev/..." path). *RET_VALUE points into SPEC (for a path, at SPEC).
 * -EINVAL when malformed or the value is empty or too long. */
int statefs_spec_parse(const char *spec, enum statefs_key *ret_key, const char **ret_value);

/* What libblkid reads from one device or image file; "" when absent. */
struct statefs_info {
	char type[32];
	char label[256];
	char uuid[64];
	char partlabel[256];
	char partuuid[64];
};

/* Probe PATH (a block device or an image file). -errno when it cannot be
 * opened, -ENODATA when no filesystem is recognised (ret still filled
 * with whatever partition details were found). */
int statefs_probe_file(const char *path, struct statefs_info *ret);

/* Find the device SPEC names, scanning /proc/partitions and probing each
 * device, again every 50 ms until TIMEOUT_MS have passed (devices appear
 * late after module loading). RET_DEV gets the /dev path, RET_FSTYPE the
 * filesystem type ("" if unknown). -ENOENT when not found in time,
 * -EINVAL for a bad spec, -ENAMETOOLONG when a buffer is too small. */
int statefs_find(const char *spec, int timeout_ms, char *ret_dev, size_t len,
		 char *ret_fstype, size_t tlen);

/* mkdir TARGET and mount DEV there (FSTYPE NULL or "": ext4), noatime,
 * nodev, nosuid. 0 or negative errno. */
int statefs_mount(const char *dev, const char *fstype, const char *target);

#endif
