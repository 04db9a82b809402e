/* ctl_proto: request parsing errors and reply/event formatting. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "ctl/proto.h"

static int parse(const char *s, struct ctl_request *req, struct cmd_error *err)
{
	memset(err, 0, sizeof(*err));
	return ctl_proto_parse(s, strlen(s), req, err);
}

static void expect_error(const char *line, int want, const char *needle)
{
	struct ctl_request req;
	struct cmd_error err;
	int r = parse(line, &req, &err);

	if (r != want || !strstr(err.desc, needle) || strcmp(err.class_, "GenericError") != 0)
		print_error("line %.60s: r=%d desc='%s' class='%s' (want %d, '%s')\n", line, r,
			    err.desc, err.class_, want, needle);
	assert_int_equal(r, want);
	assert_string_equal(err.class_, "GenericError");
	assert_non_null(strstr(err.desc, needle));
	ctl_request_clear(&req);
}

static void test_parse_good(void **state)
{
	struct ctl_request req;
	struct cmd_error err;

	assert_int_equal(parse("{\"execute\": \"vm-start\", \"arguments\": {\"name\": \"vm0\"}, \"id\": 7}\r",
			       &req, &err), 0);
	assert_string_equal(req.execute, "vm-start");
	assert_non_null(req.args);
	assert_string_equal(json_object_get_string(json_object_object_get(req.args, "name")), "vm0");
	assert_int_equal(json_object_get_int(req.id), 7);
	ctl_request_clear(&req);
	assert_null(req.root);

	assert_int_equal(parse("  {\"execute\":\"status\"}  ", &req, &err), 0);
	assert_string_equal(req.execute, "status");
	assert_null(req.args);
	assert_null(req.id);
	ctl_request_clear(&req);

	/* Any JSON value is a valid id. */
	assert_int_equal(parse("{\"execute\":\"status\",\"id\":{\"a\":[1,2]}}", &req, &err), 0);
	assert_true(json_object_is_type(req.id, json_type_object));
	ctl_request_clear(&req);
	ctl_request_clear(NULL);
}

static void test_parse_blank(void **state)
{
	struct ctl_request req;
	struct cmd_error err;

	assert_int_equal(parse("", &req, &err), -ENODATA);
	ctl_request_clear(&req);
	assert_int_equal(parse(" \t\r", &req, &err), -ENODATA);
	ctl_request_clear(&req);
}

static void test_parse_errors(void **state)
{
	expect_error("{\"execute\": ", -EBADMSG, "malformed JSON");
	expect_error("{\"execute\": x}", -EBADMSG, "malformed JSON: ");
	expect_error("{'execute': 'status'}", -EBADMSG, "malformed JSON"); /* strict */
	expect_error("{\"execute\":\"status\"} {}", -EBADMSG, "trailing data");
	expect_error("{\"execute\":\"status\"}x", -EBADMSG, "trailing data");
	expect_error("\x01\xff\xfe garbage", -EBADMSG, "malformed JSON");
	expect_error("{\"execute\":\"\xff\xfe\"}", -EBADMSG, "malformed JSON"); /* not UTF-8 */
	expect_error("[1, 2]", -EINVAL, "not a JSON object");
	expect_error("42", -EINVAL, "not a JSON object");
	expect_error("\"status\"", -EINVAL, "not a JSON object");
	expect_error("null", -EINVAL, "not a JSON object");
	expect_error("{}", -EINVAL, "missing \"execute\"");
	expect_error("{\"execute\": null}", -EINVAL, "missing \"execute\"");
	expect_error("{\"execute\": 5}", -EINVAL, "\"execute\" must be a string");
	expect_error("{\"execute\": \"x\", \"arguments\": [1]}", -EINVAL,
		     "\"arguments\" must be an object");
	expect_error("{\"execute\": \"x\", \"arguments\": \"a\"}", -EINVAL,
		     "\"arguments\" must be an object");
}

