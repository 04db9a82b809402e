/* The update manifest. Corrupt or foreign manifests are refused field by
 * field: restoring the wrong state onto RAM would crash the guest. */
#include "update/handoff.h"
#include "pid1/errtext.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>


#include "pid1/fsync_dir.h"
#include "pid1/log.h"

uint64_t handoff_new_generation(void)
{
	uint64_t g = 0;

	if (getrandom(&g, sizeof(g), GRND_NONBLOCK) != (ssize_t)sizeof(g)) {
		struct timespec ts;
		(void)clock_gettime(CLOCK_REALTIME, &ts);
		g = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16);
	}
	/* Even, and never 0 or all-ones, so generation + 1 is a distinct token. */
	g &= ~(uint64_t)1;
	return g ? g : 2;
}

static void add_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

static json_object *fileid_json(const struct fileid *f)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ino", json_object_new_int64((int64_t)(f->ino >> 1)));
	json_object_object_add(o, "ino_low", json_object_new_int((int)(f->ino & 1)));
	json_object_object_add(o, "blockdev", json_object_new_boolean(f->blockdev));
	if (f->has_birth) {
		json_object_object_add(o, "birth_sec", json_object_new_int64(f->birth_sec));
		json_object_object_add(o, "birth_nsec", json_object_new_int64(f->birth_nsec));
	}
	return o;
}

int handoff_vm_save_machine(struct handoff_vm *m, const struct vmconf_vm *conf, char *err, size_t errlen)
{
	struct vmconf_errors errs = { 0 };
	json_object *o = vmconf_vm_to_json(conf);
	int r;

	if (!o) {
		snprintf(err, errlen, "%s: out of memory", conf->name);
		return -ENOMEM;
	}
	vmconf_free(m->saved);
	m->saved = NULL;
	r = vmconf_vm_from_json(o, &m->saved, &errs);
	json_object_put(o);
	if (r < 0) {
		char *e = errs.n ? vmconf_error_format(&errs.v[0]) : NULL;
		snprintf(err, errlen, "%s: its config does not round-trip: %s", conf->name, e ? e : strerror(-r));
		free(e);
		vmconf_errors_clear(&errs);
		return r;
	}
	for (size_t k = 0; k < conf->n_disks; k++) {
		r = fileid_get(conf->disks[k].path, &m->disk_id[k]);
		if (r < 0) {
			snprintf(err, errlen, "%s: disks[%zu] %s: %s", conf->name, k, conf->disks[k].path, strerror(-r));
			return r;
		}
	}
	return 0;
}

static enum vmconf_accel accel_named(const char *s)
{
	return strcmp(s, "kvm") == 0 ? VMCONF_ACCEL_KVM : strcmp(s, "tcg") == 0 ? VMCONF_ACCEL_TCG : VMCONF_ACCEL_AUTO;
}

static enum vmconf_ram ram_named(const char *s)
{
	return strcmp(s, "fdset") == 0 ? VMCONF_RAM_FDSET : strcmp(s, "procfd") == 0 ? VMCONF_RAM_PROCFD : VMCONF_RAM_AUTO;
}

int handoff_vm_disks_check(const struct handoff_vm *m, char *err, size_t errlen)
{
	const struct vmconf_vm *c;
	int r;

	if (!m->saved) {
		snprintf(err, errlen, "%s: the manifest has no saved machine", m->name);
		return -EINVAL;
	}
	c = &m->saved->vms[0];
	for (size_t k = 0; k < c->n_disks; k++) {
		struct fileid cur;
		const char *why;
		r = fileid_get(c->disks[k].path, &cur);
		if (r < 0) {
			snprintf(err, errlen, "disks[%zu] %s: %s", k, c->disks[k].path, strerror(-r));
			return r;
		}
		if ((why = fileid_mismatch(&m->disk_id[k], &cur))) {
			snprintf(err, errlen, "disks[%zu] %s is %s than the guest was saved with", k, c->disks[k].path,
				 why);
			return -ESTALE;
		}
	}
	return 0;
}

int handoff_vm_machine(const struct handoff_vm *m, struct vmconf **ret, char *err, size_t errlen)
{
	int r;

	*ret = NULL;
	r = handoff_vm_disks_check(m, err, errlen);
	return r < 0 ? r : handoff_vm_machine_early(m, ret, err, errlen);
}

