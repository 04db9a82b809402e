/* The firmware note (fwnote.h). */
#include "update/fwnote.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct field {
	const char *key;
	size_t off, size;
};

static const struct field fields[] = {
	{ "version", offsetof(struct fwnote, version), sizeof(((struct fwnote *)0)->version) },
	{ "cmdline", offsetof(struct fwnote, cmdline), sizeof(((struct fwnote *)0)->cmdline) },
	{ "kernel-abi", offsetof(struct fwnote, kernel_abi), sizeof(((struct fwnote *)0)->kernel_abi) },
	{ "qemu", offsetof(struct fwnote, qemu), sizeof(((struct fwnote *)0)->qemu) },
};

int fwnote_parse(const char *text, size_t len, struct fwnote *ret, char *err, size_t errlen)
{
	bool seen[sizeof(fields) / sizeof(fields[0])] = { false };
	size_t hl = strlen(FWNOTE_HEADER), pos, line = 1;

	memset(ret, 0, sizeof(*ret));
	if (len < hl + 1 || memcmp(text, FWNOTE_HEADER "\n", hl + 1) != 0) {
		snprintf(err, errlen, "the firmware note does not start with \"%s\"", FWNOTE_HEADER);
		return -EINVAL;
	}
	for (pos = hl + 1; pos < len;) {
		const char *l = text + pos, *nl = memchr(l, '\n', len - pos), *eq;
		size_t ll = nl ? (size_t)(nl - l) : len - pos, kl, vl, i;

		line++;
		pos += ll + (nl != NULL);
		if (ll == 0)
			continue;
		for (i = 0; i < ll; i++)
			if ((unsigned char)l[i] < 0x20 || (unsigned char)l[i] == 0x7f) {
				snprintf(err, errlen, "firmware note line %zu: a control character", line);
				return -EINVAL;
			}
		eq = memchr(l, '=', ll);
		if (!eq || eq == l) {
			snprintf(err, errlen, "firmware note line %zu: expected key=value", line);
			return -EINVAL;
		}
		kl = (size_t)(eq - l);
		vl = ll - kl - 1;
		for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
			if (strlen(fields[i].key) != kl || memcmp(fields[i].key, l, kl) != 0)
				continue;
			if (seen[i]) {
				snprintf(err, errlen, "firmware note: %s given twice", fields[i].key);
				return -EINVAL;
			}
			if (vl >= fields[i].size) {
				snprintf(err, errlen, "firmware note: %s longer than %zu bytes", fields[i].key,
					 fields[i].size - 1);
				return -EINVAL;
			}
			seen[i] = true;
			memcpy((char *)ret + fields[i].off, eq + 1, vl);
			((char *)ret + fields[i].off)[vl] = '\0';
			break;
		}
		/* Not one of ours: a later note's, skipped. */
	}
	ret->present = true;
	return 0;
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		got += (size_t)n;
	}
	return 0;
}

int fwnote_read(int fd, uint64_t data_end, struct fwnote *ret, char *err, size_t errlen)
{
	unsigned char tail[FWNOTE_FOOTER_LEN + 7];
	const unsigned char *f;
	size_t tl = data_end < sizeof(tail) ? (size_t)data_end : sizeof(tail), i;
	uint64_t footer = 0;
	uint32_t len;
	char *text;
	int r;

	memset(ret, 0, sizeof(*ret));
	if (tl < FWNOTE_FOOTER_LEN)
		return 0;
	if ((r = pread_full(fd, tail, tl, data_end - tl)) < 0) {
		snprintf(err, errlen, "reading the image's end: %s", strerror(-r));
		return r;
	}
	/* The footer, maybe followed by the signer's alignment (NULs). */
	for (i = 0; i + FWNOTE_FOOTER_LEN <= tl; i++) {
		size_t at = tl - FWNOTE_FOOTER_LEN - i;
		if (i && tail[tl - i] != 0)
			break;
		if (!memcmp(tail + at, FWNOTE_MAGIC, FWNOTE_MAGIC_LEN)) {
			footer = data_end - tl + at;
			break;
		}
	}
	if (!footer)
		return 0;
	f = tail + (footer - (data_end - tl)) + FWNOTE_MAGIC_LEN;
	len = (uint32_t)f[0] | (uint32_t)f[1] << 8 | (uint32_t)f[2] << 16 | (uint32_t)f[3] << 24;
	if (len == 0 || len > FWNOTE_MAX || len > footer) {
		snprintf(err, errlen, "the firmware note's length (%u bytes) is out of bounds", len);
		return -EINVAL;
	}
	text = malloc(len);
	if (!text) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if ((r = pread_full(fd, text, len, footer - len)) < 0)
		snprintf(err, errlen, "reading the firmware note: %s", strerror(-r));
	else
		r = fwnote_parse(text, len, ret, err, errlen) < 0 ? -EINVAL : 1;
	free(text);
	return r;
}
