#include "update/bootentry.h"
#include "pid1/errtext.h"
#include "pid1/fsync_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SUFFIX ".conf"

/* Digits only, at least one, not too many: 0 with the value. */
static int digits(const char *s, size_t n, int *ret)
{
	int v = 0;

	if (n == 0 || n > 4)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return 0;
}

/* "+LEFT" or "+LEFT-DONE" at the end of base (systemd-boot's counter):
 * its length, or 0 when there is none. */
static size_t counter(const char *base, size_t len, int *left, int *done)
{
	const char *plus = NULL, *dash;

	for (size_t i = len; i-- > 0;)
		if (base[i] == '+') {
			plus = base + i;
			break;
		}
	if (!plus)
		return 0;
	dash = memchr(plus, '-', (size_t)(base + len - plus));
	*done = 0;
	if (dash ? digits(plus + 1, (size_t)(dash - plus - 1), left) < 0 ||
			   digits(dash + 1, (size_t)(base + len - dash - 1), done) < 0
		 : digits(plus + 1, (size_t)(base + len - plus - 1), left) < 0)
		return 0;
	return (size_t)(base + len - plus);
}

int bootentry_parse(const char *name, struct bootentry *e)
{
	size_t len = strlen(name), pl = strlen(BOOTENTRY_PREFIX), sl = strlen(SUFFIX), c, vl;
	int gen, left = -1, done = 0;

	memset(e, 0, sizeof(*e));
	if (len >= sizeof(e->file) || len <= pl + 5 + sl || strncmp(name, BOOTENTRY_PREFIX, pl) != 0 ||
	    strcmp(name + len - sl, SUFFIX) != 0)
		return -EINVAL;
	if (digits(name + pl, 4, &gen) < 0 || name[pl + 4] != '-')
		return -EINVAL;
	len -= sl;
	c = counter(name, len, &left, &done);
	if (!c)
		left = -1;
	vl = len - c - (pl + 5);
	if (vl == 0 || vl > FWIMAGE_VERSION_MAX)
		return -EINVAL;
	memcpy(e->version, name + pl + 5, vl);
	e->version[vl] = '\0';
	if (!fwimage_version_valid(e->version))
		return -EINVAL;
	memcpy(e->file, name, strlen(name) + 1);
	memcpy(e->id, name, len - c);
	memcpy(e->id + len - c, SUFFIX, sl + 1);
	e->gen = (unsigned)gen;
	e->tries_left = left;
	e->tries_done = done;
	return 0;
}

/* systemd-boot's order: no tries left last, then by id descending (the
 * generation, zero-padded, decides), more tries left first. */
static int order(const void *a, const void *b)
{
	const struct bootentry *x = a, *y = b;
	int r;

	if ((x->tries_left == 0) != (y->tries_left == 0))
		return x->tries_left == 0 ? 1 : -1;
	r = strcmp(y->id, x->id);
	if (r)
		return r;
	return y->tries_left - x->tries_left;
}

size_t bootentry_scan(const char *dir, struct bootentry *v, size_t max)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (!d)
		return 0;
	while (n < max && (de = readdir(d)))
		if (bootentry_parse(de->d_name, &v[n]) == 0)
			n++;
	closedir(d);
	qsort(v, n, sizeof(*v), order);
	return n;
}

const struct bootentry *bootentry_default(const struct bootentry *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].tries_left != 0)
			return &v[i];
	return NULL;
}

const struct bootentry *bootentry_running(const struct bootentry *v, size_t n, const char *selected_id,
					  const char *running_version)
{
	struct bootentry sel;

	if (!running_version || !running_version[0])
		return NULL;
	/* systemd-boot (v252) names the entry as it found it, counter and all. */
	for (size_t i = 0; selected_id && bootentry_parse(selected_id, &sel) == 0 && i < n; i++)
		if (strcmp(v[i].id, sel.id) == 0 && strcmp(v[i].version, running_version) == 0)
			return &v[i];
	/* After a kexec: the newest generation of the running version. */
	{
		const struct bootentry *best = NULL;
		for (size_t i = 0; i < n; i++)
			if (strcmp(v[i].version, running_version) == 0 && (!best || v[i].gen > best->gen))
				best = &v[i];
		return best;
	}
}