int handoff_vm_machine_early(const struct handoff_vm *m, struct vmconf **ret, char *err, size_t errlen)
{
	struct vmconf_errors errs = { 0 };
	struct vmconf_vm *c;
	json_object *o;
	int r;

	*ret = NULL;
	if (!m->saved) {
		snprintf(err, errlen, "%s: the manifest has no saved machine", m->name);
		return -EINVAL;
	}
	c = &m->saved->vms[0];
	if (access(c->qemu, X_OK) < 0) {
		r = -errno;
		snprintf(err, errlen, "qemu %s: %s", c->qemu, strerror(errno));
		return r;
	}
	/* A copy with what QEMU resolved at the start: a newer QEMU may point
	 * the q35 alias at another machine type; the saved guest needs its own. */
	o = vmconf_vm_to_json(c);
	if (!o)
		return -ENOMEM;
	json_object_object_add(o, "machine", json_object_new_string(m->machine));
	json_object_object_add(o, "cpu", json_object_new_string(m->cpu));
	r = vmconf_vm_from_json(o, ret, &errs);
	json_object_put(o);
	if (r < 0) {
		char *e = errs.n ? vmconf_error_format(&errs.v[0]) : NULL;
		snprintf(err, errlen, "the saved machine is not valid: %s", e ? e : strerror(-r));
		free(e);
		vmconf_errors_clear(&errs);
		return r;
	}
	(*ret)->vms[0].accel = accel_named(m->accel);
	(*ret)->vms[0].ram_backing = ram_named(m->ram_backing);
	return 0;
}

void handoff_free(struct handoff *h)
{
	for (size_t i = 0; i < HANDOFF_MAX_VMS; i++) {
		vmconf_free(h->vms[i].saved);
		h->vms[i].saved = NULL;
	}
}

char *handoff_text(const struct handoff *h)
{
	char gen[24], *text;
	json_object *o = json_object_new_object(), *vms = json_object_new_array();

	snprintf(gen, sizeof(gen), "%016" PRIx64, h->generation);
	json_object_object_add(o, "version", json_object_new_int(HANDOFF_VERSION));
	add_str(o, "generation", gen);
	add_str(o, "mode", h->mode);
	add_str(o, "old_kernel", h->old_kernel);
	json_object_object_add(o, "kexec_at_ms", json_object_new_double(h->kexec_at));
	json_object_object_add(o, "kexec_tsc", json_object_new_int64((int64_t)(h->kexec_tsc >> 1)));
	json_object_object_add(o, "tsc_hz", json_object_new_double(h->tsc_hz));
	json_object_object_add(o, "sandbox", json_object_new_boolean(h->sandbox));
	for (size_t i = 0; i < h->n_vms; i++) {
		const struct handoff_vm *v = &h->vms[i];
		json_object *j = json_object_new_object();
		add_str(j, "name", v->name);
		json_object_object_add(j, "memory_mib", json_object_new_int64(v->memory_mib));
		add_str(j, "machine", v->machine);
		add_str(j, "cpu", v->cpu);
		add_str(j, "accel", v->accel);
		add_str(j, "ram_backing", v->ram_backing);
		add_str(j, "qemu_version", v->qemu_version);
		json_object_object_add(j, "ram_size", json_object_new_int64(v->ram_size));
		json_object_object_add(j, "vmstate_bytes", json_object_new_int64(v->vmstate_bytes));
		add_str(j, "vmstate_file", v->vmstate_file);
		json_object_object_add(j, "ram_transferred", json_object_new_int64(v->ram_transferred));
		json_object_object_add(j, "stopped_at_ms", json_object_new_double(v->stopped_at));
		json_object_object_add(j, "save_ms", json_object_new_double(v->save_ms));
		if (v->saved) {
			const struct vmconf_vm *c = &v->saved->vms[0];
			json_object *ids = json_object_new_array();
			json_object_object_add(j, "saved", vmconf_vm_to_json(c));
			for (size_t k = 0; k < c->n_disks; k++)
				json_object_array_add(ids, fileid_json(&v->disk_id[k]));
			json_object_object_add(j, "disk_ids", ids);
		}
		json_object_array_add(vms, j);
	}
	json_object_object_add(o, "vms", vms);
	{
		json_object *held = json_object_new_array();
		for (size_t i = 0; i < h->n_held; i++)
			json_object_array_add(held, json_object_new_string(h->held[i]));
		json_object_object_add(o, "held", held);
	}
	if (h->n_modules) {
		json_object *mods = json_object_new_array();
		for (size_t i = 0; i < h->n_modules; i++)
			json_object_array_add(mods, json_object_new_string(h->modules[i]));
		json_object_object_add(o, "restore_modules", mods);
	}
	if (h->test_fault[0])
		add_str(o, "test_fault", h->test_fault);
	text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
	json_object_put(o);
	return text;
}

