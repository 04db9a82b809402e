/* Firmware image metadata from the image's own bytes (fwimage.h). */
#include "update/fwimage.h"
#include "pid1/errtext.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SETUP_HDRS_OFF      0x202
#define SETUP_PROTO_OFF     0x206
#define SETUP_KVER_OFF      0x20E
#define KVER_STR_MAX        256
#define WIN_CERT_PKCS7      0x0002

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool version_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
	       c == '_' || c == '+' || c == '-';
}

bool fwimage_version_valid(const char *v)
{
	size_t n;

	if (!v || !v[0] || v[0] == '.')
		return false;
	for (n = 0; v[n]; n++)
		if (n >= FWIMAGE_VERSION_MAX || !version_char(v[n]))
			return false;
	return true;
}

int fwimage_file_version(const char *name, char *version)
{
	size_t l = strlen(name), sl = strlen(FWIMAGE_SUFFIX);

	if (l <= sl || l - sl > FWIMAGE_VERSION_MAX || strcmp(name + l - sl, FWIMAGE_SUFFIX) != 0)
		return -EINVAL;
	memcpy(version, name, l - sl);
	version[l - sl] = '\0';
	return fwimage_version_valid(version) ? 0 : -EINVAL;
}

static void copy_printable(char *out, size_t outlen, const uint8_t *p, size_t n)
{
	size_t i;

	if (!outlen)
		return;
	for (i = 0; i < n && i + 1 < outlen; i++)
		out[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
	out[i] = '\0';
}

int fwimage_version_from_uts(const char *s, size_t len, char *out, size_t outlen)
{
	size_t i, j;

	if (outlen)
		out[0] = '\0';
	for (i = 0; i < len && s[i]; i++)
		if (s[i] == '#' && (i == 0 || s[i - 1] == ' '))
			break;
	if (i >= len || !s[i])
		return -ENOENT;
	i++;
	for (j = i; j < len && s[j] && s[j] != ' ' && s[j] != '\t' && s[j] != '\n'; j++)
		;
	if (j == i)
		return -ENOENT;
	copy_printable(out, outlen, (const uint8_t *)s + i, j - i);
	if (j - i > FWIMAGE_VERSION_MAX || j - i + 1 > outlen)
		return -EINVAL;
	return fwimage_version_valid(out) ? 0 : -EINVAL;
}

int fwimage_header_version(const uint8_t *head, size_t len, char *out, size_t outlen, char *err,
			   size_t errlen)
{
	size_t off, n;
	char shown[FWIMAGE_VERSION_MAX + 8];
	int r;

	if (outlen)
		out[0] = '\0';
	if (len < SETUP_KVER_OFF + 2 || memcmp(head + SETUP_HDRS_OFF, "HdrS", 4) != 0)
		return errtext(err, errlen, "not a bzImage: no setup header ('HdrS' at 0x202)");
	if (le16(head + SETUP_PROTO_OFF) < 0x0200)
		return errtext(err, errlen, "bzImage boot protocol %#x has no kernel_version field",
			    le16(head + SETUP_PROTO_OFF));
	off = le16(head + SETUP_KVER_OFF);
	if (off == 0)
		return errtext(err, errlen, "the bzImage's setup header has no kernel version (kernel_version is 0)");
	off += 0x200;
	if (off >= len)
		return errtext(err, errlen, "the bzImage's kernel version string (at %#zx) is beyond the image's end",
			    off);
	n = len - off < KVER_STR_MAX ? len - off : KVER_STR_MAX;
	if (!memchr(head + off, '\0', n))
		return errtext(err, errlen, "the bzImage's kernel version string (at %#zx) is not terminated within "
			    "%d bytes", off, KVER_STR_MAX);
	r = fwimage_version_from_uts((const char *)head + off, n, shown, sizeof(shown));
	if (r == -ENOENT) {
		char kv[80];
		copy_printable(kv, sizeof(kv), head + off, strnlen((const char *)head + off, n));
		return errtext(err, errlen, "the bzImage's kernel version \"%s\" has no '#VERSION' token", kv);
	}
	if (r < 0)
		return errtext(err, errlen, "the bzImage's version \"%s\" is not valid (at most %d of [A-Za-z0-9._+-], "
			    "not starting with '.')", shown, FWIMAGE_VERSION_MAX);
	if (strlen(shown) + 1 > outlen)
		return errtext(err, errlen, "version buffer too small");
	memcpy(out, shown, strlen(shown) + 1);
	return 0;
}

int fwimage_security_dir(const uint8_t *head, size_t len, uint64_t file_size, uint64_t *off,
			 uint64_t *size)
{
	uint64_t pe, opt, dirs, ndirs, optsize;
	uint16_t magic;

	if (len < 0x40 || head[0] != 'M' || head[1] != 'Z')
		return 0;
	pe = le32(head + 0x3C);
	if (pe > len || len - pe < 24 || memcmp(head + pe, "PE\0\0", 4) != 0)
		return 0;
	optsize = le16(head + pe + 20);
	opt = pe + 24;
	if (optsize < 2 || opt + optsize > len)
		return -EINVAL;
	magic = le16(head + opt);
	if (magic == 0x10b) {           /* PE32 */
		if (optsize < 96)
			return -EINVAL;
		ndirs = le32(head + opt + 92);
		dirs = opt + 96;
	} else if (magic == 0x20b) {    /* PE32+ */
		if (optsize < 112)
			return -EINVAL;
		ndirs = le32(head + opt + 108);
		dirs = opt + 112;
	} else {
		return -EINVAL;
	}
	/* IMAGE_DIRECTORY_ENTRY_SECURITY, inside the optional header. */
	if (ndirs < 5 || dirs + 5 * 8 > opt + optsize)
		return 0;
	*off = le32(head + dirs + 4 * 8);
	*size = le32(head + dirs + 4 * 8 + 4);
	if (*off == 0 || *size == 0)
		return 0;
	if (*size < 8 || *off > file_size || file_size - *off < *size)
		return -EINVAL;
	return 1;
}

/* One DER TLV (definite lengths, low tag numbers: DER as sbsign and OpenSSL
 * write it). */
struct der {
	uint8_t tag;
	const uint8_t *p;       /* contents */
	size_t len;
	const uint8_t *start;   /* the whole TLV */
	size_t total;
};

static int der_get(const uint8_t **pp, const uint8_t *end, struct der *d)
{
	const uint8_t *p = *pp;
	size_t n, len;

	if (p >= end || end - p < 2)
		return -EINVAL;
	d->start = p;
	d->tag = *p++;
	if ((d->tag & 0x1f) == 0x1f)
		return -EINVAL;
	n = *p++;
	if (n & 0x80) {
		n &= 0x7f;
		if (n == 0 || n > 4 || (size_t)(end - p) < n)
			return -EINVAL;
		for (len = 0; n; n--)
			len = len << 8 | *p++;
	} else {
		len = n;
	}
	if (len > (size_t)(end - p))
		return -EINVAL;
	d->p = p;
	d->len = len;
	d->total = (size_t)(p + len - d->start);
	*pp = p + len;
	return 0;
}

/* The next TLV, which must have tag. */
static int der_expect(const uint8_t **pp, const uint8_t *end, uint8_t tag, struct der *d)
{
	return der_get(pp, end, d) < 0 || d->tag != tag ? -EINVAL : 0;
}

#define DER_SEQ  0x30
#define DER_SET  0x31
#define DER_INT  0x02
#define DER_OID  0x06
#define DER_CTX0 0xa0
#define DER_CTX1 0xa1

/* The first CN of a Name (SEQUENCE OF SET OF SEQUENCE {OID, value}). */
static int name_cn(const struct der *name, char *out, size_t outlen)
{
	static const uint8_t cn_oid[] = { 0x55, 0x04, 0x03 };
	const uint8_t *p = name->p, *end = name->p + name->len;
	struct der rdn, atv, oid, val;

	while (p < end) {
		const uint8_t *q, *qe;

		if (der_expect(&p, end, DER_SET, &rdn) < 0)
			return -EINVAL;
		for (q = rdn.p, qe = rdn.p + rdn.len; q < qe;) {
			const uint8_t *r;

			if (der_expect(&q, qe, DER_SEQ, &atv) < 0)
				return -EINVAL;
			r = atv.p;
			if (der_expect(&r, atv.p + atv.len, DER_OID, &oid) < 0 ||
			    der_get(&r, atv.p + atv.len, &val) < 0)
				return -EINVAL;
			if (oid.len != sizeof(cn_oid) || memcmp(oid.p, cn_oid, sizeof(cn_oid)) != 0)
				continue;
			/* UTF8String, PrintableString, T61String, IA5String. */
			if (val.tag != 0x0c && val.tag != 0x13 && val.tag != 0x14 && val.tag != 0x16)
				return -EINVAL;
			copy_printable(out, outlen, val.p, val.len);
			return 0;
		}
	}
	return -ENOENT;
}

/* A certificate's issuer, serial and subject (RFC 5280 TBSCertificate). */
static int cert_fields(const struct der *cert, struct der *serial, struct der *issuer, struct der *subject)
{
	const uint8_t *p = cert->p, *end = cert->p + cert->len, *t, *te;
	struct der tbs, d;

	if (der_expect(&p, end, DER_SEQ, &tbs) < 0)
		return -EINVAL;
	t = tbs.p;
	te = tbs.p + tbs.len;
	if (der_get(&t, te, &d) < 0)
		return -EINVAL;
	if (d.tag == DER_CTX0 && der_get(&t, te, &d) < 0)   /* [0] version: then the serial */
		return -EINVAL;
	if (d.tag != DER_INT)
		return -EINVAL;
	*serial = d;
	if (der_expect(&t, te, DER_SEQ, &d) < 0 ||            /* signature algorithm */
	    der_expect(&t, te, DER_SEQ, issuer) < 0 ||
	    der_expect(&t, te, DER_SEQ, &d) < 0 ||            /* validity */
	    der_expect(&t, te, DER_SEQ, subject) < 0)
		return -EINVAL;
	return 0;
}

static bool der_same(const struct der *a, const struct der *b)
{
	return a->len == b->len && a->tag == b->tag && memcmp(a->p, b->p, a->len) == 0;
}

/* PKCS#7 ContentInfo with SignedData (RFC 2315 §9.1). */
static int pkcs7_signer_cn(const uint8_t *buf, size_t len, char *out, size_t outlen)
{
	static const uint8_t signed_data[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02 };
	const uint8_t *p = buf, *end = buf + len, *s, *se;
	struct der ci, oid, ctx, sd, d, certs = { 0 }, infos, info, ias, want_issuer, want_serial;
	struct der cert, serial, issuer, subject;
	bool by_issuer = false;

	if (der_expect(&p, end, DER_SEQ, &ci) < 0)
		return -EINVAL;
	p = ci.p;
	end = ci.p + ci.len;
	if (der_expect(&p, end, DER_OID, &oid) < 0 || oid.len != sizeof(signed_data) ||
	    memcmp(oid.p, signed_data, sizeof(signed_data)) != 0 || der_expect(&p, end, DER_CTX0, &ctx) < 0)
		return -EINVAL;
	p = ctx.p;
	end = ctx.p + ctx.len;
	if (der_expect(&p, end, DER_SEQ, &sd) < 0)
		return -EINVAL;
	s = sd.p;
	se = sd.p + sd.len;
	if (der_expect(&s, se, DER_INT, &d) < 0 ||          /* version */
	    der_expect(&s, se, DER_SET, &d) < 0 ||          /* digestAlgorithms */
	    der_expect(&s, se, DER_SEQ, &d) < 0 ||          /* contentInfo (SpcIndirectDataContent) */
	    der_get(&s, se, &d) < 0)
		return -EINVAL;
	if (d.tag == DER_CTX0) {                             /* [0] IMPLICIT certificates */
		certs = d;
		if (der_get(&s, se, &d) < 0)
			return -EINVAL;
	}
	if (d.tag == DER_CTX1 && der_get(&s, se, &d) < 0)    /* [1] IMPLICIT crls */
		return -EINVAL;
	if (d.tag != DER_SET)
		return -EINVAL;
	infos = d;
	if (!certs.p)
		return -ENOENT;
	/* The first SignerInfo: version, then issuerAndSerialNumber (or, in
	 * version 3, a [0] subjectKeyIdentifier: no issuer to match). */
	s = infos.p;
	se = infos.p + infos.len;
	if (der_expect(&s, se, DER_SEQ, &info) == 0) {
		s = info.p;
		se = info.p + info.len;
		if (der_expect(&s, se, DER_INT, &d) == 0 && der_expect(&s, se, DER_SEQ, &ias) == 0) {
			s = ias.p;
			se = ias.p + ias.len;
			by_issuer = der_expect(&s, se, DER_SEQ, &want_issuer) == 0 &&
				    der_expect(&s, se, DER_INT, &want_serial) == 0;
		}
	}
	/* The matching certificate, else the first one. */
	for (int pass = by_issuer ? 0 : 1; pass < 2; pass++) {
		for (p = certs.p, end = certs.p + certs.len; p < end;) {
			if (der_expect(&p, end, DER_SEQ, &cert) < 0)
				return -EINVAL;
			if (cert_fields(&cert, &serial, &issuer, &subject) < 0)
				continue;
			if (pass == 0 && !(der_same(&serial, &want_serial) && der_same(&issuer, &want_issuer)))
				continue;
			return name_cn(&subject, out, outlen);
		}
	}
	return -ENOENT;
}

int fwimage_signer_cn(const uint8_t *certs, size_t len, char *out, size_t outlen)
{
	size_t pos = 0;

	if (outlen)
		out[0] = '\0';
	/* WIN_CERTIFICATE: dwLength (with this header), wRevision,
	 * wCertificateType, then the bytes; entries 8-byte aligned. */
	while (len - pos >= 8) {
		uint32_t n = le32(certs + pos);
		uint16_t type = le16(certs + pos + 6);

		if (n < 8)
			return -EINVAL;
		if (type == WIN_CERT_PKCS7) {
			/* A list cut short (FWIMAGE_CERT_MAX) leaves the DER short: then
			 * the signer is unknown, but the image is signed. */
			size_t have = n <= len - pos ? n : len - pos;
			if (pkcs7_signer_cn(certs + pos + 8, have - 8, out, outlen) < 0 && outlen)
				out[0] = '\0';
			return 1;
		}
		if (n > len - pos)
			return -EINVAL;
		pos += ((size_t)n + 7) & ~(size_t)7;
		if (pos > len)
			break;
	}
	return 0;
}

static int pread_all(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = pread(fd, buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* shorter than its size: changed under us */
		got += (size_t)n;
	}
	return 0;
}

int fwimage_inspect(int fd, uint64_t size, struct fwimage_info *info, char *err, size_t errlen)
{
	size_t hlen = size < FWIMAGE_HEAD_MAX ? (size_t)size : FWIMAGE_HEAD_MAX;
	uint64_t off = 0, clen = 0, signed_data_end;
	uint8_t *buf;
	bool pe_signed;
	int r;

	memset(info, 0, sizeof(*info));
	buf = malloc(hlen > FWIMAGE_CERT_MAX ? hlen : FWIMAGE_CERT_MAX);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = pread_all(fd, buf, hlen, 0);
	if (r < 0) {
		snprintf(err, errlen, "reading the image: %s", strerror(-r));
		goto out;
	}
	r = fwimage_header_version(buf, hlen, info->version, sizeof(info->version), err, errlen);
	if (r < 0)
		goto out;
	/* Headers we cannot read (< 0): no signer, the note looked for at the end. */
	pe_signed = fwimage_security_dir(buf, hlen, size, &off, &clen) == 1;
	signed_data_end = pe_signed ? off : size;
	if ((r = fwnote_read(fd, signed_data_end, &info->note, err, errlen)) < 0)
		goto out;
	if (r == 1 && strcmp(info->note.version, info->version) != 0) {
		snprintf(err, errlen, "the image's firmware note names version \"%.64s\", its kernel \"%s\"",
			 info->note.version, info->version);
		r = -EINVAL;
		goto out;
	}
	if (!pe_signed) {
		r = 0; /* not PE, or unsigned: no signer */
		goto out;
	}
	if (clen > FWIMAGE_CERT_MAX)
		clen = FWIMAGE_CERT_MAX;
	r = pread_all(fd, buf, (size_t)clen, off);
	if (r < 0) {
		snprintf(err, errlen, "reading the image's signature: %s", strerror(-r));
		goto out;
	}
	info->is_signed = fwimage_signer_cn(buf, (size_t)clen, info->signed_by, sizeof(info->signed_by)) == 1;
	r = 0;
out:
	free(buf);
	return r;
}

int fwimage_path(const char *state_dir, const char *version, char *buf, size_t len)
{
	struct stat st;
	int n;

	if (len)
		buf[0] = '\0';
	if (!fwimage_version_valid(version))
		return -EINVAL;
	n = snprintf(buf, len, "%s/" FWIMAGE_DIR "/%s" FWIMAGE_SUFFIX, state_dir, version);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	if (stat(buf, &st) < 0)
		return -errno;
	return S_ISREG(st.st_mode) ? 0 : -ENOENT;
}
