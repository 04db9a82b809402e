/* Boot assessment (README, "Boot assessment"): once every VM that should
 * run is running, the running firmware's boot entry on the EFI system
 * partition is marked good; after a live update into a firmware that has
 * no entry yet, its entry is first installed on trial (the image copied to
 * the ESP), so that a cold boot starts what runs now. PID 1 only. The ESP
 * stays mounted read-only except while an entry is written: a power cut
 * never finds it mounted dirty. */
#include "supervisor/sup.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pid1/bootparams.h"
#include "pid1/cmdline.h"
#include "pid1/log.h"
#include "pid1/statefs.h"
#include "update/bootentry.h"
#include "update/fwpush.h"
#include "vm/vm.h"

#define ESP_DIR     "/efi"
#define EFIVARS_DIR "/sys/firmware/efi/efivars"
/* systemd-boot's vendor GUID (the Boot Loader Interface). */
#define LOADER_GUID "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

static struct {
	bool esp;                        /* mounted at ESP_DIR */
	bool done;                       /* assessed in this boot */
	char device[300];
	char selected[BOOTENTRY_NAME];   /* LoaderEntrySelected, "" */
	char failed[FWIMAGE_VERSION_MAX + 1]; /* a live update into it never came back */
	bool attempt;                    /* this boot is such an update: clear its record */
	char result[512];                /* what the assessment did */
	char error[512];
} A;

