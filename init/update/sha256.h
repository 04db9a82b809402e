/* SHA-256 (FIPS 180-4), small and self-contained: firmware images are
 * checked with it as they arrive (update/fwpush.c) and by `luoinit ctl
 * image-push` before they leave. */
#ifndef LUOINIT_SHA256_H
#define LUOINIT_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32
#define SHA256_HEX_LEN 64

struct sha256 {
	uint32_t h[8];
	uint64_t len;       /* bytes hashed so far */
	uint8_t buf[64];
	size_t n;           /* bytes in buf */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t out[SHA256_LEN]);
/* out: SHA256_HEX_LEN lowercase hex digits and a NUL. */
void sha256_hex(const uint8_t d[SHA256_LEN], char out[SHA256_HEX_LEN + 1]);
/* The whole of an fd from offset 0 (pread: its offset is left alone), as
 * hex. 0 or a negative errno. */
int sha256_fd_hex(int fd, char out[SHA256_HEX_LEN + 1]);

#endif
