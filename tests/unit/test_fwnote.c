/* The firmware note (init/update/fwnote.h): its text parsed strictly but
 * forward-compatibly, and found at the end of an image's signed data (before
 * the certificate table, with or without the signer's alignment), with
 * every bad footer refused rather than read out of bounds (ASan). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "update/fwnote.h"

#define NOTE "luoinit-firmware-note 1\nversion=v2\ncmdline=console=ttyS0 liveupdate=on kho=on\n" \
	     "kernel-abi=kho=kho-v4 luo=luo-v5 memfd=memfd-v2 release=7.2.13\nqemu=10.0.13\n"

static void test_parse(void **state)
{
	struct fwnote n;
	char err[256];
	static char big[FWNOTE_MAX];

	(void)state;
	assert_int_equal(fwnote_parse(NOTE, strlen(NOTE), &n, err, sizeof(err)), 0);
	assert_true(n.present);
	assert_string_equal(n.version, "v2");
	assert_string_equal(n.cmdline, "console=ttyS0 liveupdate=on kho=on");
	assert_string_equal(n.kernel_abi, "kho=kho-v4 luo=luo-v5 memfd=memfd-v2 release=7.2.13");
	assert_string_equal(n.qemu, "10.0.13");
	/* A later note's words are skipped; an empty command line is one; no
	 * newline at the end is fine. */
	const char *later = "luoinit-firmware-note 1\nversion=v3\nsigned-at=2026\ncmdline=\nqemu=11.0.0";
	assert_int_equal(fwnote_parse(later, strlen(later), &n, err, sizeof(err)), 0);
	assert_string_equal(n.version, "v3");
	assert_string_equal(n.cmdline, "");
	assert_string_equal(n.qemu, "11.0.0");
	assert_string_equal(n.kernel_abi, "");

	struct { const char *text, *err; } bad[] = {
		{ "luoinit-firmware-note 2\nversion=v1\n", "does not start with" },
		{ "version=v1\n", "does not start with" },
		{ "luoinit-firmware-note 1\nversion v1\n", "line 2: expected key=value" },
		{ "luoinit-firmware-note 1\n=v1\n", "line 2: expected key=value" },
		{ "luoinit-firmware-note 1\nversion=v1\nversion=v2\n", "version given twice" },
		{ "luoinit-firmware-note 1\ncmdline=a\tb\n", "line 2: a control character" },
		{ "luoinit-firmware-note 1\nqemu=1234567890123456789012345678901234\n", "qemu longer than 31" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		assert_int_equal(fwnote_parse(bad[i].text, strlen(bad[i].text), &n, err, sizeof(err)), -EINVAL);
		if (!strstr(err, bad[i].err))
			fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].text, err, bad[i].err);
		assert_false(n.present);
	}
	/* A NUL inside is a control character, not the end. */
	assert_int_equal(fwnote_parse("luoinit-firmware-note 1\nversion=v\0x\n", 35, &n, err, sizeof(err)), -EINVAL);
	/* The longest command line the kernel takes fits; one more byte does not. */
	int k = snprintf(big, sizeof(big), "luoinit-firmware-note 1\ncmdline=");
	memset(big + k, 'a', FWNOTE_CMDLINE_MAX - 1);
	assert_int_equal(fwnote_parse(big, (size_t)k + FWNOTE_CMDLINE_MAX - 1, &n, err, sizeof(err)), 0);
	assert_int_equal(strlen(n.cmdline), FWNOTE_CMDLINE_MAX - 1);
	memset(big + k, 'a', FWNOTE_CMDLINE_MAX);
	assert_int_equal(fwnote_parse(big, (size_t)k + FWNOTE_CMDLINE_MAX, &n, err, sizeof(err)), -EINVAL);
}

/* A file: junk, the note text, its footer, then `after` NULs and `cert`
 * bytes of a certificate table. Returns its fd; *data_end where the table
 * starts. */
static int image_file(const char *text, size_t tlen, uint32_t footer_len, size_t after, size_t cert,
		      uint64_t *data_end)
{
	char path[] = "/tmp/luoinit-note-XXXXXX";
	unsigned char junk[1000], f[FWNOTE_FOOTER_LEN], z[16] = { 0 };
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	memset(junk, 0xA5, sizeof(junk));
	memcpy(f, FWNOTE_MAGIC, FWNOTE_MAGIC_LEN);
	f[12] = (unsigned char)footer_len;
	f[13] = (unsigned char)(footer_len >> 8);
	f[14] = (unsigned char)(footer_len >> 16);
	f[15] = (unsigned char)(footer_len >> 24);
	assert_int_equal(write(fd, junk, sizeof(junk)), sizeof(junk));
	assert_int_equal(write(fd, text, tlen), (ssize_t)tlen);
	assert_int_equal(write(fd, f, sizeof(f)), sizeof(f));
	assert_int_equal(write(fd, z, after), (ssize_t)after);
	*data_end = sizeof(junk) + tlen + sizeof(f) + after;
	memset(junk, 0x30, sizeof(junk));
	assert_int_equal(write(fd, junk, cert), (ssize_t)cert);
	return fd;
}

static void test_read(void **state)
{
	size_t tl = strlen(NOTE);
	uint64_t end;
	struct fwnote n;
	char err[256];
	int fd;

	(void)state;
	/* Unsigned (ends the file); signed (before the table); signed with
	 * the signer's alignment in between. */
	for (size_t after = 0; after < 8; after += 7) {
		fd = image_file(NOTE, tl, (uint32_t)tl, after, 0, &end);
		assert_int_equal(fwnote_read(fd, end, &n, err, sizeof(err)), 1);
		assert_string_equal(n.qemu, "10.0.13");
		close(fd);
		fd = image_file(NOTE, tl, (uint32_t)tl, after, 600, &end);
		assert_int_equal(fwnote_read(fd, end, &n, err, sizeof(err)), 1);
		assert_string_equal(n.version, "v2");
		close(fd);
	}
	/* Eight NULs are more than alignment: no note (an image without one). */
	fd = image_file(NOTE, tl, (uint32_t)tl, 8, 100, &end);
	assert_int_equal(fwnote_read(fd, end, &n, err, sizeof(err)), 0);
	assert_false(n.present);
	close(fd);
	/* A length past the file's start, zero, or over the bound. */
	uint32_t lens[] = { 5000, 0, FWNOTE_MAX + 1, 0xffffffffu };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		fd = image_file(NOTE, tl, lens[i], 0, 10, &end);
		err[0] = 0;
		assert_int_equal(fwnote_read(fd, end, &n, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "out of bounds"));
		close(fd);
	}
	/* A length that covers junk: the text does not parse. */
	fd = image_file(NOTE, tl, (uint32_t)tl + 10, 0, 10, &end);
	assert_int_equal(fwnote_read(fd, end, &n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "does not start with"));
	close(fd);
	/* No footer at all; a file shorter than one. */
	fd = image_file("", 0, 0, 0, 0, &end);
	assert_int_equal(fwnote_read(fd, end - FWNOTE_FOOTER_LEN, &n, err, sizeof(err)), 0);
	assert_int_equal(fwnote_read(fd, 10, &n, err, sizeof(err)), 0);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
