/* The live-update ABI of a kernel. See kabi.h. */
#include "update/kabi.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#define KABI_FILE_MAX 1024

static void unknown(struct kabi *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void unknown(struct kabi *k, const char *fmt, ...)
{
	va_list ap;

	k->known = false;
	va_start(ap, fmt);
	vsnprintf(k->why, sizeof(k->why), fmt, ap);
	va_end(ap);
}

static bool key_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (!first && ((c >= '0' && c <= '9') || c == '_'));
}

/* What kernel-abi.sh lets through: compatible strings and releases. */
static bool val_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("._,+-", c) != NULL);
}

int kabi_parse(const char *line, struct kabi *ret)
{
	static const char *const required[] = { "kho", "luo", "memfd" };
	const char *p = line;

	memset(ret, 0, sizeof(*ret));
	for (;;) {
		size_t kl = 0, vl = 0;
		const char *w;

		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p || *p == '\n')
			break;
		w = p;
		while (key_char(p[kl], kl == 0))
			kl++;
		if (kl == 0 || p[kl] != '=') {
			unknown(ret, "expected key=value at \"%.20s\"", w);
			return -EINVAL;
		}
		p += kl + 1;
		while (val_char(p[vl]))
			vl++;
		if (vl == 0 || (p[vl] && p[vl] != ' ' && p[vl] != '\t' && p[vl] != '\n')) {
			unknown(ret, "bad value at \"%.20s\"", w);
			return -EINVAL;
		}
		if (kl >= sizeof(ret->kv[0].key) || vl >= sizeof(ret->kv[0].val)) {
			unknown(ret, "word too long at \"%.20s\"", w);
			return -EINVAL;
		}
		for (size_t i = 0; i < ret->n; i++)
			if (strlen(ret->kv[i].key) == kl && !memcmp(ret->kv[i].key, w, kl)) {
				unknown(ret, "%.*s given twice", (int)kl, w);
				return -EINVAL;
			}
		if (ret->n == KABI_MAX) {
			unknown(ret, "more than %d words", KABI_MAX);
			return -EINVAL;
		}
		memcpy(ret->kv[ret->n].key, w, kl);
		memcpy(ret->kv[ret->n].val, p, vl);
		ret->n++;
		p += vl;
	}
	if (*p == '\n' && p[1]) {
		unknown(ret, "more than one line");
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (!kabi_get(ret, required[i])) {
			unknown(ret, "no %s= word", required[i]);
			return -EINVAL;
		}
	ret->known = true;
	return 0;
}

const char *kabi_get(const struct kabi *k, const char *key)
{
	for (size_t i = 0; i < k->n; i++)
		if (!strcmp(k->kv[i].key, key))
			return k->kv[i].val;
	return NULL;
}

static const char *what(const char *key)
{
	if (!strcmp(key, "kho"))
		return "kexec handover (KHO)";
	if (!strcmp(key, "luo"))
		return "the Live Update Orchestrator";
	if (!strcmp(key, "memfd"))
		return "memfd preservation";
	return key;
}

/* Every word of a (release aside) is in b with the same value; the running
 * kernel is a, so a difference names its value first. */
static int covers(const struct kabi *a, const char *an, const struct kabi *b, const char *bn,
		  char *why, size_t len)
{
	for (size_t i = 0; i < a->n; i++) {
		const char *key = a->kv[i].key, *va = a->kv[i].val, *vb = kabi_get(b, key);
		if (!strcmp(key, "release"))
			continue;
		if (!strcmp(va, "none") || (vb && !strcmp(vb, "none"))) {
			snprintf(why, len, "the %s kernel is built without %s (%s=none)",
				 !strcmp(va, "none") ? an : bn, what(key), key);
			return -1;
		}
		if (!vb) {
			snprintf(why, len, "%s: %s on the %s kernel, absent on the %s", key, va, an, bn);
			return -1;
		}
		if (strcmp(va, vb) != 0) {
			snprintf(why, len, "%s: %s on the %s kernel, %s on the %s", key, va, an, vb, bn);
			return -1;
		}
	}
	return 0;
}

