/* Errors as data: the list, the JSON path stack, the "found" texts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "internal.h"

void vc_init(struct vc *c, struct vmconf_errors *errs)
{
	memset(c, 0, sizeof(*c));
	c->errs = errs;
}

void vc_done(struct vc *c)
{
	for (size_t i = 0; i < c->n_bigints; i++) {
		free(c->bigints[i].path);
		free(c->bigints[i].text);
	}
	c->n_bigints = 0;
}

/* Append to the path, cutting silently at the buffer's end: a path is for
 * humans and only hostile files get that deep or that long. */
static void vc_path_append(struct vc *c, const char *s)
{
	size_t room = sizeof(c->path) - 1 - c->path_len;
	size_t n = strlen(s);

	if (n > room)
		n = room;
	memcpy(c->path + c->path_len, s, n);
	c->path_len += n;
	c->path[c->path_len] = '\0';
}

static bool vc_key_is_plain(const char *key, size_t len)
{
	if (len == 0 || len > VC_KEY_SHOW)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = key[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

size_t vc_push_key(struct vc *c, const char *key, size_t len)
{
	size_t mark = c->path_len;

	if (vc_key_is_plain(key, len)) {
		char buf[VC_KEY_SHOW + 2];
		snprintf(buf, sizeof(buf), "%s%.*s", mark ? "." : "", (int)len, key);
		vc_path_append(c, buf);
		return mark;
	}
	char *q = vc_json_quote(key, len, VC_KEY_SHOW);
	vc_path_append(c, "[");
	vc_path_append(c, q ? q : "\"?\"");
	vc_path_append(c, "]");
	if (!q)
		c->oom = true;
	free(q);
	return mark;
}

size_t vc_push_index(struct vc *c, size_t i)
{
	size_t mark = c->path_len;
	char buf[32];

	snprintf(buf, sizeof(buf), "[%zu]", i);
	vc_path_append(c, buf);
	return mark;
}

void vc_pop(struct vc *c, size_t mark)
{
	c->path_len = mark;
	c->path[mark] = '\0';
}

static int vc_error_add(struct vmconf_errors *errs, const char *path, const char *expected,
			char *found)
{
	struct vmconf_error *v = realloc(errs->v, (errs->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	errs->v = v;
	v[errs->n].path = strdup(path);
	v[errs->n].expected = strdup(expected);
	v[errs->n].found = found;
	if (!v[errs->n].path || !v[errs->n].expected) {
		free(v[errs->n].path);
		free(v[errs->n].expected);
		return -ENOMEM;
	}
	errs->n++;
	return 0;
}

/* Takes ownership of found (may be NULL after a failed allocation). */
static void vc_error_take(struct vc *c, const char *expected, char *found)
{
	c->n_errors++;
	if (!c->errs || c->n_errors > VMCONF_MAX_ERRORS + 1) {
		free(found);
		return;
	}
	if (!found) {
		c->oom = true;
		return;
	}
	if (c->n_errors == VMCONF_MAX_ERRORS + 1) {
		free(found);
		char buf[64];
		snprintf(buf, sizeof(buf), "at most %d errors", VMCONF_MAX_ERRORS);
		found = strdup("more (the rest are not listed)");
		if (!found || vc_error_add(c->errs, "", buf, found) < 0) {
			free(found);
			c->oom = true;
		}
		return;
	}
	if (vc_error_add(c->errs, c->path, expected, found) < 0) {
		free(found);
		c->oom = true;
	}
}

bool vc_listing(const struct vc *c)
{
	return c->errs && c->n_errors <= VMCONF_MAX_ERRORS;
}

void vc_error_count(struct vc *c)
{
	vc_error_take(c, "", NULL);
}

void vc_error(struct vc *c, const char *expected, const char *found_fmt, ...)
{
	va_list ap;
	char *found = NULL;

	va_start(ap, found_fmt);
	if (vasprintf(&found, found_fmt, ap) < 0)
		found = NULL;
	va_end(ap);
	vc_error_take(c, expected, found);
}

void vc_error_missing(struct vc *c, const char *expected)
{
	vc_error_take(c, expected, strdup("nothing"));
}

/* Cut s to about VC_FOUND_SHOW bytes on a UTF-8 boundary, marking the cut. */
static char *vc_shorten(const char *s)
{
	size_t n = strlen(s);

	if (n <= VC_FOUND_SHOW)
		return strdup(s);
	n = VC_FOUND_SHOW - 3;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	char *r = NULL;
	return asprintf(&r, "%.*s...", (int)n, s) < 0 ? NULL : r;
}

void vc_error_value(struct vc *c, const char *expected, struct json_object *v)
{
	/* json-c saturates integers it cannot hold: show the file's own text. */
	if (json_object_is_type(v, json_type_int)) {
		for (size_t i = 0; i < c->n_bigints; i++)
			if (strcmp(c->bigints[i].path, c->path) == 0) {
				vc_error_take(c, expected, vc_shorten(c->bigints[i].text));
				return;
			}
	}
	const char *text = json_object_to_json_string_ext(
		v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	vc_error_take(c, expected, text ? vc_shorten(text) : NULL);
}

char *vc_json_quote(const char *s, size_t len, size_t max)
{
	bool cut = len > max;
	size_t n = cut ? max : len;
	char *r = malloc(n * 6 + 6);
	size_t o = 0;

	if (!r)
		return NULL;
	r[o++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\') {
			r[o++] = '\\';
			r[o++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f) {
			o += (size_t)sprintf(r + o, "\\u%04x", ch);
		} else {
			r[o++] = (char)ch;
		}
	}
	if (cut) {
		memcpy(r + o, "...", 3);
		o += 3;
	}
	r[o++] = '"';
	r[o] = '\0';
	return r;
}

void vc_where(const char *buf, size_t len, size_t off, char *out, size_t outsz)
{
	size_t line = 1, col = 1;

	if (off > len)
		off = len;
	for (size_t i = 0; i < off; i++) {
		if (buf[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	snprintf(out, outsz, "line %zu, column %zu (byte %zu)", line, col, off);
}

char *vmconf_error_format(const struct vmconf_error *e)
{
	char *s = NULL;
	int r;

	if (!e)
		return NULL;
	if (e->path && e->path[0])
		r = asprintf(&s, "%s: expected %s, got %s", e->path, e->expected, e->found);
	else
		r = asprintf(&s, "expected %s, got %s", e->expected, e->found);
	return r < 0 ? NULL : s;
}

void vmconf_errors_clear(struct vmconf_errors *errs)
{
	if (!errs)
		return;
	for (size_t i = 0; i < errs->n; i++) {
		free(errs->v[i].path);
		free(errs->v[i].expected);
		free(errs->v[i].found);
	}
	free(errs->v);
	errs->v = NULL;
	errs->n = 0;
}