int bootentry_mark_good(const char *dir, const struct bootentry *e)
{
	char from[4200], to[4200];

	if (e->tries_left < 0)
		return 0;
	snprintf(from, sizeof(from), "%s/%s", dir, e->file);
	snprintf(to, sizeof(to), "%s/%s", dir, e->id);
	if (rename(from, to) < 0)
		return -errno;
	return fsync_dir(dir);
}

/* src to dst through dst.tmp: written, synced, renamed. */
static int copy_file(const char *src, const char *dst, char *err, size_t errlen)
{
	static char buf[1 << 16];
	char tmp[4300];
	int in, out, r = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", src, strerror(-r));
		return r;
	}
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", tmp, strerror(-r));
		close(in);
		return r;
	}
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf)), w = 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		while (w < n) {
			ssize_t k = write(out, buf + w, (size_t)(n - w));
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				r = k < 0 ? -errno : -EIO;
				break;
			}
			w += k;
		}
		if (r < 0)
			break;
	}
	if (r == 0 && fsync(out) < 0)
		r = -errno;
	if (close(out) < 0 && r == 0)
		r = -errno;
	close(in);
	if (r == 0 && rename(tmp, dst) < 0)
		r = -errno;
	if (r < 0) {
		(void)unlink(tmp);
		snprintf(err, errlen, "copying %s to %s: %s", src, dst, strerror(-r));
	}
	return r;
}

int bootentry_install(const char *esp, const char *image, const char *version, const char *options, int tries,
		      struct bootentry *ret, char *err, size_t errlen)
{
	static struct bootentry v[BOOTENTRY_MAX];
	char dir[4200], idir[4200], dst[4300], name[BOOTENTRY_NAME], path[4400], tmp[4500];
	unsigned gen = 0;
	size_t n;
	FILE *f;
	int r, fd, left, done;

	if (!fwimage_version_valid(version) || counter(version, strlen(version), &left, &done))
		return errtext(err, errlen, "version '%.80s' cannot name a boot entry", version);
	if (tries < 1 || tries > 9)
		return errtext(err, errlen, "tries %d: 1 to 9", tries);
	snprintf(dir, sizeof(dir), "%s/" BOOTENTRY_DIR, esp);
	snprintf(idir, sizeof(idir), "%s/" BOOTENTRY_IMAGES, esp);
	n = bootentry_scan(dir, v, BOOTENTRY_MAX);
	for (size_t i = 0; i < n; i++)
		if (v[i].gen > gen)
			gen = v[i].gen;
	if (gen >= 9999)
		return errtext(err, errlen, "no generation left after %u in %s", gen, dir);
	snprintf(dst, sizeof(dst), "%s/%s" FWIMAGE_SUFFIX, idir, version);
	if ((r = copy_file(image, dst, err, errlen)) < 0 || (r = fsync_dir(idir)) < 0) {
		if (r != -EINVAL && !err[0])
			snprintf(err, errlen, "%s: %s", idir, strerror(-r));
		return r;
	}
	snprintf(name, sizeof(name), BOOTENTRY_PREFIX "%04u-%s+%d" SUFFIX, gen + 1, version, tries);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "%s: %s", tmp, strerror(-r));
		return r;
	}
	fprintf(f, "title luoinit %s\nversion %s\nlinux /" BOOTENTRY_IMAGES "/%s" FWIMAGE_SUFFIX "\n", version, version,
		version);
	if (options && options[0]) /* else the firmware's own command line alone */
		fprintf(f, "options %s\n", options);
	r = fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -errno;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r == 0)
		r = fsync_dir(dir);
	if (r < 0) {
		(void)unlink(tmp);
		snprintf(err, errlen, "writing %s: %s", path, strerror(-r));
		return r;
	}
	return bootentry_parse(name, ret);
}

