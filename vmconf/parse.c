/* From bytes to a validated struct vmconf: the guards against hostile text,
 * json-c's tokener, then the text scan and the schema. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "internal.h"

#define STR_(x) #x
#define STR(x) STR_(x)

static bool is_blank(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!strchr(" \t\r\n", buf[i]) || buf[i] == '\0')
			return false;
	return true;
}

/* json-c's tree in *ret (NULL for the JSON text "null"); false with the
 * reason recorded when the text is not one JSON value. */
static bool vc_tokenize(struct vc *c, const char *buf, size_t len, struct json_object **ret)
{
	char where[96];
	const char *nul = memchr(buf, '\0', len);

	if (nul) {
		vc_where(buf, len, (size_t)(nul - buf), where, sizeof(where));
		vc_error(c, "text without NUL bytes", "a NUL byte at %s", where);
		return false;
	}
	if (is_blank(buf, len)) {
		vc_error_missing(c, "a JSON object");
		return false;
	}
	/* json-c's depth: containers, and a scalar inside counts as one more. */
	struct json_tokener *tok = json_tokener_new_ex(VMCONF_MAX_DEPTH);
	if (!tok) {
		c->oom = true;
		return false;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	struct json_object *root = json_tokener_parse_ex(tok, buf, (int)len);
	enum json_tokener_error err = json_tokener_get_error(tok);
	size_t off = json_tokener_get_parse_end(tok);
	if (err == json_tokener_continue) {
		/* A NUL tells the tokener the text ended (a bare number needs it). */
		root = json_tokener_parse_ex(tok, "", 1);
		err = json_tokener_get_error(tok);
		off = len;
	}
	if (err == json_tokener_continue)
		err = json_tokener_error_parse_eof;
	bool ok = false;
	if (err != json_tokener_success) {
		vc_where(buf, len, off, where, sizeof(where));
		if (err == json_tokener_error_depth)
			vc_error(c, "at most " STR(VMCONF_MAX_DEPTH) " levels of nesting",
				 "more at %s", where);
		else if (err == json_tokener_error_parse_eof)
			vc_error(c, "valid JSON", "the end of the text at %s", where);
		else
			vc_error(c, "valid JSON", "a syntax error at %s: %s", where,
				 json_tokener_error_desc(err));
	} else if (!is_blank(buf + off, len - off)) {
		vc_where(buf, len, off, where, sizeof(where));
		vc_error(c, "nothing after the JSON object", "more text at %s", where);
	} else {
		ok = true;
	}
	json_tokener_free(tok);
	if (!ok) {
		json_object_put(root);
		root = NULL;
	}
	*ret = root;
	return ok;
}

/* Spelled out: VMCONF_MAX_FILE is an expression, not a literal. */
#define EXP_SIZE "at most 1048576 bytes"
_Static_assert(VMCONF_MAX_FILE == 1048576, "EXP_SIZE must match VMCONF_MAX_FILE");

int vmconf_parse_buffer(const char *buf, size_t len, struct vmconf **ret, struct vmconf_errors *errs)
{
	struct vmconf *conf = NULL;
	struct vc c;
	int r = 0;

	if (!buf && len)
		return -EINVAL;
	vc_init(&c, errs);
	if (len > (size_t)VMCONF_MAX_FILE) {
		vc_error(&c, EXP_SIZE, "%zu bytes", len);
	} else {
		struct json_object *root = NULL;
		if (vc_tokenize(&c, buf ? buf : "", len, &root)) {
			vc_scan(&c, buf, len);
			r = vc_schema(&c, root, &conf);
			json_object_put(root);
		}
	}
	if (c.oom)
		r = -ENOMEM;
	else if (c.n_errors)
		r = -EINVAL;
	vc_done(&c);
	if (r < 0) {
		vmconf_free(conf);
		return r;
	}
	*ret = conf;
	return 0;
}

static int vc_io_error(struct vmconf_errors *errs, const char *path, int err, const char *expected)
{
	if (errs) {
		struct vc c;
		vc_init(&c, errs);
		snprintf(c.path, sizeof(c.path), "%s", path);
		vc_error(&c, expected, "%s", strerror(err));
		vc_done(&c);
	}
	return -err;
}

int vmconf_parse_file(const char *path, struct vmconf **ret, struct vmconf_errors *errs)
{
	/* One byte more than allowed, to tell "at the limit" from "over it". */
	size_t cap = (size_t)VMCONF_MAX_FILE + 1, len = 0;
	char *buf;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return vc_io_error(errs, path, errno, "a readable file");
	buf = malloc(cap);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (len < cap) {
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = vc_io_error(errs, path, errno, "a readable file");
			free(buf);
			close(fd);
			return r;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (len > (size_t)VMCONF_MAX_FILE) {
		free(buf);
		if (errs) {
			struct vc c;
			vc_init(&c, errs);
			vc_error(&c, EXP_SIZE, "more");
			r = c.oom ? -ENOMEM : -EINVAL;
			vc_done(&c);
			return r;
		}
		return -EINVAL;
	}
	r = vmconf_parse_buffer(buf, len, ret, errs);
	free(buf);
	return r;
}