int handoff_write(const char *dir, const struct handoff *h)
{
	char path[512];
	char *text = handoff_text(h);
	int r;

	if (!text)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/%s", dir, HANDOFF_FILE);
	r = file_replace(path, text, strlen(text));
	if (r == 0)
		r = fsync_dir(dir);
	free(text);
	return r;
}

static int get_str(json_object *o, const char *k, char *buf, size_t len, const char *where, char *err, size_t errlen)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
		return errtext(err, errlen, "%s%s: expected a string", where, k);
	if ((size_t)json_object_get_string_len(v) >= len)
		return errtext(err, errlen, "%s%s: longer than %zu bytes", where, k, len - 1);
	memcpy(buf, json_object_get_string(v), (size_t)json_object_get_string_len(v) + 1);
	return 0;
}

static int get_num(json_object *o, const char *k, double *ret, const char *where, char *err, size_t errlen)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) ||
	    !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
		return errtext(err, errlen, "%s%s: expected a number", where, k);
	*ret = json_object_get_double(v);
	return 0;
}

static int get_i64(json_object *o, const char *k, int64_t *ret, const char *where, char *err, size_t errlen)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0)
		return errtext(err, errlen, "%s%s: expected a non-negative integer", where, k);
	*ret = json_object_get_int64(v);
	return 0;
}

static int parse_fileid(json_object *o, struct fileid *f, const char *where, char *err, size_t errlen)
{
	json_object *v;
	int64_t ino = 0, low = 0, sec = 0, nsec = 0;

	if (!json_object_is_type(o, json_type_object) || get_i64(o, "ino", &ino, where, err, errlen) < 0 ||
	    get_i64(o, "ino_low", &low, where, err, errlen) < 0)
		return errtext(err, errlen, "%s: expected a file identity", where);
	if (!json_object_object_get_ex(o, "blockdev", &v) || !json_object_is_type(v, json_type_boolean))
		return errtext(err, errlen, "%sblockdev: expected true or false", where);
	f->blockdev = json_object_get_boolean(v);
	f->ino = ((uint64_t)ino << 1) | (uint64_t)(low & 1);
	if (json_object_object_get_ex(o, "birth_sec", &v)) {
		if (get_i64(o, "birth_sec", &sec, where, err, errlen) < 0 ||
		    get_i64(o, "birth_nsec", &nsec, where, err, errlen) < 0 || nsec >= 1000000000)
			return errtext(err, errlen, "%sbirth: expected seconds and nanoseconds", where);
		f->has_birth = true;
		f->birth_sec = sec;
		f->birth_nsec = (uint32_t)nsec;
	}
	return 0;
}

/* Version 2: the VM's saved config (through the config's own validator) and
 * one identity per disk. */
static int parse_machine(json_object *j, struct handoff_vm *m, const char *where, char *err, size_t errlen)
{
	struct vmconf_errors errs = { 0 };
	json_object *saved, *ids;
	int r;

	if (!json_object_object_get_ex(j, "saved", &saved) || !json_object_is_type(saved, json_type_object))
		return errtext(err, errlen, "%ssaved: expected the VM's config", where);
	r = vmconf_vm_from_json(saved, &m->saved, &errs);
	if (r < 0) {
		char *e = errs.n ? vmconf_error_format(&errs.v[0]) : NULL;
		errtext(err, errlen, "%ssaved: %s", where, e ? e : strerror(-r));
		free(e);
		vmconf_errors_clear(&errs);
		return -EINVAL;
	}
	if (strcmp(m->saved->vms[0].name, m->name) != 0 || m->saved->vms[0].memory_mib != m->memory_mib)
		return errtext(err, errlen, "%ssaved: another VM's config (%s, %u MiB)", where, m->saved->vms[0].name,
			   m->saved->vms[0].memory_mib);
	if (!json_object_object_get_ex(j, "disk_ids", &ids) || !json_object_is_type(ids, json_type_array) ||
	    json_object_array_length(ids) != m->saved->vms[0].n_disks)
		return errtext(err, errlen, "%sdisk_ids: expected one identity per disk", where);
	for (size_t k = 0; k < m->saved->vms[0].n_disks; k++) {
		char w[48];
		snprintf(w, sizeof(w), "%sdisk_ids[%zu].", where, k);
		if (parse_fileid(json_object_array_get_idx(ids, k), &m->disk_id[k], w, err, errlen) < 0)
			return -EINVAL;
	}
	return 0;
}