int kabi_compare(const struct kabi *running, const struct kabi *target, char *why, size_t len)
{
	if (!running->known) {
		snprintf(why, len, "the running kernel's is unknown: %s", running->why);
		return -1;
	}
	if (!target->known) {
		snprintf(why, len, "the target kernel's is unknown: %s", target->why);
		return -1;
	}
	if (covers(running, "running", target, "target", why, len) < 0 ||
	    covers(target, "target", running, "running", why, len) < 0)
		return -1;
	return 0;
}

void kabi_read(const char *path, const char *release, struct kabi *ret)
{
	char buf[KABI_FILE_MAX + 1];
	const char *rel;
	ssize_t n;
	int fd;

	memset(ret, 0, sizeof(*ret));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		unknown(ret, "%s: %s", path, strerror(errno));
		return;
	}
	n = read(fd, buf, sizeof(buf));
	if (n < 0) {
		unknown(ret, "%s: %s", path, strerror(errno));
		close(fd);
		return;
	}
	close(fd);
	if (n > KABI_FILE_MAX) {
		unknown(ret, "%s: longer than %d bytes", path, KABI_FILE_MAX);
		return;
	}
	buf[n] = 0;
	if (strlen(buf) != (size_t)n) {
		unknown(ret, "%s: not a text file", path);
		return;
	}
	if (kabi_parse(buf, ret) < 0) {
		char why[sizeof(ret->why)];
		snprintf(why, sizeof(why), "%s", ret->why);
		unknown(ret, "%s: %s", path, why);
		return;
	}
	rel = kabi_get(ret, "release");
	if (release && *release && rel && strcmp(rel, release) != 0)
		unknown(ret, "%s describes kernel %s, not %s", path, rel, release);
}

int kabi_bzimage_release(const char *kernel, char *buf, size_t len)
{
	unsigned char hdr[0x210];
	char ver[128];
	ssize_t n;
	uint16_t proto, off;
	size_t l;
	int fd, r = 0;

	fd = open(kernel, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread(fd, hdr, sizeof(hdr), 0);
	if (n < 0) {
		r = -errno;
		goto out;
	}
	/* boot protocol (Documentation/arch/x86/boot.rst): "HdrS" at 0x202, the
	 * version at 0x206, kernel_version at 0x20e (an offset from 0x200). */
	proto = (uint16_t)(hdr[0x206] | hdr[0x207] << 8);
	off = (uint16_t)(hdr[0x20e] | hdr[0x20f] << 8);
	if (n < (ssize_t)sizeof(hdr) || memcmp(hdr + 0x202, "HdrS", 4) != 0 || proto < 0x200 || off == 0) {
		r = -ENOEXEC;
		goto out;
	}
	n = pread(fd, ver, sizeof(ver) - 1, (off_t)off + 0x200);
	if (n <= 0) {
		r = n < 0 ? -errno : -ENOEXEC;
		goto out;
	}
	ver[n] = 0;
	l = strcspn(ver, " ");
	if (l == 0 || l >= len || l == (size_t)n) {
		r = -ENOEXEC;
		goto out;
	}
	memcpy(buf, ver, l);
	buf[l] = 0;
out:
	close(fd);
	return r;
}

void kabi_running(const char *path, struct kabi *ret)
{
	struct utsname u;

	memset(&u, 0, sizeof(u));
	kabi_read(path, uname(&u) == 0 ? u.release : NULL, ret);
}

void kabi_target(const char *kernel, struct kabi *ret)
{
	char path[4096], rel[65] = "";

	if ((size_t)snprintf(path, sizeof(path), "%s%s", kernel, KABI_TARGET_SUFFIX) >= sizeof(path)) {
		memset(ret, 0, sizeof(*ret));
		unknown(ret, "%s: path too long", kernel);
		return;
	}
	/* Not a bzImage, or unreadable: kexec_file_load will say so. */
	kabi_read(path, kabi_bzimage_release(kernel, rel, sizeof(rel)) == 0 ? rel : NULL, ret);
}
