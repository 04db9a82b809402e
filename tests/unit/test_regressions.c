/* Regression tests for what the fuzzers (tests/fuzz/) and their review found,
 * one test per finding, named after it. The raw input of each finding, where
 * it is one, is also kept under tests/fuzz/regress/TARGET/ for `make fuzz`. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "ctl/proto.h"
#include "vm/qmp.h"

#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 10}, " \
		 "\"package\": \"\"}, \"capabilities\": []}}\r\n"
#define CAPS_OK  "{\"return\": {}, \"id\": 1}\r\n"

/* A fake QEMU that has said everything (text) and then shut its sending
 * side, as the QMP fuzzer does: the client reads it all, then EOF. Its end
 * (*peer) stays open to take the client's commands; close it when done. */
static struct qmp *qmp_scripted(const char *text, int *peer)
{
	struct qmp *q = NULL;
	int sv[2];
	size_t len = strlen(text);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(send(sv[1], text, len, MSG_NOSIGNAL), (ssize_t)len);
	assert_int_equal(shutdown(sv[1], SHUT_WR), 0);
	assert_int_equal(qmp_open(sv[0], 2000, &q), 0);
	*peer = sv[1]; /* nobody reads it: the client's few commands fit */
	return q;
}

/* qmp: an error reply whose class or desc is JSON null (or missing) gave
 * printf a NULL for "%s" (undefined; glibc and musl print "(null)"). */
static void test_qmp_error_reply_null_class_desc(void **state)
{
	static const char *const replies[] = {
		"{\"error\": {\"class\": null, \"desc\": null}, \"id\": 2}\n",
		"{\"error\": {\"class\": null}, \"id\": 2}\n",
		"{\"error\": {}, \"id\": 2}\n",
		"{\"error\": null, \"id\": 2}\n",
		"{\"error\": 5, \"id\": 2}\n",
	};
	(void)state;

	for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		char text[1024], err[256] = "";
		struct qmp *q;
		int r, peer;

		snprintf(text, sizeof(text), "%s%s%s", GREETING, CAPS_OK, replies[i]);
		q = qmp_scripted(text, &peer);
		r = qmp_command(q, "stop", NULL, -1, 2000, NULL, err, sizeof(err));
		if (r != -EREMOTEIO || strstr(err, "(null)"))
			print_error("reply %s: r=%d err='%s'\n", replies[i], r, err);
		assert_int_equal(r, -EREMOTEIO);
		assert_null(strstr(err, "(null)"));
		assert_true(err[0] != '\0');
		qmp_free(q);
		(void)close(peer);
	}
}

/* ctl_proto: json-c takes NaN, Infinity and -Infinity even in strict mode (and
 * 1e999 as an infinity). A request with such an id was accepted and the id
 * echoed into a reply that is not JSON (fuzz_ctl_proto: the echoed value did
 * not compare equal; tests/fuzz/regress/ctl_proto/nan-*). */
static void test_ctl_nonfinite_numbers(void **state)
{
	static const char *const bad[] = {
		"{\"execute\": \"status\", \"id\": NaN}",
		"{\"execute\": \"status\", \"id\": -Infinity}",
		"{\"execute\": \"vm-log\", \"arguments\": {\"name\": \"vm0\", \"bytes\": Infinity}}",
		"{\"execute\": \"status\", \"arguments\": {\"a\": [1, {\"b\": [NaN]}]}}",
		"{\"execute\": \"status\", \"id\": 1e999}",
	};
	static const char good[] = "{\"execute\": \"status\", \"id\": -1.5e300}";
	struct ctl_request req;
	struct cmd_error err;
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r;

		memset(&err, 0, sizeof(err));
		r = ctl_proto_parse(bad[i], strlen(bad[i]), &req, &err);
		if (r != -EBADMSG)
			print_error("%s: r=%d desc='%s'\n", bad[i], r, err.desc);
		assert_int_equal(r, -EBADMSG);
		assert_non_null(strstr(err.desc, "malformed JSON"));
		ctl_request_clear(&req);
	}
	memset(&err, 0, sizeof(err));
	assert_int_equal(ctl_proto_parse(good, sizeof(good) - 1, &req, &err), 0);
	ctl_request_clear(&req);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qmp_error_reply_null_class_desc),
		cmocka_unit_test(test_ctl_nonfinite_numbers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
