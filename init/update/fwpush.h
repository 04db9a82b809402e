/* Firmware delivery (README, "Firmware images: delivery"): an image pushed
 * over the control protocol in chunks, one request each, into
 * <state_dir>/firmware/ as a temporary file; checked (size, SHA-256, the
 * image's own version) and then fsync'd, renamed to <VERSION>.efi and the
 * directory fsync'd. One push at a time; a push whose client goes away or
 * stays idle is abandoned and its temporary file removed. Memory is bounded
 * by one chunk. Also the store: what status lists, and the retention. */
#ifndef LUOINIT_FWPUSH_H
#define LUOINIT_FWPUSH_H

#include <stddef.h>
#include <stdint.h>

#include "update/fwimage.h"
#include "update/sha256.h"

struct json_object;

#define FWPUSH_MAX_SIZE    (256ull << 20)     /* the largest image */
#define FWPUSH_MIN_SIZE    0x400ull           /* smaller cannot hold a setup header */
#define FWPUSH_CHUNK_MAX   (32 * 1024)        /* decoded bytes per chunk: 43692 in base64 */
#define FWPUSH_CHUNK_B64   ((FWPUSH_CHUNK_MAX + 2) / 3 * 4)
#define FWPUSH_IDLE_MS     30000              /* a push without a chunk for this long is abandoned */
#define FWPUSH_KEEP        3                  /* images kept (and the running one) */
#define FWPUSH_MARGIN_MIN  (16ull << 20)      /* free space left on /state: this, */
#define FWPUSH_MARGIN_PCT  5                  /* or this percentage of it if more */
#define FWPUSH_TMP_PREFIX  ".push-"

/* Strict base64 (RFC 4648 §4): a multiple of 4 characters of the standard
 * alphabet, '=' padding only at the end, no whitespace. 0 with *outlen, or
 * -EINVAL with what was wrong in err, -E2BIG when it decodes to more than
 * outcap bytes. */
int fwpush_base64_decode(const char *in, size_t len, uint8_t *out, size_t outcap, size_t *outlen,
			 char *err, size_t errlen);

/* The commands. owner: the connection's id (ctl_server_current_client), a
 * push is only continued by the connection that began it. Each returns 0,
 * or a negative errno with a sentence in err (the commands' desc).
 *
 * begin: size and the expected SHA-256 (64 hex digits); refused before a
 * byte is written when another push runs, size is out of bounds, or /state
 * lacks size plus the margin. *handle names the push. */
int fwpush_begin(const char *state_dir, uint64_t owner, uint64_t size, const char *sha256_hex,
		 uint64_t *handle, char *err, size_t errlen);
/* chunk: the bytes at offset (which must be where the last chunk ended), as
 * base64. A bad chunk (base64, offset, size) writes nothing and the push goes
 * on; a failed write abandons it. *received: bytes so far. */
int fwpush_chunk(uint64_t owner, uint64_t handle, uint64_t offset, const char *b64, size_t b64len,
		 uint64_t *received, char *err, size_t errlen);
/* end: all size bytes arrived, their SHA-256 is the one announced, the
 * image has a valid version and no other image of that version is stored:
 * then it is made durable under its name and the retention runs. *ret:
 * {version, file, size, sha256, signed, signed_by, removed: [file...]}.
 * Every failure ends the push with nothing kept. */
int fwpush_end(uint64_t owner, uint64_t handle, struct json_object **ret, char *err, size_t errlen);
/* The image's live-update ABI (a kernel-abi.sh line): stored at end as
 * VERSION.efi.abi, where update reads a target's ABI. Without it an update
 * into the image cannot use LUO (mode auto falls back to full-RAM). */
int fwpush_set_abi(uint64_t owner, uint64_t handle, const char *abi, char *err, size_t errlen);
/* abort: the client gives up; the temporary file is removed. */
int fwpush_abort(uint64_t owner, uint64_t handle, char *err, size_t errlen);

/* remove: delete the stored image VERSION (and its .abi), to make room on
 * /state; never the running one. *ret: {file, size}. -ENOENT when there is
 * no such image, -EBUSY for the running one, -EINVAL for a bad name. */
int fwpush_remove(const char *state_dir, const char *version, struct json_object **ret, char *err,
		  size_t errlen);

/* The connection owner is gone (closed, or the port's host left). */
void fwpush_owner_gone(uint64_t owner);
/* Abandon any push now (before /state is unmounted), saying why in the log. */
void fwpush_abandon(const char *why);
/* For tests: the idle timeout (0: FWPUSH_IDLE_MS). */
void fwpush_set_idle_timeout(uint64_t ms);

/* The running kernel's version: uname -v's '#VERSION' token. 0, or
 * -ENOENT when it has none that is a valid version. */
int fwpush_running_version(char *out, size_t len);

/* status.firmware: {dir, keep, running: {version}, images: [{version, file,
 * size, sha256, signed, signed_by, mtime}] newest first, push: {handle,
 * size, received} or null}. SHA-256s are cached by file identity. */
struct json_object *fwpush_status_json(const char *state_dir);

#endif
