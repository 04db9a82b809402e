/* The control protocol's wire format (QMP). See ctl/proto.h. */
#include "ctl/proto.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

void ctl_proto_set_error(struct cmd_error *err, const char *class_, const char *fmt, ...)
{
	va_list ap;

	snprintf(err->class_, sizeof(err->class_), "%s", class_ ? class_ : "GenericError");
	va_start(ap, fmt);
	vsnprintf(err->desc, sizeof(err->desc), fmt, ap);
	va_end(ap);
}

void ctl_request_clear(struct ctl_request *req)
{
	if (!req)
		return;
	json_object_put(req->root);
	*req = (struct ctl_request){ 0 };
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* json-c keeps strings and keys NUL-terminated: "status\u0000x" would read as
 * "status" and {"name": "vm0\u0000x"} would act on vm0. Refuse U+0000 anywhere. */
static int has_escaped_nul(const char *buf, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (buf[i] != '\\')
			continue;
		if (buf[i + 1] == 'u' && i + 6 <= len && memcmp(buf + i + 2, "0000", 4) == 0)
			return 1;
		i++; /* skip the escaped character */
	}
	return 0;
}

/* json-c takes NaN, Infinity and -Infinity even when strict, and 1e999 as an
 * infinity: none is an RFC 8259 number, and an id like that would be echoed
 * into a reply no strict JSON parser reads. */
static int has_nonfinite(struct json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_double:
		return !isfinite(json_object_get_double(o));
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(o); i++)
			if (has_nonfinite(json_object_array_get_idx(o, i)))
				return 1;
		return 0;
	case json_type_object: {
		json_object_object_foreach(o, key, val) {
			(void)key;
			if (has_nonfinite(val))
				return 1;
		}
		return 0;
	}
	default:
		return 0;
	}
}

/* json-c represents JSON null as a NULL pointer, which would read as "no id".
 * A request's "id": null is this marker instead, written back as null. */
struct json_object *ctl_proto_null_id(void)
{
	static int marker;

	return (struct json_object *)(void *)&marker;
}

/* Parse exactly one JSON value from buf, strictly (RFC 8259, valid UTF-8). */
static int parse_json(const char *buf, size_t len, struct json_object **ret_obj,
		      struct cmd_error *err)
{
	struct json_tokener *tok;
	struct json_object *obj;
	enum json_tokener_error jerr;
	size_t end;

	if (len > CTL_LINE_MAX) {
		ctl_proto_set_error(err, NULL, "request line longer than %d bytes", CTL_LINE_MAX);
		return -EMSGSIZE;
	}
	tok = json_tokener_new_ex(CTL_JSON_DEPTH);
	if (!tok) {
		ctl_proto_set_error(err, NULL, "out of memory");
		return -ENOMEM;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8 |
				    JSON_TOKENER_ALLOW_TRAILING_CHARS);
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	/* A bare number or literal only ends at a terminator: give it one. */
	if (!obj && jerr == json_tokener_continue) {
		obj = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
		end = len;
	}
	json_tokener_free(tok);
	/* A JSON null parses to NULL with success. */
	if (!obj && jerr != json_tokener_success) {
		if (jerr == json_tokener_continue)
			ctl_proto_set_error(err, NULL, "malformed JSON: unexpected end of line");
		else
			ctl_proto_set_error(err, NULL, "malformed JSON: %s",
					    json_tokener_error_desc(jerr));
		return -EBADMSG;
	}
	for (; end < len; end++) {
		if (!is_space(buf[end])) {
			json_object_put(obj);
			ctl_proto_set_error(err, NULL,
					    "malformed JSON: trailing data after the request object");
			return -EBADMSG;
		}
	}
	if (has_nonfinite(obj)) { /* depth is bounded by CTL_JSON_DEPTH */
		json_object_put(obj);
		ctl_proto_set_error(err, NULL, "malformed JSON: NaN, Infinity or a number out of range");
		return -EBADMSG;
	}
	*ret_obj = obj;
	return 0;
}

void ctl_framer_reset(struct ctl_framer *f)
{
	*f = (struct ctl_framer){ 0 };
}

