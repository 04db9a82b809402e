/* The `status` reply (design.md §4, and the README's additions). */
#include "supervisor/sup.h"

#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "pid1/loop.h"
#include "pid1/powerbtn.h"
#include "pid1/watchdog.h"
#include "net/net.h"
#include "update/fwpush.h"

static json_object *strv_json(char **v)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; v && v[i]; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

static void add_file_string(json_object *o, const char *key, const char *path)
{
	char buf[128] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (n > 0) {
		buf[n] = 0;
		buf[strcspn(buf, "\n")] = 0;
	}
	json_object_object_add(o, key, n > 0 ? json_object_new_string(buf) : NULL);
}

/* Our own open fds, so a soak can see that nothing leaks across updates. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* not the one opendir holds */
}

/* The host's memory (/proc/meminfo), in KiB: what guests and updates use. */
static json_object *memory_json(void)
{
	static const char *const keys[] = { "MemTotal:", "MemAvailable:" };
	static const char *const names[] = { "total_kib", "available_kib" };
	json_object *o = json_object_new_object();
	char line[128];
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		return o;
	while (fgets(line, sizeof(line), f))
		for (size_t i = 0; i < 2; i++) {
			unsigned long long v;
			size_t n = strlen(keys[i]);
			if (strncmp(line, keys[i], n) == 0 && sscanf(line + n, "%llu", &v) == 1)
				json_object_object_add(o, names[i], json_object_new_int64((int64_t)v));
		}
	fclose(f);
	return o;
}

static json_object *state_json(const struct sup *s)
{
	json_object *st = json_object_new_object();

	json_object_object_add(st, "spec", s->o.state_spec ? json_object_new_string(s->o.state_spec) : NULL);
	json_object_object_add(st, "device", s->o.state_device ? json_object_new_string(s->o.state_device) : NULL);
	json_object_object_add(st, "mounted", json_object_new_boolean(s->o.state_mounted));
	json_object_object_add(st, "path", json_object_new_string(s->o.state_dir));
	{
		/* A full /state holds up nothing (logs drop, updates refuse or
		 * take LUO): the operator learns it here. */
		struct statvfs v;
		if ((s->o.state_mounted || !s->o.pid1) && statvfs(s->o.state_dir, &v) == 0) {
			uint64_t total = (uint64_t)v.f_blocks * v.f_frsize, avail = (uint64_t)v.f_bavail * v.f_frsize;
			json_object_object_add(st, "total_bytes", json_object_new_int64((int64_t)total));
			json_object_object_add(st, "free_bytes", json_object_new_int64((int64_t)avail));
			json_object_object_add(st, "full", json_object_new_boolean(avail < total / 100 + (16u << 20)));
		}
	}
	return st;
}

static json_object *config_json(const struct sup *s)
{
	json_object *c = json_object_new_object(), *errs = json_object_new_array();

	json_object_object_add(c, "path", json_object_new_string(s->o.config_path));
	json_object_object_add(c, "ok", json_object_new_boolean(s->conf != NULL));
	for (size_t i = 0; i < s->errs.n; i++) {
		char *m = vmconf_error_format(&s->errs.v[i]);
		if (m)
			json_object_array_add(errs, json_object_new_string(m));
		free(m);
	}
	json_object_object_add(c, "errors", errs);
	json_object_object_add(c, "error", s->config_error[0] ? json_object_new_string(s->config_error) : NULL);
	return c;
}

/* The hardware watchdog: which, its timeout (s) and when it was last fed
 * (CLOCK_REALTIME seconds, and milliseconds ago); nulls when not armed, with
 * the reason in error. */