/* A UTF-16LE EFI variable of systemd-boot's, as ASCII; "" when absent. */
static void loader_var(const char *name, char *out, size_t len)
{
	char path[256];
	unsigned char buf[4 + 2 * BOOTENTRY_NAME];
	ssize_t n;
	size_t o = 0;
	int fd;

	out[0] = '\0';
	snprintf(path, sizeof(path), EFIVARS_DIR "/%s-" LOADER_GUID, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	/* 4 bytes of attributes, then the string. */
	for (ssize_t i = 4; i + 1 < n && o + 1 < len; i += 2) {
		if (!buf[i] && !buf[i + 1])
			break;
		out[o++] = buf[i + 1] || buf[i] < 0x20 || buf[i] > 0x7e ? '?' : (char)buf[i];
	}
	out[o] = '\0';
}

static int esp_remount(bool rw)
{
	if (mount(NULL, ESP_DIR, NULL, MS_REMOUNT | MS_NODEV | MS_NOSUID | MS_NOEXEC | (rw ? 0 : MS_RDONLY),
		  NULL) < 0)
		return log_errno(LOG_ERR, errno, "%s: remount %s", ESP_DIR, rw ? "rw" : "ro");
	return 0;
}

/* The record of a live update into a firmware (update/bootentry.h): this
 * boot is that update, or it is a cold boot after one that never came back
 * (the firmware hung or crashed and the watchdog reset the machine). */
static void read_attempt(const struct sup *s)
{
	char v[FWIMAGE_VERSION_MAX + 1];

	if (!s->o.state_mounted || bootentry_attempt_read(s->o.state_dir, v, sizeof(v)) < 0)
		return;
	/* Not kexec_ms: a cold boot reads the old manifest on /state too. */
	if (bootparams_by_kexec()) {
		A.attempt = true;
		return;
	}
	snprintf(A.failed, sizeof(A.failed), "%s", v);
	log_warn("boot assessment: the live update into firmware %s never came back: this is a cold boot "
		 "after it (its VMs start afresh)", v);
	(void)bootentry_attempt_clear(s->o.state_dir);
}

void sup_assess_start(struct sup *s)
{
	char fstype[32];
	int r;

	if (!s->o.pid1)
		return;
	read_attempt(s);
	if (access("/sys/firmware/efi", F_OK) == 0) {
		(void)mkdir(EFIVARS_DIR, 0755);
		if (mount("efivarfs", EFIVARS_DIR, "efivarfs", MS_NODEV | MS_NOSUID | MS_NOEXEC | MS_RDONLY, NULL) < 0 &&
		    errno != EBUSY)
			log_errno(LOG_WARN, errno, "efivarfs on %s", EFIVARS_DIR);
		loader_var("LoaderEntrySelected", A.selected, sizeof(A.selected));
	}
	/* The devices were probed for /state already: one look. */
	r = statefs_find(s->o.esp_spec, 100, A.device, sizeof(A.device), fstype, sizeof(fstype));
	if (r < 0) {
		log_info("boot assessment: no EFI system partition (%s): off", s->o.esp_spec);
		A.device[0] = '\0';
		return;
	}
	(void)mkdir(ESP_DIR, 0755);
	if (mount(A.device, ESP_DIR, "vfat", MS_NODEV | MS_NOSUID | MS_NOEXEC | MS_RDONLY, "") < 0) {
		snprintf(A.error, sizeof(A.error), "mounting %s (%s) on %s: %s", A.device, s->o.esp_spec, ESP_DIR,
			 strerror(errno));
		log_warn("boot assessment: %s", A.error);
		return;
	}
	A.esp = true;
	log_info("boot assessment: EFI system partition %s on %s%s%s", A.device, ESP_DIR,
		 A.selected[0] ? ", systemd-boot started " : "", A.selected);
}

/* Every VM that should run is running: the configuration accepted, and
 * each VM running but those the operator stopped (held back since before
 * the update, or stopped since). A VM that failed to start counts against
 * it. Called from the loop, after every VM was started. */
static bool all_running(const struct sup *s)
{
	if (!s->conf)
		return false;
	for (size_t i = 0; i < s->n_vms; i++) {
		const struct vm *vm = s->vms[i];
		if (vm_held(vm) || (vm_state(vm) == VM_STOPPED && !vm_wanted(vm)))
			continue;
		if (vm_state(vm) != VM_RUNNING)
			return false;
	}
	return true;
}

/* What a new entry for image boots with: what this boot added to the
 * firmware's own command line when the image has one built in (its note
 * says), else the running kernel's whole line. */
static void entry_options(const char *image, char *out, size_t len)
{
	struct fwimage_info info;
	struct stat st;
	char why[256];
	int fd = open(image, O_RDONLY | O_CLOEXEC), r = -1;

	if (fd >= 0 && fstat(fd, &st) == 0)
		r = fwimage_inspect(fd, (uint64_t)st.st_size, &info, why, sizeof(why));
	if (fd >= 0)
		close(fd);
	if (r == 0 && info.note.cmdline[0])
		r = cmdline_read_extra(out, len);
	else
		r = cmdline_read_raw(out, len);
	if (r < 0)
		out[0] = '\0';
}

/* Entries and images the ESP no longer needs (bootentry_prune), logged. */
static void prune(const char *keep_id)
{
	char removed[8][FWIMAGE_VERSION_MAX + 1];
	int r = bootentry_prune(ESP_DIR, keep_id, removed, 8);

	for (int i = 0; i < r && i < 8; i++)
		log_info("boot assessment: removed the entry and image of %s from the ESP (keeping %s and its "
			 "fallback)", removed[i], keep_id);
}

static void assess(struct sup *s)
{
	static struct bootentry v[BOOTENTRY_MAX];
	char dir[300], running[FWIMAGE_VERSION_MAX + 1] = "", image[4400], options[4096], err[512] = "";
	const struct bootentry *e;
	struct bootentry added;
	size_t n;
	int r;

	snprintf(dir, sizeof(dir), ESP_DIR "/" BOOTENTRY_DIR);
	if (fwpush_running_version(running, sizeof(running)) < 0) {
		snprintf(A.result, sizeof(A.result), "the running kernel names no firmware version: nothing assessed");
		log_info("boot assessment: %s", A.result);
		return;
	}
	n = bootentry_scan(dir, v, BOOTENTRY_MAX);
	e = bootentry_running(v, n, A.selected, running);
	if (e && e->tries_left < 0) {
		snprintf(A.result, sizeof(A.result), "%s was good already", e->id);
		log_info("boot assessment: every VM runs; %s", A.result);
		return;
	}
	if (esp_remount(true) < 0) {
		snprintf(A.error, sizeof(A.error), "%s could not be made writable", ESP_DIR);
		return;
	}
	if (!e) {
		/* After a live update into a firmware without an entry. */
		snprintf(image, sizeof(image), "%s/" FWIMAGE_DIR "/%s" FWIMAGE_SUFFIX, s->o.state_dir, running);
		if (access(image, R_OK) < 0) {
			snprintf(A.result, sizeof(A.result), "no boot entry for %s and no image %s to install", running,
				 image);
			log_warn("boot assessment: %s", A.result);
			(void)esp_remount(false);
			return;
		}
		/* Room for it first: what a cold boot takes now stays, and its fallback. */
		const struct bootentry *def = bootentry_default(v, n);
		if (def)
			prune(def->id);
		entry_options(image, options, sizeof(options));
		r = bootentry_install(ESP_DIR, image, running, options, BOOTENTRY_TRIES, &added, err, sizeof(err));
		if (r < 0) {
			snprintf(A.error, sizeof(A.error), "installing %s: %s", running, err);
			log_errno(LOG_ERR, r, "boot assessment: %s", A.error);
			(void)esp_remount(false);
			return;
		}
		log_info("boot assessment: installed %s on trial (%d tries), the default for a cold boot", added.file,
			 added.tries_left);
		e = &added;
	}
	r = bootentry_mark_good(dir, e);
	if (r < 0) {
		snprintf(A.error, sizeof(A.error), "marking %s good: %s", e->file, strerror(-r));
		log_errno(LOG_ERR, r, "boot assessment: %s", A.error);
	} else {
		snprintf(A.result, sizeof(A.result), "%s marked good", e->id);
		log_info("boot assessment: every VM runs; %s", A.result);
		prune(e->id);
	}
	(void)esp_remount(false);
}

void sup_assess(struct sup *s)
{
	if (A.done || !s->o.pid1 || !all_running(s))
		return;
	A.done = true;
	if (A.attempt && s->o.state_mounted) {
		(void)bootentry_attempt_clear(s->o.state_dir);
		A.attempt = false;
	}
	if (A.esp)
		assess(s);
}

int sup_assess_install(const struct sup *s, const char *version, json_object **ret, char *err, size_t errlen)
{
	static struct bootentry v[BOOTENTRY_MAX];
	char image[4400], options[4096];
	struct bootentry added;
	size_t n;
	int r;

	if (!A.esp) {
		snprintf(err, errlen, "no EFI system partition mounted (%s)%s%s", s->o.esp_spec, A.error[0] ? ": " : "",
			 A.error);
		return -ENODEV;
	}
	if (!fwimage_version_valid(version)) {
		snprintf(err, errlen, "'%.80s' is not an image version", version);
		return -EINVAL;
	}
	if (!s->o.state_mounted) {
		snprintf(err, errlen, "%s is not mounted: no stored images", s->o.state_dir);
		return -ENODEV;
	}
	snprintf(image, sizeof(image), "%s/" FWIMAGE_DIR "/%s" FWIMAGE_SUFFIX, s->o.state_dir, version);
	if (access(image, R_OK) < 0) {
		r = -errno;
		snprintf(err, errlen, "no image %s stored (%s: %s)", version, image, strerror(-r));
		return r;
	}
	/* The newest entry is the default already when it is this version. */
	n = bootentry_scan(ESP_DIR "/" BOOTENTRY_DIR, v, BOOTENTRY_MAX);
	if (n && bootentry_default(v, n) == &v[0] && strcmp(v[0].version, version) == 0) {
		snprintf(err, errlen, "%s is the default entry already (%s)", version, v[0].file);
		return -EEXIST;
	}
	entry_options(image, options, sizeof(options));
	if (esp_remount(true) < 0) {
		snprintf(err, errlen, "%s could not be made writable", ESP_DIR);
		return -EIO;
	}
	{
		char running[FWIMAGE_VERSION_MAX + 1];
		const struct bootentry *e = fwpush_running_version(running, sizeof(running)) == 0
						    ? bootentry_running(v, n, A.selected, running) : NULL;
		if (e) /* room for it: the running entry stays, and its fallback */
			prune(e->id);
	}
	r = bootentry_install(ESP_DIR, image, version, options, BOOTENTRY_TRIES, &added, err, errlen);
	(void)esp_remount(false);
	if (r < 0)
		return r;
	log_info("boot assessment: installed %s on trial (%d tries): the next cold boot starts it", added.file,
		 added.tries_left);
	*ret = json_object_new_object();
	json_object_object_add(*ret, "entry", json_object_new_string(added.file));
	json_object_object_add(*ret, "tries_left", json_object_new_int(added.tries_left));
	return 0;
}

void sup_assess_stop(void)
{
	if (A.esp && umount2(ESP_DIR, 0) < 0)
		log_errno(LOG_WARN, errno, "umount %s", ESP_DIR);
	A.esp = false;
}

static json_object *entry_json(const struct bootentry *e)
{
	json_object *o;

	if (!e)
		return NULL;
	o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_string(e->id));
	json_object_object_add(o, "file", json_object_new_string(e->file));
	json_object_object_add(o, "version", json_object_new_string(e->version));
	json_object_object_add(o, "good", json_object_new_boolean(e->tries_left < 0));
	json_object_object_add(o, "tries_left", e->tries_left < 0 ? NULL : json_object_new_int(e->tries_left));
	json_object_object_add(o, "tries_done", e->tries_left < 0 ? NULL : json_object_new_int(e->tries_done));
	return o;
}