enum { FRAME_START, FRAME_OBJECT, FRAME_LINE };

int ctl_proto_frame(struct ctl_framer *f, const char *buf, size_t len, size_t *msg_len,
		    size_t *used)
{
	struct cmd_error err;
	struct json_object *o;
	const char *nl;

	while (f->pos < len) {
		char c = buf[f->pos];

		if (c == '\n') { /* a raw newline is in no valid JSON string either */
			*msg_len = f->pos;
			*used = f->pos + 1;
			return 1;
		}
		switch (f->mode) {
		case FRAME_START:
			if (c == '{') {
				f->mode = FRAME_OBJECT;
				f->depth = 1;
			} else if (!is_space(c)) {
				f->mode = FRAME_LINE;
			}
			f->pos++;
			break;
		case FRAME_OBJECT:
			f->pos++;
			if (f->in_str) {
				if (f->esc)
					f->esc = 0;
				else if (c == '\\')
					f->esc = 1;
				else if (c == '"')
					f->in_str = 0;
				break;
			}
			if (c == '"')
				f->in_str = 1;
			else if (c == '{' || c == '[')
				f->depth++;
			else if ((c == '}' || c == ']') && --f->depth == 0) {
				/* Balanced: a request if it is JSON, else junk to the newline. */
				if (parse_json(buf, f->pos, &o, &err) == 0) {
					json_object_put(o);
					*msg_len = *used = f->pos;
					return 1;
				}
				f->mode = FRAME_LINE;
			}
			break;
		default:
			nl = memchr(buf + f->pos, '\n', len - f->pos);
			f->pos = nl ? (size_t)(nl - buf) : len;
			break;
		}
	}
	return 0;
}

int ctl_proto_parse(const char *line, size_t len, struct ctl_request *req,
		    struct cmd_error *err)
{
	struct json_object *root, *v;
	size_t i;
	int r;

	*req = (struct ctl_request){ 0 };
	for (i = 0; i < len && is_space(line[i]); i++)
		;
	if (i == len)
		return -ENODATA;
	r = parse_json(line, len, &root, err);
	if (r < 0)
		return r;
	req->root = root;
	if (!root || !json_object_is_type(root, json_type_object)) {
		ctl_proto_set_error(err, NULL, "request is not a JSON object");
		return -EINVAL;
	}
	if (json_object_object_get_ex(root, "id", &v))
		req->id = v ? v : ctl_proto_null_id(); /* even a JSON null is echoed */
	/* After the id is known, so that the error carries it. */
	if (has_escaped_nul(line, len)) {
		ctl_proto_set_error(err, NULL, "malformed request: strings must not contain \\u0000");
		return -EBADMSG;
	}
	if (!json_object_object_get_ex(root, "execute", &v) || !v) {
		ctl_proto_set_error(err, NULL, "missing \"execute\"");
		return -EINVAL;
	}
	if (!json_object_is_type(v, json_type_string)) {
		ctl_proto_set_error(err, NULL, "\"execute\" must be a string");
		return -EINVAL;
	}
	req->execute = json_object_get_string(v);
	if (json_object_object_get_ex(root, "arguments", &v)) {
		if (!json_object_is_type(v, json_type_object)) {
			ctl_proto_set_error(err, NULL, "\"arguments\" must be an object");
			return -EINVAL;
		}
		req->args = v;
	}
	return 0;
}

/* Serialise obj on one line with '\n', consuming the caller's reference. */
static char *format_line(struct json_object *obj)
{
	const char *s;
	size_t n;
	char *line = NULL;

	if (!obj)
		return NULL;
	s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
						 JSON_C_TO_STRING_NOSLASHESCAPE);
	if (s) {
		n = strlen(s);
		line = malloc(n + 2);
		if (line) {
			memcpy(line, s, n);
			line[n] = '\n';
			line[n + 1] = '\0';
		}
	}
	json_object_put(obj);
	return line;
}

