/* Firmware delivery: SHA-256 (FIPS 180-2 vectors), strict base64, the push's
 * chunk framing and bounds on a real directory, and the image metadata
 * (version, signer) from crafted byte buffers, with every truncation and
 * random corruption of them parsed safely (ASan). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "pid1/loop.h"
#include "update/fwimage.h"
#include "update/fwpush.h"
#include "update/sha256.h"

/* --- SHA-256 --- */

static void hash_hex(const void *p, size_t n, char out[65])
{
	struct sha256 s;
	uint8_t d[32];

	sha256_init(&s);
	sha256_update(&s, p, n);
	sha256_final(&s, d);
	sha256_hex(d, out);
}

static void test_sha256_vectors(void **state)
{
	char hex[65];
	struct sha256 s;
	uint8_t d[32], a[1000];

	(void)state;
	hash_hex("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	hash_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
	assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	hash_hex("", 0, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	/* A million 'a's, fed in uneven pieces. */
	memset(a, 'a', sizeof(a));
	sha256_init(&s);
	for (size_t done = 0, step = 1; done < 1000000; done += step, step = step % 997 + 1) {
		if (done + step > 1000000)
			step = 1000000 - done;
		sha256_update(&s, a, step);
	}
	sha256_final(&s, d);
	sha256_hex(d, hex);
	assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_sha256_fd(void **state)
{
	char path[] = "/tmp/luoinit-sha-XXXXXX", hex[65];
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, "abc", 3), 3);
	assert_int_equal(sha256_fd_hex(fd, hex), 0);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	close(fd);
}

/* --- base64 --- */

static void test_base64(void **state)
{
	uint8_t out[16];
	char err[200];
	size_t n;

	(void)state;
	assert_int_equal(fwpush_base64_decode("TWFu", 4, out, sizeof(out), &n, err, sizeof(err)), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "Man", 3);
	assert_int_equal(fwpush_base64_decode("TWE=", 4, out, sizeof(out), &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_int_equal(fwpush_base64_decode("TQ==", 4, out, sizeof(out), &n, err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	assert_int_equal(fwpush_base64_decode("", 0, out, sizeof(out), &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	assert_int_equal(fwpush_base64_decode("+/+/", 4, out, sizeof(out), &n, err, sizeof(err)), 0);
	assert_memory_equal(out, "\xfb\xff\xbf", 3);
	/* Not a multiple of 4, outside the alphabet, padding inside, whitespace. */
	assert_int_equal(fwpush_base64_decode("TWF", 3, out, sizeof(out), &n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "multiple of 4"));
	assert_int_equal(fwpush_base64_decode("TW-u", 4, out, sizeof(out), &n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "character 0x2d at 2"));
	assert_int_equal(fwpush_base64_decode("TQ==TWFu", 8, out, sizeof(out), &n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "'='"));
	assert_int_equal(fwpush_base64_decode("T=Fu", 4, out, sizeof(out), &n, err, sizeof(err)), -EINVAL);
	assert_int_equal(fwpush_base64_decode("TW u", 4, out, sizeof(out), &n, err, sizeof(err)), -EINVAL);
	/* More than the buffer holds. */
	assert_int_equal(fwpush_base64_decode("TWFuTWFu", 8, out, 5, &n, err, sizeof(err)), -E2BIG);
}

/* --- crafted images --- */

#define IMG_SIZE 0x2000

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

/* A bzImage-like head: 'MZ', 'HdrS', kernel_version -> uts at 0x300. */
static void craft(uint8_t *b, size_t len, const char *uts)
{
	memset(b, 0, len);
	b[0] = 'M';
	b[1] = 'Z';
	memcpy(b + 0x202, "HdrS", 4);
	put16(b + 0x206, 0x020f);
	put16(b + 0x20E, 0x100);
	if (uts)
		memcpy(b + 0x300, uts, strlen(uts) + 1);
}

static void test_header_version(void **state)
{
	uint8_t b[IMG_SIZE];
	char v[FWIMAGE_VERSION_MAX + 1], err[256];

	(void)state;
	craft(b, sizeof(b), "7.2.13 (luoinit@luoinit) #v1.2 SMP PREEMPT_DYNAMIC");
	assert_int_equal(fwimage_header_version(b, sizeof(b), v, sizeof(v), err, sizeof(err)), 0);
	assert_string_equal(v, "v1.2");
	craft(b, sizeof(b), "7.2.13 (a#b@host) #2024.05-rc1+g1_x SMP");
	assert_int_equal(fwimage_header_version(b, sizeof(b), v, sizeof(v), err, sizeof(err)), 0);
	assert_string_equal(v, "2024.05-rc1+g1_x");
	/* No '#' token. */
	craft(b, sizeof(b), "7.2.13 (luoinit@luoinit) SMP");
	assert_int_equal(fwimage_header_version(b, sizeof(b), v, sizeof(v), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no '#VERSION' token"));
	/* Invalid characters, a leading dot, too long. */
	craft(b, sizeof(b), "7.2.13 (x@y) #v1/../x SMP");
	assert_int_equal(fwimage_header_version(b, sizeof(b), v, sizeof(v), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not valid"));
	craft(b, sizeof(b), "7.2.13 (x@y) #.hidden SMP");
	assert_int_equal(fwimage_header_version(b, sizeof(b), v, sizeof(v), err, sizeof(err)), -EINVAL);
	craft(b, sizeof(b), "7.2.13 (x@y) #aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa SMP");
	assert_int_equal(fwimage_header_version(b, sizeof(b), v, sizeof(v), err, sizeof(err)), -EINVAL);
	/* No setup header; a kernel_version of 0; past the end; unterminated. */
	craft(b, sizeof(b), "7.2.13 #v1 SMP");
	b[0x202] = 'X';
	assert_int_equal(fwimage_header_version(b, sizeof(b), v, sizeof(v), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "HdrS"));
	craft(b, sizeof(b), "7.2.13 #v1 SMP");
	put16(b + 0x20E, 0);
	assert_int_equal(fwimage_header_version(b, sizeof(b), v, sizeof(v), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no kernel version"));
	put16(b + 0x20E, 0xffff);
	assert_int_equal(fwimage_header_version(b, sizeof(b), v, sizeof(v), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "beyond"));
	craft(b, sizeof(b), NULL);
	memset(b + 0x300, 'x', sizeof(b) - 0x300);
	assert_int_equal(fwimage_header_version(b, sizeof(b), v, sizeof(v), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not terminated"));
	/* Every truncation is refused cleanly. */
	craft(b, sizeof(b), "7.2.13 #v1 SMP");
	for (size_t n = 0; n < 0x320; n++)
		(void)fwimage_header_version(b, n, v, sizeof(v), err, sizeof(err));
}

static void test_uts_version(void **state)
{
	char v[FWIMAGE_VERSION_MAX + 1];
	const char *s = "#v7 SMP PREEMPT_DYNAMIC";

	(void)state;
	assert_int_equal(fwimage_version_from_uts(s, strlen(s), v, sizeof(v)), 0);
	assert_string_equal(v, "v7");
	s = "#1 SMP";
	assert_int_equal(fwimage_version_from_uts(s, strlen(s), v, sizeof(v)), 0);
	assert_string_equal(v, "1");
	s = "SMP PREEMPT";
	assert_int_equal(fwimage_version_from_uts(s, strlen(s), v, sizeof(v)), -ENOENT);
	s = "# SMP";
	assert_int_equal(fwimage_version_from_uts(s, strlen(s), v, sizeof(v)), -ENOENT);
	s = "#v1;rm SMP";
	assert_int_equal(fwimage_version_from_uts(s, strlen(s), v, sizeof(v)), -EINVAL);
	/* Not NUL-terminated: len bounds it. */
	assert_int_equal(fwimage_version_from_uts("#abcdef", 3, v, sizeof(v)), 0);
	assert_string_equal(v, "ab");
	assert_true(fwimage_version_valid("v1.2"));
	assert_false(fwimage_version_valid(""));
	assert_false(fwimage_version_valid(".."));
	assert_false(fwimage_version_valid("a/b"));
}

/* A tiny DER writer: tlv(tag, parts...) into a buffer. */
struct buf {
	uint8_t b[2048];
	size_t n;
};

static void tlv(struct buf *out, uint8_t tag, const struct buf *content)
{
	size_t n = content ? content->n : 0;

	out->b[out->n++] = tag;
	if (n < 128) {
		out->b[out->n++] = (uint8_t)n;
	} else {
		out->b[out->n++] = 0x82;
		out->b[out->n++] = (uint8_t)(n >> 8);
		out->b[out->n++] = (uint8_t)n;
	}
	if (n)
		memcpy(out->b + out->n, content->b, n);
	out->n += n;
}

static void raw(struct buf *out, const void *p, size_t n)
{
	memcpy(out->b + out->n, p, n);
	out->n += n;
}

static void name(struct buf *out, const char *cn)
{
	struct buf atv = { .n = 0 }, set = { .n = 0 }, seq = { .n = 0 }, s = { .n = 0 };
	static const uint8_t org[] = { 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x01, 'O' };

	/* O=O first, then CN=cn: the CN is found past other attributes. */
	raw(&s, org, sizeof(org));
	tlv(&seq, 0x30, &s);
	tlv(&set, 0x31, &seq);
	s.n = 0;
	seq.n = 0;
	raw(&s, "\x06\x03\x55\x04\x03", 5);
	{
		struct buf str = { .n = 0 };
		raw(&str, cn, strlen(cn));
		tlv(&s, 0x0c, &str);
	}
	tlv(&seq, 0x30, &s);
	tlv(&set, 0x31, &seq);
	tlv(out, 0x30, &set);
	(void)atv;
}

static void cert(struct buf *out, uint8_t serial, const char *issuer, const char *subject)
{
	struct buf tbs = { .n = 0 }, t = { .n = 0 }, c = { .n = 0 }, ver = { .n = 0 };

	raw(&ver, "\x02\x01\x02", 3);
	tlv(&t, 0xa0, &ver);
	raw(&t, "\x02\x01", 2);
	raw(&t, &serial, 1);
	tlv(&t, 0x30, NULL);            /* signature algorithm */
	name(&t, issuer);
	tlv(&t, 0x30, NULL);            /* validity */
	name(&t, subject);
	tlv(&tbs, 0x30, &t);
	tlv(&tbs, 0x30, NULL);          /* signatureAlgorithm */
	raw(&tbs, "\x03\x01\x00", 3);    /* signature */
	tlv(&c, 0x30, &tbs);
	raw(out, c.b, c.n);
}

/* A WIN_CERTIFICATE list with one PKCS#7 SignedData: certificates c1
 * (serial 1) and c2 (serial 2, issued by "Root CA"), a SignerInfo naming
 * (signer_issuer, signer_serial). */
static size_t pkcs7(uint8_t *out, const char *signer_issuer, uint8_t signer_serial)
{
	static const uint8_t oid_sd[] = { 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02 };
	struct buf certs = { .n = 0 }, sd = { .n = 0 }, sdseq = { .n = 0 }, ctx = { .n = 0 }, ci = { .n = 0 },
		   ciseq = { .n = 0 }, ias = { .n = 0 }, iasseq = { .n = 0 }, si = { .n = 0 }, siseq = { .n = 0 },
		   infos = { .n = 0 };

	cert(&certs, 1, "Root CA", "Other Signer");
	cert(&certs, 2, "Root CA", "Image Signer");
	name(&ias, signer_issuer);
	raw(&ias, "\x02\x01", 2);
	raw(&ias, &signer_serial, 1);
	tlv(&iasseq, 0x30, &ias);
	raw(&si, "\x02\x01\x01", 3);
	raw(&si, iasseq.b, iasseq.n);
	tlv(&siseq, 0x30, &si);
	tlv(&infos, 0x31, &siseq);
	raw(&sd, "\x02\x01\x01", 3);
	tlv(&sd, 0x31, NULL);
	tlv(&sd, 0x30, NULL);
	tlv(&sd, 0xa0, &certs);
	raw(&sd, infos.b, infos.n);
	tlv(&sdseq, 0x30, &sd);
	tlv(&ctx, 0xa0, &sdseq);
	raw(&ci, oid_sd, sizeof(oid_sd));
	raw(&ci, ctx.b, ctx.n);
	tlv(&ciseq, 0x30, &ci);
	/* WIN_CERTIFICATE header, padded to 8. */
	memset(out, 0, 8 + ciseq.n + 8);
	put32(out, (uint32_t)(8 + ciseq.n));
	put16(out + 4, 0x0200);
	put16(out + 6, 0x0002);
	memcpy(out + 8, ciseq.b, ciseq.n);
	return (8 + ciseq.n + 7) & ~(size_t)7;
}

static void test_signer_cn(void **state)
{
	uint8_t b[4096], c[4096];
	char cn[FWIMAGE_SIGNER_MAX + 1];
	size_t n;

	(void)state;
	/* The certificate the SignerInfo names, and its subject, not its issuer. */
	n = pkcs7(b, "Root CA", 2);
	assert_int_equal(fwimage_signer_cn(b, n, cn, sizeof(cn)), 1);
	assert_string_equal(cn, "Image Signer");
	n = pkcs7(b, "Root CA", 1);
	assert_int_equal(fwimage_signer_cn(b, n, cn, sizeof(cn)), 1);
	assert_string_equal(cn, "Other Signer");
	/* No match: the first certificate. */
	n = pkcs7(b, "Someone Else", 2);
	assert_int_equal(fwimage_signer_cn(b, n, cn, sizeof(cn)), 1);
	assert_string_equal(cn, "Other Signer");
	/* No PKCS#7 entry; a bad dwLength. */
	memset(c, 0, 16);
	put32(c, 16);
	put16(c + 6, 0x0001);
	assert_int_equal(fwimage_signer_cn(c, 16, cn, sizeof(cn)), 0);
	put32(c, 4);
	assert_int_equal(fwimage_signer_cn(c, 16, cn, sizeof(cn)), -EINVAL);
	/* Every truncation and many corruptions parse safely: signed or not,
	 * never out of bounds (ASan). */
	n = pkcs7(b, "Root CA", 2);
	for (size_t k = 0; k <= n; k++) {
		memcpy(c, b, k);
		(void)fwimage_signer_cn(c, k, cn, sizeof(cn));
	}
	srand(1);
	for (int i = 0; i < 20000; i++) {
		memcpy(c, b, n);
		for (int j = 0; j < 1 + i % 4; j++)
			c[(size_t)rand() % n] = (uint8_t)rand();
		(void)fwimage_signer_cn(c, n, cn, sizeof(cn));
		assert_true(strlen(cn) <= FWIMAGE_SIGNER_MAX);
	}
}

/* A PE32+ head with data directory 4 pointing at off/size. */
static void craft_pe(uint8_t *b, size_t len, uint32_t off, uint32_t size)
{
	size_t pe = 0x40, opt = pe + 24;

	craft(b, len, "7.2.13 (x@y) #v9 SMP");
	put32(b + 0x3C, (uint32_t)pe);
	memcpy(b + pe, "PE\0\0", 4);
	put16(b + pe + 4, 0x8664);
	put16(b + pe + 20, 240);
	put16(b + opt, 0x20b);
	put32(b + opt + 108, 16);
	put32(b + opt + 112 + 32, off);
	put32(b + opt + 112 + 36, size);
}

static void test_security_dir(void **state)
{
	static uint8_t b[IMG_SIZE];
	uint64_t off, size;

	(void)state;
	craft_pe(b, sizeof(b), 0x1000, 0x100);
	assert_int_equal(fwimage_security_dir(b, sizeof(b), sizeof(b), &off, &size), 1);
	assert_int_equal(off, 0x1000);
	assert_int_equal(size, 0x100);
	/* Unsigned; outside the file; not PE; a bad magic. */
	craft_pe(b, sizeof(b), 0, 0);
	assert_int_equal(fwimage_security_dir(b, sizeof(b), sizeof(b), &off, &size), 0);
	craft_pe(b, sizeof(b), 0x1f00, 0x200);
	assert_int_equal(fwimage_security_dir(b, sizeof(b), sizeof(b), &off, &size), -EINVAL);
	craft_pe(b, sizeof(b), 0xffffffff, 0xffffffff);
	assert_int_equal(fwimage_security_dir(b, sizeof(b), sizeof(b), &off, &size), -EINVAL);
	craft(b, sizeof(b), "x #v1");
	assert_int_equal(fwimage_security_dir(b, sizeof(b), sizeof(b), &off, &size), 0);
	craft_pe(b, sizeof(b), 0x1000, 0x100);
	put16(b + 0x40 + 24, 0x999);
	assert_int_equal(fwimage_security_dir(b, sizeof(b), sizeof(b), &off, &size), -EINVAL);
	/* e_lfanew far out, or near the end of the head. */
	craft_pe(b, sizeof(b), 0x1000, 0x100);
	put32(b + 0x3C, 0xfffffff0);
	assert_int_equal(fwimage_security_dir(b, sizeof(b), sizeof(b), &off, &size), 0);
	craft_pe(b, sizeof(b), 0x1000, 0x100);
	for (size_t n = 0; n < 0x200; n++)
		(void)fwimage_security_dir(b, n, sizeof(b), &off, &size);
}

/* A whole image file: inspect() finds version and signer. */
static void test_inspect(void **state)
{
	static uint8_t b[IMG_SIZE + 4096];
	char path[] = "/tmp/luoinit-fw-XXXXXX", err[256];
	struct fwimage_info info;
	size_t n;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	unlink(path);
	n = pkcs7(b + IMG_SIZE, "Root CA", 2);
	craft_pe(b, IMG_SIZE, IMG_SIZE, (uint32_t)n);
	assert_int_equal(write(fd, b, IMG_SIZE + n), (ssize_t)(IMG_SIZE + n));
	assert_int_equal(fwimage_inspect(fd, IMG_SIZE + n, &info, err, sizeof(err)), 0);
	assert_string_equal(info.version, "v9");
	assert_true(info.is_signed);
	assert_string_equal(info.signed_by, "Image Signer");
	/* Unsigned. */
	craft_pe(b, IMG_SIZE, 0, 0);
	assert_int_equal(pwrite(fd, b, IMG_SIZE, 0), IMG_SIZE);
	assert_int_equal(fwimage_inspect(fd, IMG_SIZE + n, &info, err, sizeof(err)), 0);
	assert_false(info.is_signed);
	assert_string_equal(info.signed_by, "");
	close(fd);
}

/* A signed image with a firmware note between its bzImage and its signature:
 * the note is read; one naming another version than the kernel refuses the
 * image; one that does not parse likewise. */
static void test_inspect_note(void **state)
{
	static uint8_t b[IMG_SIZE + 8192];
	const char *texts[] = {
		"luoinit-firmware-note 1\nversion=v9\ncmdline=console=ttyS0\nqemu=10.0.13\n",
		"luoinit-firmware-note 1\nversion=v8\n",
		"luoinit-firmware-note 1\nversion v9\n",
	};
	char path[] = "/tmp/luoinit-fw-XXXXXX", err[256];
	struct fwimage_info info;

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		size_t tl = strlen(texts[i]), at = IMG_SIZE, n;
		int fd = mkstemp(path);
		assert_true(fd >= 0);
		unlink(path);
		memcpy(b + at, texts[i], tl);
		at += tl;
		memcpy(b + at, FWNOTE_MAGIC, FWNOTE_MAGIC_LEN);
		put32(b + at + FWNOTE_MAGIC_LEN, (uint32_t)tl);
		at += FWNOTE_FOOTER_LEN;
		n = pkcs7(b + at, "Root CA", 2);
		craft_pe(b, IMG_SIZE, (uint32_t)at, (uint32_t)n);
		assert_int_equal(write(fd, b, at + n), (ssize_t)(at + n));
		err[0] = 0;
		int r = fwimage_inspect(fd, at + n, &info, err, sizeof(err));
		if (i == 0) {
			assert_int_equal(r, 0);
			assert_true(info.note.present);
			assert_string_equal(info.note.cmdline, "console=ttyS0");
			assert_string_equal(info.note.qemu, "10.0.13");
			assert_string_equal(info.signed_by, "Image Signer");
		} else {
			assert_int_equal(r, -EINVAL);
			assert_non_null(strstr(err, i == 1 ? "note names version \"v8\", its kernel \"v9\""
							  : "expected key=value"));
		}
		close(fd);
		strcpy(path, "/tmp/luoinit-fw-XXXXXX");
	}
}

/* --- the push: framing and bounds, on a real directory --- */

static char dir[64];

static int push_setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/luoinit-push-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	return loop_init() < 0 ? -1 : 0;
}

static int push_teardown(void **state)
{
	char cmd[128];

	(void)state;
	fwpush_abandon("test over");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static size_t firmware_files(void)
{
	char cmd[160], line[64];
	FILE *f;
	size_t n = 0;

	snprintf(cmd, sizeof(cmd), "ls -A %s/firmware 2>/dev/null", dir);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		n++;
	pclose(f);
	return n;
}

static void b64(const uint8_t *in, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t e = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t w = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
		out[e++] = a[w >> 18 & 63];
		out[e++] = a[w >> 12 & 63];
		out[e++] = i + 1 < n ? a[w >> 6 & 63] : '=';
		out[e++] = i + 2 < n ? a[w & 63] : '=';
	}
	out[e] = '\0';
}

static void test_push_framing(void **state)
{
	static uint8_t img[IMG_SIZE];
	static char enc[FWPUSH_CHUNK_B64 + 8];
	char sha[65], err[512];
	uint64_t h, h2, got;
	json_object *ret = NULL;

	(void)state;
	craft(img, sizeof(img), "7.2.13 (x@y) #v3.1 SMP");
	hash_hex(img, sizeof(img), sha);
	/* Bounds of begin. */
	assert_int_equal(fwpush_begin(dir, 1, 10, sha, &h, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "out of bounds"));
	assert_int_equal(fwpush_begin(dir, 1, FWPUSH_MAX_SIZE + 1, sha, &h, err, sizeof(err)), -EINVAL);
	assert_int_equal(fwpush_begin(dir, 1, sizeof(img), "abc", &h, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "64 hex digits"));
	assert_int_equal(fwpush_begin(dir, 1, sizeof(img), sha, &h, err, sizeof(err)), 0);
	/* One at a time. */
	assert_int_equal(fwpush_begin(dir, 2, sizeof(img), sha, &h2, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "another push is in progress"));
	/* Unknown handle, another owner, wrong offset, bad base64, oversize, past the end. */
	b64(img, 3000, enc);
	assert_int_equal(fwpush_chunk(1, h + 1, 0, enc, strlen(enc), &got, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no push with handle"));
	assert_int_equal(fwpush_chunk(2, h, 0, enc, strlen(enc), &got, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "another connection"));
	assert_int_equal(fwpush_chunk(1, h, 5, enc, strlen(enc), &got, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "'offset' 5"));
	assert_int_equal(fwpush_chunk(1, h, 0, "!!!!", 4, &got, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bad base64"));
	memset(enc, 'A', FWPUSH_CHUNK_B64 + 4);
	assert_int_equal(fwpush_chunk(1, h, 0, enc, FWPUSH_CHUNK_B64 + 4, &got, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "per chunk"));
	assert_int_equal(fwpush_chunk(1, h, 0, "", 0, &got, err, sizeof(err)), -EINVAL);
	/* A good first part, then an end before all arrived: refused, nothing kept. */
	b64(img, 3000, enc);
	assert_int_equal(fwpush_chunk(1, h, 0, enc, strlen(enc), &got, err, sizeof(err)), 0);
	assert_int_equal(got, 3000);
	assert_int_equal(firmware_files(), 1); /* the temporary file */
	assert_int_equal(fwpush_end(1, h, &ret, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "only 3000 of 8192 bytes"));
	assert_int_equal(firmware_files(), 0);
	/* Again, with a chunk running past the size, then all of it. */
	assert_int_equal(fwpush_begin(dir, 1, sizeof(img), sha, &h, err, sizeof(err)), 0);
	b64(img, sizeof(img), enc);
	assert_int_equal(fwpush_chunk(1, h, 0, enc, strlen(enc), &got, err, sizeof(err)), 0);
	assert_int_equal(fwpush_chunk(1, h, sizeof(img), "AAAA", 4, &got, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "runs past"));
	assert_int_equal(fwpush_end(1, h, &ret, err, sizeof(err)), 0);
	assert_string_equal(json_object_get_string(json_object_object_get(ret, "version")), "v3.1");
	assert_string_equal(json_object_get_string(json_object_object_get(ret, "sha256")), sha);
	json_object_put(ret);
	assert_int_equal(firmware_files(), 1);
	{
		char p[200];
		assert_int_equal(fwimage_path(dir, "v3.1", p, sizeof(p)), 0);
		assert_non_null(strstr(p, "/firmware/v3.1.efi"));
		assert_int_equal(fwimage_path(dir, "v3.2", p, sizeof(p)), -ENOENT);
		assert_int_equal(fwimage_path(dir, "../x", p, sizeof(p)), -EINVAL);
		assert_int_equal(fwimage_path(dir, "v3.1", p, 8), -ENAMETOOLONG);
	}
}

static void test_push_refusals(void **state)
{
	static uint8_t img[IMG_SIZE];
	static char enc[FWPUSH_CHUNK_B64 + 8];
	char sha[65], err[512];
	uint64_t h, got;
	json_object *ret = NULL;

	(void)state;
	/* A wrong sha256: refused at the end, nothing kept. */
	craft(img, sizeof(img), "7.2.13 (x@y) #v4 SMP");
	hash_hex("abc", 3, sha);
	assert_int_equal(fwpush_begin(dir, 7, sizeof(img), sha, &h, err, sizeof(err)), 0);
	b64(img, sizeof(img), enc);
	assert_int_equal(fwpush_chunk(7, h, 0, enc, strlen(enc), &got, err, sizeof(err)), 0);
	assert_int_equal(fwpush_end(7, h, &ret, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "sha256 mismatch"));
	assert_int_equal(firmware_files(), 0);
	/* No version in the image. */
	craft(img, sizeof(img), "7.2.13 (x@y) SMP");
	hash_hex(img, sizeof(img), sha);
	assert_int_equal(fwpush_begin(dir, 7, sizeof(img), sha, &h, err, sizeof(err)), 0);
	b64(img, sizeof(img), enc);
	assert_int_equal(fwpush_chunk(7, h, 0, enc, strlen(enc), &got, err, sizeof(err)), 0);
	assert_int_equal(fwpush_end(7, h, &ret, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no '#VERSION' token"));
	assert_int_equal(firmware_files(), 0);
	/* The owner goes away: abandoned, its file removed. */
	assert_int_equal(fwpush_begin(dir, 8, sizeof(img), sha, &h, err, sizeof(err)), 0);
	assert_int_equal(fwpush_chunk(8, h, 0, enc, 8, &got, err, sizeof(err)), 0);
	assert_int_equal(firmware_files(), 1);
	fwpush_owner_gone(9);
	assert_int_equal(firmware_files(), 1);
	fwpush_owner_gone(8);
	assert_int_equal(firmware_files(), 0);
	assert_int_equal(fwpush_chunk(8, h, 6, enc, 8, &got, err, sizeof(err)), -EINVAL);
	/* Idle: the next begin takes over. */
	fwpush_set_idle_timeout(1);
	assert_int_equal(fwpush_begin(dir, 8, sizeof(img), sha, &h, err, sizeof(err)), 0);
	usleep(5000);
	assert_int_equal(fwpush_begin(dir, 9, sizeof(img), sha, &h, err, sizeof(err)), 0);
	fwpush_set_idle_timeout(0);
	assert_int_equal(fwpush_abort(9, h, err, sizeof(err)), 0);
	assert_int_equal(firmware_files(), 0);
	/* status lists nothing while nothing is stored. */
	ret = fwpush_status_json(dir);
	assert_int_equal(json_object_array_length(json_object_object_get(ret, "images")), 0);
	assert_null(json_object_object_get(ret, "push"));
	json_object_put(ret);
}

static void test_file_version(void **state)
{
	char v[FWIMAGE_VERSION_MAX + 1];
	char name[FWIMAGE_VERSION_MAX + 8];

	(void)state;
	assert_int_equal(fwimage_file_version("2.1.0+g1.efi", v), 0);
	assert_string_equal(v, "2.1.0+g1");
	/* Not ours: no version, another suffix, a hidden or temporary name. */
	assert_int_equal(fwimage_file_version(".efi", v), -EINVAL);
	assert_int_equal(fwimage_file_version("2.1.0.img", v), -EINVAL);
	assert_int_equal(fwimage_file_version(".2.1.0.efi", v), -EINVAL);
	assert_int_equal(fwimage_file_version("2.1.0.efi.tmp", v), -EINVAL);
	assert_int_equal(fwimage_file_version("a b.efi", v), -EINVAL);
	/* The longest version, and one past it. */
	memset(name, 'a', FWIMAGE_VERSION_MAX);
	strcpy(name + FWIMAGE_VERSION_MAX, ".efi");
	assert_int_equal(fwimage_file_version(name, v), 0);
	assert_int_equal(strlen(v), FWIMAGE_VERSION_MAX);
	memset(name, 'a', FWIMAGE_VERSION_MAX + 1);
	strcpy(name + FWIMAGE_VERSION_MAX + 1, ".efi");
	assert_int_equal(fwimage_file_version(name, v), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_version),
		cmocka_unit_test(test_sha256_vectors),
		cmocka_unit_test(test_sha256_fd),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_header_version),
		cmocka_unit_test(test_uts_version),
		cmocka_unit_test(test_signer_cn),
		cmocka_unit_test(test_security_dir),
		cmocka_unit_test(test_inspect),
		cmocka_unit_test(test_inspect_note),
		cmocka_unit_test_setup_teardown(test_push_framing, push_setup, push_teardown),
		cmocka_unit_test_setup_teardown(test_push_refusals, push_setup, push_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