json_object *sup_assess_json(const struct sup *s)
{
	static struct bootentry v[BOOTENTRY_MAX];
	json_object *o = json_object_new_object(), *ents = json_object_new_array(), *bad = json_object_new_array();
	char running[FWIMAGE_VERSION_MAX + 1] = "";
	const struct bootentry *run = NULL, *def = NULL;
	size_t n = 0;

	if (A.esp) {
		n = bootentry_scan(ESP_DIR "/" BOOTENTRY_DIR, v, BOOTENTRY_MAX);
		(void)fwpush_running_version(running, sizeof(running));
		run = bootentry_running(v, n, A.selected, running);
		def = bootentry_default(v, n);
	}
	json_object_object_add(o, "started_by", s->o.pid1 ? json_object_new_string(bootparams_loader_name(
								      bootparams_loader(BOOTPARAMS_DATA)))
							: NULL);
	json_object_object_add(o, "esp", A.esp ? json_object_new_string(A.device) : NULL);
	json_object_object_add(o, "selected", A.selected[0] ? json_object_new_string(A.selected) : NULL);
	json_object_object_add(o, "entry", entry_json(run));
	json_object_object_add(o, "default", def ? json_object_new_string(def->id) : NULL);
	for (size_t i = 0; i < n; i++) {
		json_object_array_add(ents, entry_json(&v[i]));
		/* Newer than the running one and out of tries: fallen back from. */
		if (v[i].tries_left == 0 && run && v[i].gen > run->gen)
			json_object_array_add(bad, json_object_new_string(v[i].id));
	}
	json_object_object_add(o, "entries", ents);
	json_object_object_add(o, "fell_back_from", bad);
	json_object_object_add(o, "failed_live_update", A.failed[0] ? json_object_new_string(A.failed) : NULL);
	json_object_object_add(o, "assessed", json_object_new_boolean(A.done));
	json_object_object_add(o, "result", A.result[0] ? json_object_new_string(A.result) : NULL);
	json_object_object_add(o, "error", A.error[0] ? json_object_new_string(A.error) : NULL);
	return o;
}
