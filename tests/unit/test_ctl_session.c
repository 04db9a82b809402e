/* The QMP session state machine (ctl/session.c) and the commands only QMP
 * needs (query-commands, query-version, the unknown-command error), without
 * sockets. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "ctl/commands.h"
#include "ctl/proto.h"
#include "ctl/session.h"

static int calls;
static char last[64];

static int handler(const char *name, struct json_object *args, struct json_object **ret,
		   struct cmd_error *err)
{
	calls++;
	strncpy(last, name, sizeof(last) - 1);
	*ret = json_object_new_object();
	return 0;
}

/* Run name with args (JSON text or NULL); returns r, with err/ret checked. */
static int run(struct ctl_session *s, const char *name, const char *args_json, struct cmd_error *err)
{
	struct json_object *args = args_json ? json_tokener_parse(args_json) : NULL;
	struct json_object *ret = (struct json_object *)1;
	int r;

	memset(err, 0, sizeof(*err));
	r = ctl_session_execute(s, handler, name, args, &ret, err);
	if (r == 0)
		assert_non_null(ret);
	else
		assert_null(ret);
	json_object_put(ret);
	json_object_put(args);
	return r;
}

static void expect_err(int r, const struct cmd_error *err, const char *cls, const char *desc)
{
	assert_true(r < 0);
	assert_string_equal(err->class_, cls);
	assert_string_equal(err->desc, desc);
}

static void test_commands_wait_for_negotiation(void **state)
{
	struct ctl_session s;
	struct cmd_error err;

	ctl_session_reset(&s);
	calls = 0;
	/* Anything else first: QEMU's CommandNotFound, and nothing runs. */
	for (const char *const *n = (const char *const[]){ "status", "query-commands", "nope", "", NULL }; *n; n++)
		expect_err(run(&s, *n, NULL, &err), &err, "CommandNotFound",
			   "Expecting capabilities negotiation with 'qmp_capabilities'");
	assert_int_equal(calls, 0);
	assert_false(s.negotiated);
	assert_int_equal(run(&s, "qmp_capabilities", NULL, &err), 0);
	assert_true(s.negotiated);
	assert_int_equal(run(&s, "status", "{\"x\": 1}", &err), 0);
	assert_int_equal(calls, 1);
	assert_string_equal(last, "status");
}

static void test_capabilities_once(void **state)
{
	struct ctl_session s;
	struct cmd_error err;

	ctl_session_reset(&s);
	assert_int_equal(run(&s, "qmp_capabilities", "{\"enable\": []}", &err), 0);
	expect_err(run(&s, "qmp_capabilities", NULL, &err), &err, "CommandNotFound",
		   "Capabilities negotiation is already complete, command ignored");
	assert_true(s.negotiated); /* still negotiated */
	/* A new session (a greeting) starts over. */
	ctl_session_reset(&s);
	assert_false(s.negotiated);
	expect_err(run(&s, "status", NULL, &err), &err, "CommandNotFound",
		   "Expecting capabilities negotiation with 'qmp_capabilities'");
	assert_int_equal(run(&s, "qmp_capabilities", NULL, &err), 0);
}

/* A failed qmp_capabilities leaves the session where it was. */
static void test_capabilities_errors(void **state)
{
	struct ctl_session s;
	struct cmd_error err;

	ctl_session_reset(&s);
	expect_err(run(&s, "qmp_capabilities", "{\"enable\": [\"oob\"]}", &err), &err, "GenericError",
		   "Capability oob not available");
	expect_err(run(&s, "qmp_capabilities", "{\"enable\": \"oob\"}", &err), &err, "GenericError",
		   "Invalid parameter type for 'enable', expected: array");
	expect_err(run(&s, "qmp_capabilities", "{\"enable\": [1]}", &err), &err, "GenericError",
		   "Invalid parameter type for 'enable[0]', expected: string");
	expect_err(run(&s, "qmp_capabilities", "{\"force\": true}", &err), &err, "GenericError",
		   "Parameter 'force' is unexpected");
	assert_false(s.negotiated);
	assert_int_equal(run(&s, "qmp_capabilities", "{}", &err), 0);
	assert_true(s.negotiated);
}

static void test_query_commands(void **state)
{
	static const char *const want[] = { "qmp_capabilities", "query-commands", "query-version", "status",
					    "vm-start", "vm-stop", "vm-restart", "vmm-update", "vm-log",
					    "log", "poweroff", "reboot", "update", "x-hang",
					    "image-push-begin", "image-push-chunk", "image-push-end",
					    "image-push-abort", "image-remove", "image-install" };
	struct json_object *ret = NULL;
	struct cmd_error err = { 0 };
	size_t n;

	assert_int_equal(commands_execute("query-commands", NULL, &ret, &err), 0);
	assert_true(json_object_is_type(ret, json_type_array));
	n = json_object_array_length(ret);
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		size_t j;

		for (j = 0; j < n; j++) {
			struct json_object *name;

			assert_true(json_object_object_get_ex(json_object_array_get_idx(ret, j), "name", &name));
			if (strcmp(json_object_get_string(name), want[i]) == 0)
				break;
		}
		if (j == n)
			fail_msg("query-commands lacks %s", want[i]);
	}
	json_object_put(ret);
}

static void test_query_version_and_unknown(void **state)
{
	struct json_object *ret = NULL, *q, *v;
	struct cmd_error err = { 0 };

	assert_int_equal(commands_execute("query-version", NULL, &ret, &err), 0);
	assert_true(json_object_object_get_ex(ret, "qemu", &q));
	assert_true(json_object_object_get_ex(q, "major", &v));
	assert_int_equal(json_object_get_int(v), LUOINIT_VERSION_MAJOR);
	assert_true(json_object_object_get_ex(ret, "package", &v));
	assert_string_equal(json_object_get_string(v), LUOINIT_PACKAGE);
	json_object_put(ret);
	ret = NULL;
	assert_true(commands_execute("frob", NULL, &ret, &err) < 0);
	assert_null(ret);
	assert_string_equal(err.class_, "CommandNotFound");
	assert_string_equal(err.desc, "The command frob has not been found");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commands_wait_for_negotiation),
		cmocka_unit_test(test_capabilities_once),
		cmocka_unit_test(test_capabilities_errors),
		cmocka_unit_test(test_query_commands),
		cmocka_unit_test(test_query_version_and_unknown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
