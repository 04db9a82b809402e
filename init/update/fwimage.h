/* Firmware images (README, "Firmware images: delivery"): what an image says
 * about itself, read from its own bytes, never from a sidecar. An image is a
 * signed x86 bzImage: a PE/COFF file (the EFI stub) with an Authenticode
 * signature (sbsign), stored as <state_dir>/firmware/<VERSION>.efi.
 *
 * Every parser here is bounded and takes bytes that came from the network:
 * offsets and lengths are checked before use, nothing recurses, nothing
 * allocates beyond FWIMAGE_HEAD_MAX + FWIMAGE_CERT_MAX. */
#ifndef LUOINIT_FWIMAGE_H
#define LUOINIT_FWIMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "update/fwnote.h"

#define FWIMAGE_DIR         "firmware"       /* under the state dir */
#define FWIMAGE_SUFFIX      ".efi"
#define FWIMAGE_VERSION_MAX 64               /* characters, [A-Za-z0-9._+-] */
#define FWIMAGE_SIGNER_MAX  128              /* characters kept of the signer's CN */
/* The file's head read for the setup header and the PE headers: the version
 * string's offset is a 16-bit field plus 0x200. */
#define FWIMAGE_HEAD_MAX    (0x10200 + 512)
/* The most of the certificate table read for the signer. */
#define FWIMAGE_CERT_MAX    (64 * 1024)

struct fwimage_info {
	char version[FWIMAGE_VERSION_MAX + 1];
	bool is_signed;                          /* a PKCS#7 signature is attached */
	char signed_by[FWIMAGE_SIGNER_MAX + 1];  /* its signer's subject CN, "" when not found */
	struct fwnote note;                      /* note.present false: an image without one */
};

/* [A-Za-z0-9._+-]{1,64}, not starting with '.' (no hidden or temporary names). */
bool fwimage_version_valid(const char *v);
/* The VERSION of a file named VERSION.efi (a valid version): 0 with it in
 * version (FWIMAGE_VERSION_MAX + 1 bytes), else -EINVAL. */
int fwimage_file_version(const char *name, char *version);

/* The version in a kernel's UTS version text: the token after the first '#'
 * that starts a word ("7.2.13 (x@y) #v1.2 SMP ..." or uname -v's "#v1.2 SMP
 * ..."), up to whitespace. s need not be NUL-terminated (len bytes; a NUL
 * ends it). 0 with out filled, -ENOENT when there is no such token, -EINVAL
 * when it is not a valid version (out then holds up to outlen-1 bytes of it,
 * sanitised, for the message). */
int fwimage_version_from_uts(const char *s, size_t len, char *out, size_t outlen);

/* The version from a bzImage's first len bytes: the setup header ("HdrS" at
 * 0x202) field kernel_version (u16 at 0x20E; the string is at its value +
 * 0x200). 0, or a negative errno with a sentence in err. */
int fwimage_header_version(const uint8_t *head, size_t len, char *out, size_t outlen, char *err,
			   size_t errlen);

/* The PE security directory (optional header data directory 4): the file
 * offset and size of the WIN_CERTIFICATE list. head: the file's first len
 * bytes, file_size: the whole file's. 1 with *off and *size, 0 when the file is
 * not PE or has no signature, -EINVAL when the headers are malformed or the
 * directory points outside the file. */
int fwimage_security_dir(const uint8_t *head, size_t len, uint64_t file_size, uint64_t *off,
			 uint64_t *size);

/* The signer's subject CN from a WIN_CERTIFICATE list (the bytes the
 * security directory points at, possibly cut to FWIMAGE_CERT_MAX): the first
 * entry of type PKCS_SIGNED_DATA, its first SignerInfo, the certificate
 * whose issuer and serial number match it (or, when none matches or the
 * SignerInfo names it by key id, the first certificate); of that certificate
 * the subject's CN (2.5.4.3), not the issuer's, which comes before it.
 * Non-printable characters become '?'. 1 when a signature was found (out ""
 * when its CN could not be read), 0 when the list holds none, -EINVAL when
 * it is malformed. */
int fwimage_signer_cn(const uint8_t *certs, size_t len, char *out, size_t outlen);

/* All of the above on an image file of size bytes (pread: the fd's offset
 * is left alone), and its firmware note (fwnote.h). 0, or a negative errno
 * with a sentence in err (an image without a valid version is refused, so is
 * one whose note does not parse or names another version; a malformed
 * signature reads as signed with an unknown signer). */
int fwimage_inspect(int fd, uint64_t size, struct fwimage_info *info, char *err, size_t errlen);

/* For `update image=VERSION`: the stored image of that version,
 * <state_dir>/firmware/<VERSION>.efi, into buf. 0 when it is there (a
 * regular file); -EINVAL when version is not a valid version (buf ""),
 * -ENAMETOOLONG when buf is too small, -ENOENT when there is no such image
 * (buf holds the path looked at, for the message), or another negative
 * errno from stat. */
int fwimage_path(const char *state_dir, const char *version, char *buf, size_t len);

#endif
