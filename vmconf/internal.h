/* vmconf internals shared by the parser's files; not part of the API. */
#ifndef VMCONF_INTERNAL_H
#define VMCONF_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "vmconf.h"

struct json_object;

#define VC_PATH_MAX   2048 /* longer paths (hostile files only) are cut */
#define VC_KEY_SHOW   64   /* longer keys are shortened in paths */
#define VC_FOUND_SHOW 40   /* "found" texts are shortened to about this */
#define VC_MAX_BIGINTS 100

/* An integer literal json-c could not hold (it saturates): its text, so
 * that errors show what the file says rather than INT64_MAX. */
struct vc_bigint {
	char *path;
	char *text;
};

/* One validation run: the error list, the current JSON path. */
struct vc {
	struct vmconf_errors *errs;
	size_t n_errors;       /* counted even past VMCONF_MAX_ERRORS */
	bool oom;
	char path[VC_PATH_MAX];
	size_t path_len;
	struct vc_bigint bigints[VC_MAX_BIGINTS];
	size_t n_bigints;
};

void vc_init(struct vc *c, struct vmconf_errors *errs);
void vc_done(struct vc *c);

/* Path stack: push returns the mark to pop back to. */
size_t vc_push_key(struct vc *c, const char *key, size_t len);
size_t vc_push_index(struct vc *c, size_t i);
void vc_pop(struct vc *c, size_t mark);

/* Record an error at the current path; found is printf-formatted. */
void vc_error(struct vc *c, const char *expected, const char *found_fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Same, with the JSON text of v (shortened) as found; v == NULL is JSON null. */
void vc_error_value(struct vc *c, const char *expected, struct json_object *v);
void vc_error_missing(struct vc *c, const char *expected);
/* False once the list is full: callers may then skip costly error texts
 * and only count with vc_error_count(). */
bool vc_listing(const struct vc *c);
void vc_error_count(struct vc *c);

/* Escape bytes as a JSON string literal into a malloc'd string, keeping at
 * most max input bytes (then "..." is appended inside the quotes). */
char *vc_json_quote(const char *s, size_t len, size_t max);

/* Text pass over JSON that json-c accepted: duplicate keys, NUL in keys,
 * integer literals beyond int64. */
void vc_scan(struct vc *c, const char *buf, size_t len);

/* Schema pass over the tree. *ret is set even when errors were recorded
 * (the caller frees it then); returns -ENOMEM or 0. */
int vc_schema(struct vc *c, struct json_object *root, struct vmconf **ret);

/* "line L, column C (byte N)" for an offset into buf, written to out. */
void vc_where(const char *buf, size_t len, size_t off, char *out, size_t outsz);

#endif