static bool kept_version(const struct bootentry *v, size_t n, const bool *keep, const char *version)
{
	for (size_t i = 0; i < n; i++)
		if (keep[i] && strcmp(v[i].version, version) == 0)
			return true;
	return false;
}

int bootentry_prune(const char *esp, const char *keep_id, char (*removed)[FWIMAGE_VERSION_MAX + 1], size_t max)
{
	static struct bootentry v[BOOTENTRY_MAX];
	bool keep[BOOTENTRY_MAX] = { false }, fallback = false;
	char dir[4200], idir[4200], path[4400];
	const struct bootentry *k = NULL;
	size_t n, gone = 0, swept = 0;
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/" BOOTENTRY_DIR, esp);
	snprintf(idir, sizeof(idir), "%s/" BOOTENTRY_IMAGES, esp);
	n = bootentry_scan(dir, v, BOOTENTRY_MAX);
	if (n == BOOTENTRY_MAX)
		return 0; /* maybe more than we looked at: their images must stay */
	for (size_t i = 0; i < n && keep_id; i++)
		if (strcmp(v[i].id, keep_id) == 0)
			k = &v[i];
	if (!k)
		return 0;
	/* Newest generation first among the older good ones: the fallback. */
	for (size_t i = 0; i < n; i++) {
		if (v[i].gen >= k->gen)
			keep[i] = true;
		else if (v[i].tries_left < 0 && !fallback)
			keep[i] = fallback = true;
	}
	for (size_t i = 0; i < n; i++) {
		if (keep[i])
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, v[i].file);
		if (unlink(path) < 0 && errno != ENOENT) {
			keep[i] = true; /* still there: so stays its image */
			continue;
		}
		if (gone < max)
			snprintf(removed[gone], sizeof(removed[gone]), "%s", v[i].version);
		gone++;
	}
	if (gone)
		(void)fsync_dir(dir);
	/* Images no kept entry boots; temporary copies a power cut left. */
	if (!(d = opendir(idir)))
		return (int)gone;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		char version[FWIMAGE_VERSION_MAX + 1];
		bool tmp = l > 4 && strcmp(de->d_name + l - 4, ".tmp") == 0;

		if (!tmp && (fwimage_file_version(de->d_name, version) < 0 || kept_version(v, n, keep, version)))
			continue;
		snprintf(path, sizeof(path), "%s/%s", idir, de->d_name);
		swept += unlink(path) == 0;
	}
	closedir(d);
	if (swept)
		(void)fsync_dir(idir);
	return (int)gone;
}

static void attempt_path(const char *state_dir, char *out, size_t len)
{
	snprintf(out, len, "%s/" FWIMAGE_DIR "/" BOOTENTRY_ATTEMPT, state_dir);
}

int bootentry_attempt_write(const char *state_dir, const char *version)
{
	char path[4200], dir[4200], line[FWIMAGE_VERSION_MAX + 2];
	int r;

	attempt_path(state_dir, path, sizeof(path));
	snprintf(dir, sizeof(dir), "%s/" FWIMAGE_DIR, state_dir);
	snprintf(line, sizeof(line), "%s\n", version);
	if ((r = file_replace(path, line, strlen(line))) < 0)
		return r;
	return fsync_dir(dir);
}

int bootentry_attempt_read(const char *state_dir, char *version, size_t len)
{
	char path[4200];
	ssize_t n;
	int fd;

	attempt_path(state_dir, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	n = read(fd, version, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	version[n] = '\0';
	version[strcspn(version, "\n")] = '\0';
	return fwimage_version_valid(version) ? 0 : -EINVAL;
}

int bootentry_attempt_clear(const char *state_dir)
{
	char path[4200];

	attempt_path(state_dir, path, sizeof(path));
	if (unlink(path) < 0)
		return errno == ENOENT ? 0 : -errno;
	return 0;
}