static json_object *watchdog_json(const struct sup *s)
{
	const struct watchdog_status *w = watchdog_status();
	json_object *o = json_object_new_object();
	bool on = watchdog_armed();

	json_object_object_add(o, "device", on ? json_object_new_string(w->device) : NULL);
	json_object_object_add(o, "identity", on && w->identity[0] ? json_object_new_string(w->identity) : NULL);
	json_object_object_add(o, "timeout", on ? json_object_new_int((int)w->timeout) : NULL);
	json_object_object_add(o, "last_feed", on && w->feeds ? json_object_new_double(w->last_feed / 1000.0) : NULL);
	json_object_object_add(o, "since_feed_ms",
			       on && w->feeds ? json_object_new_int64((int64_t)(now_ms() - w->last_feed_mono)) : NULL);
	json_object_object_add(o, "feeds", json_object_new_int64((int64_t)w->feeds));
	json_object_object_add(o, "reset_by_watchdog", json_object_new_boolean(w->reset_by_watchdog));
	json_object_object_add(o, "error", !s->o.pid1 ? json_object_new_string("off in --host mode")
					   : w->error[0] ? json_object_new_string(w->error) : NULL);
	return o;
}

/* The input devices watched for KEY_POWER. */
static json_object *power_button_json(void)
{
	json_object *a = json_object_new_array();
	size_t n;
	const struct powerbtn_dev *d = powerbtn_devices(&n);

	for (size_t i = 0; i < n; i++) {
		json_object *o;
		if (d[i].fd < 0)
			continue;
		o = json_object_new_object();
		json_object_object_add(o, "path", json_object_new_string(d[i].path));
		json_object_object_add(o, "name", json_object_new_string(d[i].name));
		json_object_array_add(a, o);
	}
	return a;
}

json_object *sup_status(const struct sup *s)
{
	json_object *o = json_object_new_object(), *vms = json_object_new_array();
	struct utsname u;

	add_file_string(o, "boot_id", "/proc/sys/kernel/random/boot_id");
	json_object_object_add(o, "kernel", uname(&u) == 0 ? json_object_new_string(u.release) : NULL);
	json_object_object_add(o, "luo", json_object_new_boolean(access("/dev/liveupdate", F_OK) == 0));
	json_object_object_add(o, "pid1", json_object_new_boolean(getpid() == 1));
	json_object_object_add(o, "pid", json_object_new_int(getpid()));
	json_object_object_add(o, "mode", json_object_new_string(s->o.pid1 ? "init" : "host"));
	json_object_object_add(o, "modules_loaded", strv_json(s->o.modules_loaded));
	json_object_object_add(o, "modules_failed", strv_json(s->o.modules_failed));
	json_object_object_add(o, "state", state_json(s));
	json_object_object_add(o, "config", config_json(s));
	json_object_object_add(o, "open_fds", json_object_new_int(count_fds()));
	json_object_object_add(o, "memory", memory_json());
	json_object_object_add(o, "thp_shmem", s->o.thp_shmem ? json_object_new_string(s->o.thp_shmem) : NULL);
	json_object_object_add(o, "kexec_ms", s->kexec_ms > 0 ? json_object_new_double(s->kexec_ms) : NULL);
	json_object_object_add(o, "resume_manifest",
			       s->resume_manifest ? json_object_new_string(s->resume_manifest) : NULL);
	json_object_object_add(o, "last_update_error",
			       s->update_error[0] ? json_object_new_string(s->update_error) : NULL);
	json_object_object_add(o, "sandbox", json_object_new_boolean(s->host.sandbox));
	json_object_object_add(o, "watchdog", watchdog_json(s));
	json_object_object_add(o, "power_button", power_button_json());
	json_object_object_add(o, "fdset_probe", s->fdset_probe < 0 ? NULL : json_object_new_boolean(s->fdset_probe == 1));
	json_object_object_add(o, "network", net_status_json());
	{
		json_object *fw = fwpush_status_json(s->o.state_dir), *boot = sup_assess_json(s), *def = NULL;
		json_object_object_add(fw, "boot", boot);
		/* The entry a cold boot starts (design.md's status.firmware.default). */
		if (json_object_object_get_ex(boot, "default", &def))
			def = json_object_get(def);
		json_object_object_add(fw, "default", def);
		json_object_object_add(o, "firmware", fw);
	}
	for (size_t i = 0; i < s->n_vms; i++)
		json_object_array_add(vms, vm_status_json(s->vms[i]));
	json_object_object_add(o, "vms", vms);
	return o;
}