static void test_parse_error_keeps_id(void **state)
{
	struct ctl_request req;
	struct cmd_error err;

	assert_int_equal(parse("{\"execute\": 1, \"id\": \"abc\"}", &req, &err), -EINVAL);
	assert_non_null(req.id);
	assert_string_equal(json_object_get_string(req.id), "abc");
	ctl_request_clear(&req);
}

static void test_parse_deep_nesting(void **state)
{
	size_t n = 60000; /* within the line limit, far beyond the depth limit */
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, '[', n);
	s[n] = '\0';
	expect_error(s, -EBADMSG, "nesting too deep");
	free(s);
}

static void test_parse_too_long(void **state)
{
	struct ctl_request req;
	struct cmd_error err = { 0 };
	size_t n = CTL_LINE_MAX + 1;
	char *s = malloc(n);

	assert_non_null(s);
	memset(s, ' ', n);
	assert_int_equal(ctl_proto_parse(s, n, &req, &err), -ENODATA);
	ctl_request_clear(&req);
	s[0] = '{';
	assert_int_equal(ctl_proto_parse(s, n, &req, &err), -EMSGSIZE);
	assert_non_null(strstr(err.desc, "65536"));
	ctl_request_clear(&req);
	free(s);
}

/* A line can hold NUL bytes: they are data, not terminators. */
static void test_parse_embedded_nul(void **state)
{
	static const char line[] = "{\"execute\":\"status\"}\0junk";
	struct ctl_request req;
	struct cmd_error err = { 0 };

	assert_int_equal(ctl_proto_parse(line, sizeof(line) - 1, &req, &err), -EBADMSG);
	ctl_request_clear(&req);
}

/* json-c strings end at U+0000: "status\u0000x" must not run status, and a VM
 * name with a NUL must not name another VM. An escaped backslash is fine. */
static void test_parse_escaped_nul(void **state)
{
	struct ctl_request req;
	struct cmd_error err;
	(void)state;

	expect_error("{\"execute\": \"status\\u0000\"}", -EBADMSG, "\\u0000");
	expect_error("{\"execute\": \"vm-log\", \"arguments\": {\"name\": \"vm0\\u0000x\"}}", -EBADMSG,
		     "\\u0000");
	expect_error("{\"execute\": \"status\", \"a\\u0000\": 1}", -EBADMSG, "\\u0000");
	assert_int_equal(parse("{\"execute\": \"st\\\\u0000\"}", &req, &err), 0);
	assert_string_equal(req.execute, "st\\u0000");
	ctl_request_clear(&req);
}

static void test_format_return(void **state)
{
	struct json_object *ret = json_object_new_object(), *id = json_object_new_string("x/1");
	char *s;

	json_object_object_add(ret, "path", json_object_new_string("/run/a\nb"));
	s = ctl_proto_format_return(ret, id);
	assert_string_equal(s, "{\"return\":{\"path\":\"/run/a\\nb\"},\"id\":\"x/1\"}\n");
	free(s);
	s = ctl_proto_format_return(NULL, NULL);
	assert_string_equal(s, "{\"return\":{}}\n");
	free(s);
	json_object_put(ret);
	json_object_put(id);
}

static void test_format_error(void **state)
{
	struct cmd_error err = { 0 };
	struct json_object *id = json_object_new_int(3);
	char *s;

	ctl_proto_set_error(&err, "CommandNotFound", "command '%s' not found", "frob");
	s = ctl_proto_format_error(&err, id);
	assert_string_equal(s, "{\"error\":{\"class\":\"CommandNotFound\","
			       "\"desc\":\"command 'frob' not found\"},\"id\":3}\n");
	free(s);
	/* Default class; an unterminated desc buffer is cut at its size. */
	memset(&err, 0, sizeof(err));
	memset(err.desc, 'a', sizeof(err.desc));
	s = ctl_proto_format_error(&err, NULL);
	assert_non_null(strstr(s, "\"class\":\"GenericError\""));
	assert_int_equal(strlen(s), strlen("{\"error\":{\"class\":\"GenericError\",\"desc\":\"\"}}\n") +
					    sizeof(err.desc));
	free(s);
	json_object_put(id);
}

