/* The update manifest. Corrupt or foreign manifests are refused field by
 * field: restoring the wrong state onto RAM would crash the guest. */
#include "update/handoff.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HANDOFF_MAX_SIZE (256 * 1024)

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

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

static void add_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

int handoff_write(const char *dir, const struct handoff *h)
{
	char path[512], tmp[512], gen[24];
	json_object *o = json_object_new_object(), *vms = json_object_new_array();
	const char *text;
	size_t len;
	int fd, r = 0;

	snprintf(gen, sizeof(gen), "%016" PRIx64, h->generation);
	json_object_object_add(o, "version", json_object_new_int(1));
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
		json_object_array_add(vms, j);
	}
	json_object_object_add(o, "vms", vms);
	{
		json_object *held = json_object_new_array();
		for (size_t i = 0; i < h->n_held; i++)
			json_object_array_add(held, json_object_new_string(h->held[i]));
		json_object_object_add(o, "held", held);
	}
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	len = strlen(text);

	snprintf(path, sizeof(path), "%s/%s", dir, HANDOFF_FILE);
	snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, HANDOFF_FILE);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		off += (size_t)n;
	}
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r == 0)
		r = fsync_dir(dir);
	if (r < 0)
		(void)unlink(tmp);
out:
	json_object_put(o);
	return r;
}

__attribute__((format(printf, 3, 4)))
static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int get_str(json_object *o, const char *k, char *buf, size_t len, const char *where, char *err, size_t errlen)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
		return bad(err, errlen, "%s%s: expected a string", where, k);
	if ((size_t)json_object_get_string_len(v) >= len)
		return bad(err, errlen, "%s%s: longer than %zu bytes", where, k, len - 1);
	memcpy(buf, json_object_get_string(v), (size_t)json_object_get_string_len(v) + 1);
	return 0;
}

static int get_num(json_object *o, const char *k, double *ret, const char *where, char *err, size_t errlen)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) ||
	    !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
		return bad(err, errlen, "%s%s: expected a number", where, k);
	*ret = json_object_get_double(v);
	return 0;
}

static int get_i64(json_object *o, const char *k, int64_t *ret, const char *where, char *err, size_t errlen)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0)
		return bad(err, errlen, "%s%s: expected a non-negative integer", where, k);
	*ret = json_object_get_int64(v);
	return 0;
}

static int parse(json_object *o, struct handoff *h, char *err, size_t errlen)
{
	json_object *v, *vms;
	char gen[24], *end;
	int64_t i64 = 0;

	if (!json_object_is_type(o, json_type_object))
		return bad(err, errlen, "not a JSON object");
	if (!json_object_object_get_ex(o, "version", &v) || json_object_get_int(v) != 1)
		return bad(err, errlen, "version: expected 1");
	if (get_str(o, "generation", gen, sizeof(gen), "", err, errlen) < 0)
		return -EINVAL;
	errno = 0;
	h->generation = strtoull(gen, &end, 16);
	if (errno || *end || strlen(gen) != 16)
		return bad(err, errlen, "generation: expected 16 hex digits, got \"%s\"", gen);
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
		return bad(err, errlen, "sandbox: expected true or false");
	h->sandbox = json_object_get_boolean(v);
	if (strcmp(h->mode, "luo") != 0 && strcmp(h->mode, "full-ram") != 0)
		return bad(err, errlen, "mode: expected \"luo\" or \"full-ram\", got \"%s\"", h->mode);
	if (!json_object_object_get_ex(o, "vms", &vms) || !json_object_is_type(vms, json_type_array) ||
	    json_object_array_length(vms) > HANDOFF_MAX_VMS)
		return bad(err, errlen, "vms: expected an array of at most %d VMs", HANDOFF_MAX_VMS);
	h->n_vms = json_object_array_length(vms);
	for (size_t i = 0; i < h->n_vms; i++) {
		json_object *j = json_object_array_get_idx(vms, i);
		struct handoff_vm *m = &h->vms[i];
		char where[32];
		snprintf(where, sizeof(where), "vms[%zu].", i);
		if (!json_object_is_type(j, json_type_object))
			return bad(err, errlen, "vms[%zu]: expected an object", i);
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
			return bad(err, errlen, "%smemory_mib/ram_size: inconsistent (%lld MiB, %lld bytes)", where,
				   (long long)i64, (long long)m->ram_size);
		m->memory_mib = (uint32_t)i64;
	}
	/* "held" came later: a manifest without it holds nothing back. */
	h->n_held = 0;
	if (json_object_object_get_ex(o, "held", &v)) {
		if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) > HANDOFF_MAX_VMS)
			return bad(err, errlen, "held: expected an array of at most %d names", HANDOFF_MAX_VMS);
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *j = json_object_array_get_idx(v, i);
			if (!json_object_is_type(j, json_type_string) ||
			    json_object_get_string_len(j) >= (int)sizeof(h->held[0]) || json_object_get_string_len(j) == 0)
				return bad(err, errlen, "held[%zu]: expected a VM name", i);
			snprintf(h->held[h->n_held++], sizeof(h->held[0]), "%s", json_object_get_string(j));
		}
	}
	return 0;
}

int handoff_read(const char *dir, struct handoff *ret, char *err, size_t errlen)
{
	char path[512];
	struct stat st;
	json_object *o;
	int r;

	snprintf(path, sizeof(path), "%s/%s", dir, HANDOFF_FILE);
	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	if (st.st_size > HANDOFF_MAX_SIZE)
		return bad(err, errlen, "%s: larger than %d bytes", path, HANDOFF_MAX_SIZE);
	o = json_object_from_file(path);
	if (!o)
		return bad(err, errlen, "%s: not valid JSON", path);
	memset(ret, 0, sizeof(*ret));
	r = parse(o, ret, err, errlen);
	json_object_put(o);
	return r;
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
	return r;
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