/* Add key=val to obj, consuming val (NULL: an allocation failed). */
static int put(struct json_object *obj, const char *key, struct json_object *val)
{
	if (!val)
		return -ENOMEM;
	if (json_object_object_add(obj, key, val) < 0) {
		json_object_put(val);
		return -ENOMEM;
	}
	return 0;
}

/* A new reference to a borrowed value, {} for NULL. */
static struct json_object *ref_or_empty(struct json_object *v)
{
	return v ? json_object_get(v) : json_object_new_object();
}

/* A JSON null id is NULL in json-c, so it is treated as absent. */
static int put_id(struct json_object *obj, struct json_object *id)
{
	if (id == ctl_proto_null_id())
		return json_object_object_add(obj, "id", NULL) < 0 ? -ENOMEM : 0;
	return id ? put(obj, "id", json_object_get(id)) : 0;
}

char *ctl_proto_format_return(struct json_object *ret, struct json_object *id)
{
	struct json_object *o = json_object_new_object();

	if (!o || put(o, "return", ref_or_empty(ret)) < 0 || put_id(o, id) < 0) {
		json_object_put(o);
		return NULL;
	}
	return format_line(o);
}

char *ctl_proto_format_error(const struct cmd_error *err, struct json_object *id)
{
	struct json_object *o = json_object_new_object();
	struct json_object *e = json_object_new_object();
	const char *cls = err->class_[0] ? err->class_ : "GenericError";

	/* strnlen: the handler may have filled a buffer without its terminator. */
	if (!o || !e ||
	    put(e, "class", json_object_new_string_len(cls, (int)strnlen(cls, sizeof(err->class_)))) < 0 ||
	    put(e, "desc", json_object_new_string_len(err->desc, (int)strnlen(err->desc, sizeof(err->desc)))) < 0) {
		json_object_put(o);
		json_object_put(e);
		return NULL;
	}
	if (put(o, "error", e) < 0 || put_id(o, id) < 0) {
		json_object_put(o);
		return NULL;
	}
	return format_line(o);
}

char *ctl_proto_format_event(const char *name, struct json_object *data,
			     int64_t seconds, int64_t microseconds)
{
	struct json_object *o = json_object_new_object();
	struct json_object *ts = json_object_new_object();

	if (!o || !ts || put(ts, "seconds", json_object_new_int64(seconds)) < 0 ||
	    put(ts, "microseconds", json_object_new_int64(microseconds)) < 0) {
		json_object_put(o);
		json_object_put(ts);
		return NULL;
	}
	if (put(o, "timestamp", ts) < 0 || put(o, "event", json_object_new_string(name)) < 0 ||
	    put(o, "data", ref_or_empty(data)) < 0) {
		json_object_put(o);
		return NULL;
	}
	return format_line(o);
}

struct json_object *ctl_proto_version(void)
{
	struct json_object *v = json_object_new_object();
	struct json_object *q = json_object_new_object();

	if (!v || !q || put(q, "major", json_object_new_int(LUOINIT_VERSION_MAJOR)) < 0 ||
	    put(q, "minor", json_object_new_int(LUOINIT_VERSION_MINOR)) < 0 ||
	    put(q, "micro", json_object_new_int(LUOINIT_VERSION_MICRO)) < 0) {
		json_object_put(v);
		json_object_put(q);
		return NULL;
	}
	if (put(v, "qemu", q) < 0 || put(v, "package", json_object_new_string(LUOINIT_PACKAGE)) < 0) {
		json_object_put(v);
		return NULL;
	}
	return v;
}

char *ctl_proto_format_greeting(void)
{
	struct json_object *o = json_object_new_object();
	struct json_object *g = json_object_new_object();

	/* No capabilities offered: out-of-band execution would need a second
	 * queue per client, and nothing here takes long enough to want it. */
	if (!o || !g || put(g, "version", ctl_proto_version()) < 0 ||
	    put(g, "capabilities", json_object_new_array()) < 0) {
		json_object_put(o);
		json_object_put(g);
		return NULL;
	}
	if (put(o, "QMP", g) < 0) {
		json_object_put(o);
		return NULL;
	}
	return format_line(o);
}
