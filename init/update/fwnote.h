/* The firmware note: what a firmware image says about itself beyond its
 * version, as text appended to the bzImage before it is signed (mkimage.sh),
 * so the signature covers it (Authenticode hashes the bytes after the last
 * section; the kernel's verify_pefile.c and sbsign alike):
 *
 *   [bzImage][NUL padding][note text][footer]            [certificate table]
 *   footer: "LUOINIT-NOTE" and the text's length, u32 little-endian
 *
 * The footer ends where the certificate table starts (the PE security
 * directory's offset), or at the end of an unsigned file; sbsign may put up to
 * 7 NUL bytes of alignment in between. The text:
 *
 *   luoinit-firmware-note 1
 *   version=2.1.0
 *   cmdline=console=ttyS0 liveupdate=on kho=on ...   (built into the kernel)
 *   kernel-abi=kho=kho-v4 luo=luo-v5 memfd=memfd-v2 release=7.2.13
 *   qemu=10.0.13                                     (the QEMU the guests run on)
 *
 * Unknown keys are skipped (a later note may say more); a known key given
 * twice, a line without '=', a control character, or a value too long is an
 * error. */
#ifndef LUOINIT_FWNOTE_H
#define LUOINIT_FWNOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FWNOTE_MAGIC      "LUOINIT-NOTE"
#define FWNOTE_MAGIC_LEN  12
#define FWNOTE_FOOTER_LEN (FWNOTE_MAGIC_LEN + 4)
#define FWNOTE_HEADER     "luoinit-firmware-note 1"
#define FWNOTE_MAX        8192            /* the text's bytes */
#define FWNOTE_CMDLINE_MAX 2048           /* x86's COMMAND_LINE_SIZE, its NUL included */

struct fwnote {
	bool present;
	char version[65];
	char cmdline[FWNOTE_CMDLINE_MAX];
	char kernel_abi[256];
	char qemu[32];
};

/* The note's text: 0 with *ret filled (present true), or -EINVAL with a
 * sentence in err. */
int fwnote_parse(const char *text, size_t len, struct fwnote *ret, char *err, size_t errlen);

/* The note of the image in fd whose signed data ends at data_end (the
 * certificate table's offset, or the file's size when unsigned): 1 with *ret
 * filled, 0 when the image has no note (ret->present false), or a negative
 * errno with a sentence in err (a footer whose length points outside the
 * file, or a text that does not parse). */
int fwnote_read(int fd, uint64_t data_end, struct fwnote *ret, char *err, size_t errlen);

#endif