/* An optional array of at most max names ([A-Za-z0-9_-], each shorter than
 * size) into the rows of size bytes at out. */
static int get_names(json_object *o, const char *k, char *out, size_t size, size_t max, size_t *n, char *err,
		     size_t errlen)
{
	json_object *v;

	*n = 0;
	if (!json_object_object_get_ex(o, k, &v))
		return 0;
	if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) > max)
		return errtext(err, errlen, "%s: expected an array of at most %zu names", k, max);
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		json_object *j = json_object_array_get_idx(v, i);
		const char *s = json_object_get_string(j);
		size_t len = (size_t)json_object_get_string_len(j);
		if (!json_object_is_type(j, json_type_string) || len == 0 || len >= size ||
		    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != len)
			return errtext(err, errlen, "%s[%zu]: expected a name", k, i);
		memcpy(out + *n * size, s, len + 1);
		(*n)++;
	}
	return 0;
}

static int parse(json_object *o, struct handoff *h, char *err, size_t errlen)
{
	json_object *v, *vms;
	char gen[24], *end;
	int64_t i64 = 0;

	if (!json_object_is_type(o, json_type_object))
		return errtext(err, errlen, "not a JSON object");
	if (!json_object_object_get_ex(o, "version", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int(v) < 1)
		return errtext(err, errlen, "version: expected an integer from 1");
	h->version = json_object_get_int(v);
	if (h->version > HANDOFF_VERSION) {
		snprintf(err, errlen, "manifest version %d is newer than this luoinit understands (1 to %d)",
			 h->version, HANDOFF_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (get_str(o, "generation", gen, sizeof(gen), "", err, errlen) < 0)
		return -EINVAL;
	errno = 0;
	h->generation = strtoull(gen, &end, 16);
	if (errno || *end || strlen(gen) != 16)
		return errtext(err, errlen, "generation: expected 16 hex digits, got \"%s\"", gen);
	if (get_str(o, "mode", h->mode, sizeof(h->mode), "", err, errlen) < 0 ||
	    get_str(o, "old_kernel", h->old_kernel, sizeof(h->old_kernel), "", err, errlen) < 0 ||
	    get_num(o, "kexec_at_ms", &h->kexec_at, "", err, errlen) < 0 ||
	    get_num(o, "tsc_hz", &h->tsc_hz, "", err, errlen) < 0)
		return -EINVAL;
	{
		int64_t t = 0;
		/* Stored halved: JSON integers here are signed 64-bit. */
		if (get_i64(o, "kexec_tsc", &t, "", err, errlen) < 0)
			return -EINVAL;
		h->kexec_tsc = (uint64_t)t << 1;
	}
	if (!json_object_object_get_ex(o, "sandbox", &v) || !json_object_is_type(v, json_type_boolean))
		return errtext(err, errlen, "sandbox: expected true or false");
	h->sandbox = json_object_get_boolean(v);
	if (strcmp(h->mode, "luo") != 0 && strcmp(h->mode, "full-ram") != 0)
		return errtext(err, errlen, "mode: expected \"luo\" or \"full-ram\", got \"%s\"", h->mode);
	if (!json_object_object_get_ex(o, "vms", &vms) || !json_object_is_type(vms, json_type_array) ||
	    json_object_array_length(vms) > HANDOFF_MAX_VMS)
		return errtext(err, errlen, "vms: expected an array of at most %d VMs", HANDOFF_MAX_VMS);
	h->n_vms = json_object_array_length(vms);
	for (size_t i = 0; i < h->n_vms; i++) {
		json_object *j = json_object_array_get_idx(vms, i);
		struct handoff_vm *m = &h->vms[i];
		char where[32];
		snprintf(where, sizeof(where), "vms[%zu].", i);
		if (!json_object_is_type(j, json_type_object))
			return errtext(err, errlen, "vms[%zu]: expected an object", i);
		if (get_str(j, "name", m->name, sizeof(m->name), where, err, errlen) < 0 ||
		    get_str(j, "machine", m->machine, sizeof(m->machine), where, err, errlen) < 0 ||
		    get_str(j, "cpu", m->cpu, sizeof(m->cpu), where, err, errlen) < 0 ||
		    get_str(j, "accel", m->accel, sizeof(m->accel), where, err, errlen) < 0 ||
		    get_str(j, "ram_backing", m->ram_backing, sizeof(m->ram_backing), where, err, errlen) < 0 ||
		    get_str(j, "qemu_version", m->qemu_version, sizeof(m->qemu_version), where, err, errlen) < 0 ||
		    get_str(j, "vmstate_file", m->vmstate_file, sizeof(m->vmstate_file), where, err, errlen) < 0 ||
		    get_i64(j, "memory_mib", &i64, where, err, errlen) < 0 ||
		    get_i64(j, "ram_size", &m->ram_size, where, err, errlen) < 0 ||
		    get_i64(j, "vmstate_bytes", &m->vmstate_bytes, where, err, errlen) < 0 ||
		    get_i64(j, "ram_transferred", &m->ram_transferred, where, err, errlen) < 0 ||
		    get_num(j, "stopped_at_ms", &m->stopped_at, where, err, errlen) < 0 ||
		    get_num(j, "save_ms", &m->save_ms, where, err, errlen) < 0)
			return -EINVAL;
		if (i64 < 16 || i64 > 1048576 || m->ram_size != i64 << 20)
			return errtext(err, errlen, "%smemory_mib/ram_size: inconsistent (%lld MiB, %lld bytes)", where,
				   (long long)i64, (long long)m->ram_size);
		m->memory_mib = (uint32_t)i64;
		if (h->version >= 2 && parse_machine(j, m, where, err, errlen) < 0)
			return -EINVAL;
	}
	/* "held", "restore_modules" and "test_fault" came later: optional. */
	h->n_held = 0;
	if (get_names(o, "held", h->held[0], sizeof(h->held[0]), HANDOFF_MAX_VMS, &h->n_held, err, errlen) < 0)
		return -EINVAL;
	h->n_modules = 0;
	if (get_names(o, "restore_modules", h->modules[0], sizeof(h->modules[0]), HANDOFF_MAX_MODULES, &h->n_modules,
		      err, errlen) < 0)
		return -EINVAL;
	h->test_fault[0] = 0;
	if (json_object_object_get_ex(o, "test_fault", &v) &&
	    get_str(o, "test_fault", h->test_fault, sizeof(h->test_fault), "", err, errlen) < 0)
		return -EINVAL;
	return 0;
}

/* parse, and o is released either way. */
static int parse_owned(json_object *o, struct handoff *ret, char *err, size_t errlen)
{
	int r;

	memset(ret, 0, sizeof(*ret));
	r = parse(o, ret, err, errlen);
	json_object_put(o);
	if (r < 0)
		handoff_free(ret);
	return r;
}

int handoff_read(const char *dir, struct handoff *ret, char *err, size_t errlen)
{
	char path[512];
	struct stat st;
	json_object *o;

	snprintf(path, sizeof(path), "%s/%s", dir, HANDOFF_FILE);
	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	if (st.st_size > HANDOFF_MAX_SIZE)
		return errtext(err, errlen, "%s: larger than %d bytes", path, HANDOFF_MAX_SIZE);
	o = json_object_from_file(path);
	if (!o)
		return errtext(err, errlen, "%s: not valid JSON", path);
	return parse_owned(o, ret, err, errlen);
}

int handoff_parse(const char *text, size_t len, struct handoff *ret, char *err, size_t errlen)
{
	struct json_tokener *tok;
	json_object *o;
	size_t end;

	if (len > HANDOFF_MAX_SIZE)
		return errtext(err, errlen, "larger than %d bytes", HANDOFF_MAX_SIZE);
	tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	o = json_tokener_parse_ex(tok, text, (int)len);
	/* One complete JSON value and nothing but white space after it. */
	end = o && json_tokener_get_error(tok) == json_tokener_success ? json_tokener_get_parse_end(tok) : 0;
	while (end && end < len && strchr(" \t\r\n", text[end]) && text[end])
		end++;
	if (!o || end != len) {
		json_object_put(o);
		json_tokener_free(tok);
		return errtext(err, errlen, "not valid JSON");
	}
	json_tokener_free(tok);
	return parse_owned(o, ret, err, errlen);
}

int handoff_set_aside(const char *dir, const struct handoff *h, const char *why)
{
	char stale[512], dest[600], src[512], note[1024];
	time_t t = time(NULL);
	int r = 0, fd;

	snprintf(stale, sizeof(stale), "%s/stale", dir);
	if (mkdir(stale, 0700) < 0 && errno != EEXIST)
		return -errno;
	snprintf(dest, sizeof(dest), "%s/%lld", stale, (long long)t);
	for (int i = 1; mkdir(dest, 0700) < 0; i++) {
		if (errno != EEXIST || i > 100)
			return -errno;
		snprintf(dest, sizeof(dest), "%s/%lld.%d", stale, (long long)t, i);
	}
	snprintf(src, sizeof(src), "%s/%s", dir, HANDOFF_FILE);
	snprintf(note, sizeof(note), "%s/%s", dest, HANDOFF_FILE);
	if (rename(src, note) < 0 && errno != ENOENT)
		r = -errno;
	for (size_t i = 0; h && i < h->n_vms; i++) {
		const char *f = h->vms[i].vmstate_file;
		const char *base = strrchr(f, '/');
		if (!f[0])
			continue;
		snprintf(note, sizeof(note), "%s/%s", dest, base ? base + 1 : f);
		if (rename(f, note) < 0 && errno != ENOENT && r == 0)
			r = -errno;
	}
	snprintf(note, sizeof(note), "%s/why", dest);
	fd = open(note, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		(void)!write(fd, why, strlen(why));
		(void)!write(fd, "\n", 1);
		(void)fsync(fd);
		close(fd);
	}
	(void)fsync_dir(dest);
	(void)fsync_dir(dir);
	handoff_prune_stale(dir, handoff_stale_cap(dir));
	return r;
}

/* Bytes under path (files of one set-aside state: no deeper folders). */
static uint64_t dir_bytes(const char *path)
{
	char p[1024];
	struct dirent *e;
	struct stat st;
	uint64_t sum = 0;
	DIR *d = opendir(path);

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
			if (lstat(p, &st) == 0)
				sum += (uint64_t)st.st_blocks * 512;
		}
	closedir(d);
	return sum;
}

static int remove_dir(const char *path)
{
	char p[1024];
	struct dirent *e;
	DIR *d = opendir(path);

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
			if (unlink(p) < 0)
				log_errno(LOG_WARN, errno, "stale: cannot delete %s", p);
		}
	closedir(d);
	return rmdir(path) < 0 ? -errno : 0;
}

uint64_t handoff_stale_cap(const char *dir)
{
	struct statvfs vfs;
	uint64_t quarter;

	if (statvfs(dir, &vfs) < 0)
		return HANDOFF_STALE_CAP_MAX;
	quarter = (uint64_t)vfs.f_blocks * vfs.f_frsize / 4;
	return quarter < HANDOFF_STALE_CAP_MAX ? quarter : HANDOFF_STALE_CAP_MAX;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int handoff_prune_stale(const char *dir, uint64_t cap)
{
	char stale[512], p[1024];
	char *names[256];
	uint64_t sizes[256], total = 0;
	size_t n = 0;
	struct dirent *e;
	int pruned = 0;
	DIR *d;

	snprintf(stale, sizeof(stale), "%s/stale", dir);
	if (!(d = opendir(stale)))
		return 0;
	while ((e = readdir(d)) && n < sizeof(names) / sizeof(names[0]))
		if (e->d_name[0] != '.' && (names[n] = strdup(e->d_name)))
			n++;
	closedir(d);
	/* Names are the set-aside times (seconds, then .N): oldest first when
	 * sorted, as long as they have the same number of digits. */
	qsort(names, n, sizeof(names[0]), by_name);
	for (size_t i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "%s/%s", stale, names[i]);
		sizes[i] = dir_bytes(p);
		total += sizes[i];
	}
	/* The newest is always kept: it is what the operator will look at. */
	for (size_t i = 0; i + 1 < n && total > cap; i++) {
		snprintf(p, sizeof(p), "%s/%s", stale, names[i]);
		if (remove_dir(p) == 0) {
			log_warn("stale: deleted the set-aside state %s (%llu bytes): stale/ holds more than %llu bytes",
				 p, (unsigned long long)sizes[i], (unsigned long long)cap);
			total -= sizes[i];
			pruned++;
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	return pruned;
}

int handoff_consume(const char *dir, const struct handoff *h)
{
	char path[512];
	int r = 0;

	for (size_t i = 0; h && i < h->n_vms; i++)
		if (h->vms[i].vmstate_file[0] && unlink(h->vms[i].vmstate_file) < 0 && errno != ENOENT)
			r = -errno;
	snprintf(path, sizeof(path), "%s/%s", dir, HANDOFF_FILE);
	if (unlink(path) < 0 && errno != ENOENT)
		r = -errno;
	(void)fsync_dir(dir);
	return r;
}
