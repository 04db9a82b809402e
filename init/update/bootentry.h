/* Boot Loader Specification entries of the firmware images on the EFI
 * system partition (README, "Boot assessment"), as systemd-boot reads them:
 *   <esp>/loader/entries/luoinit-GGGG-VERSION[+LEFT[-DONE]].conf
 *   <esp>/EFI/luoinit/VERSION.efi
 * GGGG, a generation, orders them: systemd-boot sorts by the name (without
 * the counter) descending, so the newest generation is the default, except
 * that entries with no tries left go last. The counter is systemd-boot's
 * boot counting: it renames +LEFT-DONE to +(LEFT-1)-(DONE+1) before it
 * starts the entry; an entry is good without one. */
#ifndef LUOINIT_BOOTENTRY_H
#define LUOINIT_BOOTENTRY_H

#include <stddef.h>

#include "update/fwimage.h"

#define BOOTENTRY_DIR    "loader/entries" /* under the ESP */
#define BOOTENTRY_IMAGES "EFI/luoinit"    /* under the ESP */
#define BOOTENTRY_PREFIX "luoinit-"
#define BOOTENTRY_TRIES  3                /* of a new entry */
#define BOOTENTRY_MAX    64               /* entries looked at */
#define BOOTENTRY_NAME   (sizeof(BOOTENTRY_PREFIX) + 5 + FWIMAGE_VERSION_MAX + 32)

struct bootentry {
	char file[BOOTENTRY_NAME];  /* the file's name */
	char id[BOOTENTRY_NAME];    /* without the counter: systemd-boot's id */
	unsigned gen;
	char version[FWIMAGE_VERSION_MAX + 1];
	int tries_left;             /* -1: no counter (good); 0: bad */
	int tries_done;
};

/* One file name; -EINVAL when it is not one of ours. */
int bootentry_parse(const char *name, struct bootentry *ret);
/* The entries in dir, in systemd-boot's order; how many (at most max). */
size_t bootentry_scan(const char *dir, struct bootentry *v, size_t max);
/* The one systemd-boot boots by default: the first with tries left or
 * without a counter. NULL when none. */
const struct bootentry *bootentry_default(const struct bootentry *v, size_t n);
/* The running one: the entry systemd-boot says it started (selected_id,
 * LoaderEntrySelected: the file name as it was before the count, which
 * need not be the id) when its version is the running version (not so
 * after a kexec), else the newest entry of the running version. */
const struct bootentry *bootentry_running(const struct bootentry *v, size_t n, const char *selected_id,
					  const char *running_version);
/* Good: the counter dropped (renamed to its id), the directory synced. */
int bootentry_mark_good(const char *dir, const struct bootentry *e);
/* A new entry for image (a firmware file) of version, on trial (tries
 * left): the image copied to <esp>/EFI/luoinit/VERSION.efi and the entry
 * written with the next generation, each through a temporary file, synced
 * and renamed. options: the kernel command line. 0 with *ret, or -errno
 * with a sentence in err. */
int bootentry_install(const char *esp, const char *image, const char *version, const char *options, int tries,
		      struct bootentry *ret, char *err, size_t errlen);

/* The ESP never fills up: of the entries in <esp>/loader/entries, keep
 * keep_id's (the running or the default entry), every newer one (on trial,
 * or bad: status names those), and the newest good one older than it (the
 * fallback should keep_id's go bad); remove the others, then every image in
 * <esp>/EFI/luoinit that no kept entry names. keep_id not found: nothing is
 * removed, nor when there are more than BOOTENTRY_MAX entries. Removed
 * entries' versions go into removed (up to max); returns how many went. */
int bootentry_prune(const char *esp, const char *keep_id, char (*removed)[FWIMAGE_VERSION_MAX + 1], size_t max);

/* The live update into a firmware image under way: the old init writes
 * <state_dir>/firmware/.live-update-into (the VERSION) with the manifest;
 * the new one removes it once every guest is back. Found on a cold boot,
 * it says the update never came back: the appliance fell back. */
#define BOOTENTRY_ATTEMPT ".live-update-into"
int bootentry_attempt_write(const char *state_dir, const char *version);
/* The VERSION in it (0), -ENOENT when there is none. */
int bootentry_attempt_read(const char *state_dir, char *version, size_t len);
int bootentry_attempt_clear(const char *state_dir);

#endif