static void test_format_event(void **state)
{
	struct json_object *data = json_object_new_object();
	char *s;

	json_object_object_add(data, "name", json_object_new_string("vm0"));
	s = ctl_proto_format_event("VM_STATE", data, 1700000000, 42);
	assert_string_equal(s, "{\"timestamp\":{\"seconds\":1700000000,\"microseconds\":42},"
			       "\"event\":\"VM_STATE\",\"data\":{\"name\":\"vm0\"}}\n");
	free(s);
	s = ctl_proto_format_event("X", NULL, 0, 0);
	assert_non_null(strstr(s, "\"data\":{}"));
	free(s);
	json_object_put(data);
}

/* Frame all of s, fed in pieces of `step` bytes; the requests found, '|'-joined. */
static void frames(const char *s, size_t step, char *out, size_t outlen)
{
	struct ctl_framer f;
	size_t len = strlen(s), start = 0, avail = 0, n, used;

	out[0] = '\0';
	ctl_framer_reset(&f);
	while (start < len) {
		if (avail < len)
			avail = avail + step > len ? len : avail + step;
		if (!ctl_proto_frame(&f, s + start, avail - start, &n, &used)) {
			if (avail == len)
				break;
			continue;
		}
		assert_true(n <= used && used <= avail - start && used > 0);
		snprintf(out + strlen(out), outlen - strlen(out), "%s%.*s", out[0] ? "|" : "", (int)n, s + start);
		start += used;
		ctl_framer_reset(&f);
	}
}

/* A request ends at its newline, or at the brace closing a valid object
 * (QMP clients need not send newlines); junk runs on to its newline. */
static void test_frame(void **state)
{
	static const struct { const char *in, *want; } cases[] = {
		{ "{\"execute\":\"a\"}\n", "{\"execute\":\"a\"}|" },
		{ "{\"execute\":\"a\"}{\"execute\":\"b\"}", "{\"execute\":\"a\"}|{\"execute\":\"b\"}" },
		{ " {\"a\":\"}{\\\"\",\"b\":[{}]} x\n", " {\"a\":\"}{\\\"\",\"b\":[{}]}| x" },
		{ "{x}{\"a\":1}\n{\"b\":2}", "{x}{\"a\":1}|{\"b\":2}" },
		{ "[1,2]\n\r\n42\n", "[1,2]|\r|42" },
		{ "{\"a\": \"unterminated\n{\"b\":1}", "{\"a\": \"unterminated|{\"b\":1}" },
		{ "{\"a\":{\"b\":1}\n", "{\"a\":{\"b\":1}" },
		{ "{\"partial\":", "" },
	};
	char out[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (size_t step = 1; step <= 64; step *= 4) {
			frames(cases[i].in, step, out, sizeof(out));
			if (strcmp(out, cases[i].want) != 0)
				fail_msg("case %zu step %zu: got '%s', want '%s'", i, step, out, cases[i].want);
		}
}

/* QEMU's greeting shape (monitor/qmp.c qmp_greeting), luoinit's version. */
static void test_format_greeting(void **state)
{
	char *s = ctl_proto_format_greeting();
	char want[256];

	snprintf(want, sizeof(want),
		 "{\"QMP\":{\"version\":{\"qemu\":{\"major\":%d,\"minor\":%d,\"micro\":%d},"
		 "\"package\":\"%s\"},\"capabilities\":[]}}\n", LUOINIT_VERSION_MAJOR,
		 LUOINIT_VERSION_MINOR, LUOINIT_VERSION_MICRO, LUOINIT_PACKAGE);
	assert_non_null(s);
	assert_string_equal(s, want);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_blank),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_error_keeps_id),
		cmocka_unit_test(test_parse_deep_nesting),
		cmocka_unit_test(test_parse_too_long),
		cmocka_unit_test(test_parse_embedded_nul),
		cmocka_unit_test(test_parse_escaped_nul),
		cmocka_unit_test(test_format_return),
		cmocka_unit_test(test_format_error),
		cmocka_unit_test(test_format_event),
		cmocka_unit_test(test_format_greeting),
		cmocka_unit_test(test_frame),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
