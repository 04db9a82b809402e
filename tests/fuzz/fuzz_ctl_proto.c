/* libFuzzer target: one control-protocol request line (design.md §4) through
 * ctl_proto_parse and a QMP session (before and after negotiation), then the
 * replies the server would send for it.
 *
 * Checks beyond memory safety: the parse result is one of the documented
 * codes; every error is named; accepted requests hold no NUL in a string;
 * before negotiation only qmp_capabilities runs, and the handler only after;
 * the reply lines (greeting, return, error, event) are single lines of valid
 * JSON that echo the request's id unchanged. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ctl/proto.h"
#include "ctl/session.h"

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "fuzz_ctl_proto: %s:%d: check failed: %s\n", \
				__FILE__, __LINE__, #cond);                          \
			abort();                                                     \
		}                                                                    \
	} while (0)

/* A reply line: exactly one '\n', at the end; the rest one JSON object. */
static json_object *check_line(char *line)
{
	size_t n;
	json_object *o;
	json_tokener *tok;

	CHECK(line);
	n = strlen(line);
	CHECK(n >= 3 && line[n - 1] == '\n');
	CHECK(memchr(line, '\n', n - 1) == NULL);
	tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH * 2);
	CHECK(tok);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, line, (int)(n - 1));
	CHECK(o && json_tokener_get_error(tok) == json_tokener_success);
	CHECK(json_tokener_get_parse_end(tok) == n - 1);
	CHECK(json_object_is_type(o, json_type_object));
	json_tokener_free(tok);
	free(line);
	return o;
}

static void check_id(json_object *reply, json_object *id)
{
	json_object *v = NULL;
	int has = json_object_object_get_ex(reply, "id", &v);

	if (!id) {
		CHECK(!has);
		return;
	}
	if (id == ctl_proto_null_id()) {
		CHECK(has && v == NULL);
		return;
	}
	CHECK(has && json_object_equal(v, id));
}

/* No string in an accepted request holds a NUL (json-c's C strings would
 * cut it short: "vm0\u0000x" acting on vm0). */
static void check_no_nul(json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_string:
		CHECK(strlen(json_object_get_string(o)) == (size_t)json_object_get_string_len(o));
		break;
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(o); i++)
			check_no_nul(json_object_array_get_idx(o, i));
		break;
	case json_type_object: {
		json_object_object_foreach(o, key, val) {
			(void)key;
			check_no_nul(val);
		}
		break;
	}
	default:
		break;
	}
}

static void check_error(const struct cmd_error *err)
{
	CHECK(memchr(err->class_, '\0', sizeof(err->class_)));
	CHECK(memchr(err->desc, '\0', sizeof(err->desc)));
	CHECK(err->class_[0] && err->desc[0]);
}

static int handled;

static int handler(const char *name, json_object *args, json_object **ret, struct cmd_error *err)
{
	handled++;
	*ret = args ? json_object_get(args) : NULL;
	return 0;
}

/* The request in a new session, then in a negotiated one. */
static void check_session(const struct ctl_request *req)
{
	struct ctl_session s;
	struct cmd_error err;
	json_object *ret;
	int caps = strcmp(req->execute, "qmp_capabilities") == 0, r;

	ctl_session_reset(&s);
	handled = 0;
	memset(&err, 0, sizeof(err));
	r = ctl_session_execute(&s, handler, req->execute, req->args, &ret, &err);
	CHECK(handled == 0);
	CHECK(caps || (r < 0 && strcmp(err.class_, "CommandNotFound") == 0));
	CHECK(r < 0 || (caps && s.negotiated));
	if (r < 0)
		check_error(&err);
	json_object_put(ret);
	s.negotiated = true;
	memset(&err, 0, sizeof(err));
	r = ctl_session_execute(&s, handler, req->execute, req->args, &ret, &err);
	CHECK(handled == !caps && s.negotiated);
	CHECK(!caps || (r < 0 && strcmp(err.class_, "CommandNotFound") == 0));
	json_object_put(ret);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_request req;
	struct cmd_error err;
	json_object *o, *v;
	char *buf;
	int r;

	buf = malloc(size ? size : 1); /* exact size: ASan catches any overread */
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	memset(&err, 0, sizeof(err));
	r = ctl_proto_parse(buf, size, &req, &err);
	switch (r) {
	case 0:
		CHECK(req.root && json_object_is_type(req.root, json_type_object));
		CHECK(req.execute);
		CHECK(json_object_object_get_ex(req.root, "execute", &v) &&
		      json_object_is_type(v, json_type_string));
		CHECK(!req.args || json_object_is_type(req.args, json_type_object));
		check_no_nul(req.root);
		check_session(&req);
		/* The server answers with the arguments echoed, say. */
		o = check_line(ctl_proto_format_return(req.args, req.id));
		CHECK(json_object_object_get_ex(o, "return", &v));
		CHECK(req.args ? json_object_equal(v, req.args) : json_object_is_type(v, json_type_object));
		check_id(o, req.id);
		json_object_put(o);
		o = check_line(ctl_proto_format_event(req.execute, req.args, INT64_MAX, -1));
		json_object_put(o);
		o = check_line(ctl_proto_format_greeting());
		CHECK(json_object_object_get_ex(o, "QMP", &v));
		json_object_put(o);
		ctl_proto_set_error(&err, "CommandNotFound", "unknown command \"%s\"", req.execute);
		break;
	case -ENODATA:
		CHECK(!req.root && !req.id && !req.execute && !req.args);
		ctl_request_clear(&req);
		free(buf);
		return 0;
	case -EINVAL:
	case -EBADMSG:
	case -EMSGSIZE:
	case -ENOMEM:
		/* (execute may be set: "arguments" is checked after it) */
		CHECK(!req.args);
		CHECK(!req.id || req.root);
		check_error(&err);
		break;
	default:
		CHECK(!"unexpected return code");
	}
	o = check_line(ctl_proto_format_error(&err, req.id));
	CHECK(json_object_object_get_ex(o, "error", &v));
	check_id(o, req.id);
	json_object_put(o);
	ctl_request_clear(&req);
	CHECK(!req.root && !req.id);
	free(buf);
	return 0;
}
