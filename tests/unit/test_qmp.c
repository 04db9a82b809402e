/* QMP client against a scripted fake QEMU (a forked child on a socketpair) and
 * against a real QEMU (skipped when it is not installed). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "vm/cpr.h"
#include "vm/qmp.h"

#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, " \
		 "\"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n"

/* ---- the fake server, run in the child: blocking I/O, exits 0 when happy ---- */

static void srv_send(int fd, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (int off = 0; off < n;) {
		ssize_t w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
		if (w < 0)
			_exit(10);
		off += (int)w;
	}
}

/* Reads one command line, checks its name, returns its id. */
static long long srv_cmd(int fd, const char *execute)
{
	char line[4096];
	size_t n = 0;
	json_object *o, *v;
	long long id;

	for (;;) {
		ssize_t r = read(fd, line + n, 1);
		if (r <= 0)
			_exit(11);
		if (line[n] == '\n')
			break;
		if (++n == sizeof(line) - 1)
			_exit(12);
	}
	line[n] = '\0';
	o = json_tokener_parse(line);
	if (!o || !json_object_object_get_ex(o, "execute", &v) ||
	    strcmp(json_object_get_string(v), execute) != 0)
		_exit(13);
	if (!json_object_object_get_ex(o, "id", &v))
		_exit(14);
	id = (long long)json_object_get_int64(v);
	json_object_put(o);
	return id;
}

static void srv_greet(int fd)
{
	srv_send(fd, GREETING);
	srv_send(fd, "{\"return\": {}, \"id\": %lld}\r\n", srv_cmd(fd, "qmp_capabilities"));
}

static void srv_event(int fd, const char *name, int n)
{
	srv_send(fd, "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"%s\", "
		     "\"data\": {\"n\": %d}}\r\n", name, n);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

typedef void (*script_fn)(int fd);

static pid_t fake_pid;

static int fake_start(script_fn fn)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fake_pid = fork();
	assert_true(fake_pid >= 0);
	if (fake_pid == 0) {
		close(sv[0]);
		fn(sv[1]);
		_exit(0);
	}
	close(sv[1]);
	return sv[0];
}

static struct qmp *fake_open(script_fn fn)
{
	struct qmp *q = NULL;

	assert_int_equal(qmp_open(fake_start(fn), 2000, &q), 0);
	return q;
}

/* The child's exit status tells whether it saw what it expected. */
static void fake_finish(struct qmp *q)
{
	int st;

	qmp_free(q);
	assert_int_equal(waitpid(fake_pid, &st, 0), fake_pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---- scripts and tests ---- */

static void s_normal(int fd)
{
	srv_greet(fd);
	srv_send(fd, "{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": %lld}\r\n",
		 srv_cmd(fd, "query-status"));
	srv_cmd(fd, "quit");
}

static void test_normal(void **state)
{
	struct qmp *q = fake_open(s_normal);
	json_object *r = NULL, *v;
	char err[128] = "";
	int maj, min, mic;

	qmp_version(q, &maj, &min, &mic);
	assert_int_equal(maj, 10);
	assert_int_equal(min, 0);
	assert_int_equal(mic, 2);
	assert_true(qmp_fd(q) >= 0);
	assert_int_equal(qmp_command(q, "query-status", NULL, -1, 2000, &r, err, sizeof(err)), 0);
	assert_true(json_object_object_get_ex(r, "status", &v));
	assert_string_equal(json_object_get_string(v), "running");
	json_object_put(r);
	/* the child reads quit then exits without answering: that is -EPIPE */
	assert_int_equal(qmp_command(q, "quit", NULL, -1, 2000, NULL, err, sizeof(err)), -EPIPE);
	assert_non_null(strstr(err, "closed"));
	assert_int_equal(qmp_command(q, "query-status", NULL, -1, 2000, NULL, err, sizeof(err)), -EPIPE);
	fake_finish(q);
}

/* QEMU writes its stderr blocking: a pipe nobody reads stops it before its
 * reply. qmp_set_side has the waits read it. */
#define SIDE_BYTES (256 * 1024)
static int side_pipe[2] = { -1, -1 };

static void side_write(void)
{
	static char junk[SIDE_BYTES];

	memset(junk, 'x', sizeof(junk));
	for (size_t off = 0; off < sizeof(junk);) {
		ssize_t n = write(side_pipe[1], junk + off, sizeof(junk) - off);
		if (n <= 0)
			_exit(3);
		off += (size_t)n;
	}
}

static void s_side(int fd)
{
	long long id;

	close(side_pipe[0]);
	srv_greet(fd);
	id = srv_cmd(fd, "query-status");
	side_write();
	srv_send(fd, "{\"return\": {}, \"id\": %lld}\r\n", id);
	id = srv_cmd(fd, "query-status");
	side_write();
	srv_send(fd, "{\"return\": {}, \"id\": %lld}\r\n", id);
	srv_cmd(fd, "quit");
}

static int side_read(void *data)
{
	size_t *total = data;
	char buf[4096];
	ssize_t n = read(side_pipe[0], buf, sizeof(buf));

	if (n > 0)
		*total += (size_t)n;
	return n == 0 ? -1 : 0;
}

static void test_side_fd_read_while_waiting(void **state)
{
	struct qmp *q;
	char err[128] = "", buf[4096];
	size_t total = 0;
	ssize_t n;

	assert_int_equal(pipe2(side_pipe, O_CLOEXEC), 0);
	q = fake_open(s_side);
	close(side_pipe[1]);
	/* Unread, the pipe fills and the reply never comes. */
	assert_int_equal(qmp_command(q, "query-status", NULL, -1, 300, NULL, err, sizeof(err)), -ETIMEDOUT);
	qmp_set_side(q, side_pipe[0], side_read, &total);
	/* Read meanwhile: the first reply (late, dropped) and the second come. */
	assert_int_equal(qmp_command(q, "query-status", NULL, -1, 5000, NULL, err, sizeof(err)), 0);
	assert_true(total >= 2 * SIDE_BYTES - 65536);
	assert_int_equal(qmp_command(q, "quit", NULL, -1, 2000, NULL, err, sizeof(err)), -EPIPE);
	while ((n = read(side_pipe[0], buf, sizeof(buf))) > 0)
		total += (size_t)n;
	assert_int_equal(total, 2 * SIDE_BYTES);
	close(side_pipe[0]);
	fake_finish(q);
}

static void s_events(int fd)
{
	long long id;

	srv_greet(fd);
	id = srv_cmd(fd, "stop");
	srv_event(fd, "STOP", 1);
	srv_send(fd, "{\"return\": {}, \"id\": %lld}\r\n", id + 1000); /* a stranger's reply */
	srv_event(fd, "MIGRATION", 2);
	srv_send(fd, "\r\n");
	srv_send(fd, "{\"return\": {\"mine\": true}, \"id\": %lld}\r\n", id);
	srv_event(fd, "A", 3);
	srv_event(fd, "B", 4);
	srv_event(fd, "C", 5);
	/* part of an event: the rest comes after a pause */
	srv_send(fd, "{\"event\": \"D\", ");
	sleep_ms(100);
	srv_send(fd, "\"data\": {\"n\": 6}}\r\n");
	sleep_ms(200);
}

static void test_events_interleaved(void **state)
{
	struct qmp *q = fake_open(s_events);
	json_object *r = NULL, *d = NULL, *v;
	char name[16], err[128];
	int n = 0;

	assert_int_equal(qmp_command(q, "stop", NULL, -1, 2000, &r, err, sizeof(err)), 0);
	assert_true(json_object_object_get_ex(r, "mine", NULL));
	json_object_put(r);
	/* events that came before the reply were queued, in order */
	assert_int_equal(qmp_next_event(q, name, sizeof(name), &d), 0);
	assert_string_equal(name, "STOP");
	assert_true(json_object_object_get_ex(d, "n", &v));
	assert_int_equal(json_object_get_int(v), 1);
	json_object_put(d);
	assert_int_equal(qmp_next_event(q, name, sizeof(name), NULL), 0);
	assert_string_equal(name, "MIGRATION");
	assert_int_equal(qmp_next_event(q, name, sizeof(name), NULL), -EAGAIN);
	/* poll until D is complete and the child has gone */
	for (int i = 0; i < 100; i++) {
		int r2 = qmp_poll_events(q);
		if (r2 == -EPIPE)
			break;
		assert_true(r2 >= 0);
		n += r2;
		sleep_ms(20);
	}
	assert_int_equal(qmp_poll_events(q), -EPIPE);
	/* what came after the reply: queued by the polls, in order, D whole */
	assert_true(n <= 4);
	assert_int_equal(qmp_next_event(q, name, sizeof(name), NULL), 0);
	assert_string_equal(name, "A");
	assert_int_equal(qmp_next_event(q, name, sizeof(name), &d), 0);
	assert_string_equal(name, "B");
	assert_true(json_object_object_get_ex(d, "n", &v));
	assert_int_equal(json_object_get_int(v), 4);
	json_object_put(d);
	assert_int_equal(qmp_next_event(q, name, sizeof(name), NULL), 0);
	assert_string_equal(name, "C");
	assert_int_equal(qmp_next_event(q, name, sizeof(name), &d), 0);
	assert_string_equal(name, "D");
	assert_non_null(d);
	json_object_put(d);
	assert_int_equal(qmp_next_event(q, name, sizeof(name), NULL), -EAGAIN);
	fake_finish(q);
}

/* Reads one command as srv_cmd does, but with recvmsg first: *ret_fd gets
 * the fd that came with its first byte, or -1. */
static long long srv_cmd_fd(int fd, const char *execute, int *ret_fd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} cm;
	char c;
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b) };
	struct cmsghdr *h;

	if (recvmsg(fd, &mh, 0) != 1 || c != '{')
		_exit(15);
	*ret_fd = -1;
	h = CMSG_FIRSTHDR(&mh);
	if (h && h->cmsg_type == SCM_RIGHTS)
		memcpy(ret_fd, CMSG_DATA(h), sizeof(int));
	/* srv_cmd parses from the line's start: hand it the rest behind a '{' */
	{
		int sv[2];
		char line[4096] = "{";
		size_t n = 1;
		long long id;
		for (;;) {
			if (read(fd, line + n, 1) != 1)
				_exit(11);
			if (line[n++] == '\n' || n == sizeof(line))
				break;
		}
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || write(sv[1], line, n) != (ssize_t)n)
			_exit(16);
		id = srv_cmd(sv[0], execute);
		close(sv[0]);
		close(sv[1]);
		return id;
	}
}

/* Every command is read before any is answered: a client that waited for
 * each reply before sending the next would never get one. */
static void s_batch(int fd)
{
	long long a, b, c;
	int got = -1;

	srv_greet(fd);
	a = srv_cmd(fd, "migrate-set-capabilities");
	b = srv_cmd_fd(fd, "add-fd", &got);
	c = srv_cmd(fd, "migrate-incoming");
	if (got < 0)
		_exit(20);
	srv_send(fd, "{\"return\": {\"n\": 1}, \"id\": %lld}\r\n", a);
	srv_event(fd, "MIGRATION", 1);
	srv_send(fd, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no fdset\"}, \"id\": %lld}\r\n", b);
	srv_send(fd, "{\"return\": {}, \"id\": %lld}\r\n", c);
	/* the same, all well */
	a = srv_cmd(fd, "remove-fd");
	b = srv_cmd(fd, "query-status");
	srv_send(fd, "{\"return\": {}, \"id\": %lld}\r\n", a);
	srv_send(fd, "{\"return\": {\"status\": \"running\"}, \"id\": %lld}\r\n", b);
	srv_send(fd, "{\"return\": {}, \"id\": %lld}\r\n", srv_cmd(fd, "query-status"));
	srv_cmd(fd, "quit");
}

static void test_batch(void **state)
{
	struct qmp *q = fake_open(s_batch);
	json_object *r1 = NULL, *r3 = NULL, *st = NULL, *v;
	int pfd[2];
	char err[128] = "", name[32];

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	{
		struct qmp_cmd c[] = {
			{ "migrate-set-capabilities", NULL, -1, &r1 },
			{ "add-fd", NULL, pfd[0], NULL },
			{ "migrate-incoming", NULL, -1, &r3 },
		};
		/* the second's error is the one reported; no return is kept */
		assert_int_equal(qmp_batch(q, c, 3, 2000, err, sizeof(err)), -EREMOTEIO);
		assert_string_equal(err, "GenericError: no fdset");
		assert_null(r1);
		assert_null(r3);
	}
	/* the event between the replies is queued */
	assert_int_equal(qmp_next_event(q, name, sizeof(name), NULL), 0);
	assert_string_equal(name, "MIGRATION");
	{
		struct qmp_cmd c[] = { { "remove-fd", NULL, -1, NULL }, { "query-status", NULL, -1, &st } };
		assert_int_equal(qmp_batch(q, c, 2, 2000, err, sizeof(err)), 0);
		assert_true(json_object_object_get_ex(st, "status", &v));
		assert_string_equal(json_object_get_string(v), "running");
		json_object_put(st);
	}
	/* no reply of the batches was left behind for the next command */
	assert_int_equal(qmp_command(q, "query-status", NULL, -1, 2000, NULL, err, sizeof(err)), 0);
	assert_int_equal(qmp_batch(q, NULL, 0, 2000, err, sizeof(err)), -EINVAL);
	(void)qmp_command(q, "quit", NULL, -1, 2000, NULL, err, sizeof(err));
	close(pfd[0]);
	close(pfd[1]);
	fake_finish(q);
}

static void s_send_await(int fd)
{
	long long id;

	srv_greet(fd);
	id = srv_cmd(fd, "x-exit-preconfig");
	sleep_ms(50);
	srv_event(fd, "RESUME", 1);
	srv_send(fd, "{\"return\": {\"made\": true}, \"id\": %lld}\r\n", id);
	srv_cmd(fd, "quit");
}

/* The two halves: the reply is read when asked for, not when sent. */
static void test_send_await(void **state)
{
	struct qmp *q = fake_open(s_send_await);
	json_object *r = NULL;
	int64_t id = -1;
	char err[128] = "", name[32];

	assert_int_equal(qmp_send(q, "x-exit-preconfig", NULL, 2000, &id, err, sizeof(err)), 0);
	assert_true(id > 0);
	assert_int_equal(qmp_await(q, "x-exit-preconfig", id, 2000, &r, err, sizeof(err)), 0);
	assert_true(json_object_object_get_ex(r, "made", NULL));
	json_object_put(r);
	assert_int_equal(qmp_next_event(q, name, sizeof(name), NULL), 0);
	assert_string_equal(name, "RESUME");
	/* QEMU gone before its reply: the await says so at once */
	assert_int_equal(qmp_send(q, "quit", NULL, 2000, &id, err, sizeof(err)), 0);
	assert_int_equal(qmp_await(q, "quit", id, 2000, NULL, err, sizeof(err)), -EPIPE);
	assert_int_equal(qmp_send(q, "quit", NULL, 2000, NULL, err, sizeof(err)), -EINVAL);
	fake_finish(q);
}

/* A save given up: the migration cancelled and the state's fd taken out of
 * QEMU, both in one round trip; a failing remove-fd (nothing was added)
 * leaves the connection in step for the next command. */
static void s_save_abort(int fd)
{
	long long a, b;

	srv_greet(fd);
	a = srv_cmd(fd, "migrate-cancel");
	b = srv_cmd(fd, "remove-fd");
	srv_send(fd, "{\"return\": {}, \"id\": %lld}\r\n", a);
	srv_send(fd, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no fdset 1\"}, \"id\": %lld}\r\n", b);
	srv_send(fd, "{\"return\": {\"status\": \"running\"}, \"id\": %lld}\r\n", srv_cmd(fd, "query-status"));
}

static void test_save_abort(void **state)
{
	struct qmp *q = fake_open(s_save_abort);
	json_object *r = NULL, *v;
	char err[128] = "";

	cpr_save_abort(q);
	assert_int_equal(qmp_command(q, "query-status", NULL, -1, 2000, &r, err, sizeof(err)), 0);
	assert_true(json_object_object_get_ex(r, "status", &v));
	assert_string_equal(json_object_get_string(v), "running");
	json_object_put(r);
	fake_finish(q);
}

static void s_wait_event(int fd)
{
	srv_greet(fd);
	srv_send(fd, "{\"event\": \"MIGRATION\", \"data\": {\"status\": \"setup\"}}\r\n");
	srv_event(fd, "STOP", 1);
	srv_send(fd, "{\"event\": \"MIGRATION\", \"data\": {\"status\": \"active\"}}\r\n");
	sleep_ms(100);
	srv_send(fd, "{\"event\": \"MIGRATION\", \"data\": {\"status\": \"completed\"}}\r\n");
	srv_cmd(fd, "quit");
}

static void test_wait_event(void **state)
{
	static const char *const ends[] = { "completed", "failed", NULL };
	struct qmp *q = fake_open(s_wait_event);
	json_object *d = NULL, *v;
	char st[16] = "", name[32], err[128] = "";

	assert_int_equal(qmp_wait_event(q, "MIGRATION", "status", ends, 2000, st, sizeof(st), err, sizeof(err)), 0);
	assert_string_equal(st, "completed");
	/* the others stay queued, in order */
	assert_int_equal(qmp_next_event(q, name, sizeof(name), &d), 0);
	assert_string_equal(name, "MIGRATION");
	assert_true(json_object_object_get_ex(d, "status", &v));
	assert_string_equal(json_object_get_string(v), "setup");
	json_object_put(d);
	assert_int_equal(qmp_next_event(q, name, sizeof(name), NULL), 0);
	assert_string_equal(name, "STOP");
	assert_int_equal(qmp_next_event(q, name, sizeof(name), &d), 0);
	assert_true(json_object_object_get_ex(d, "status", &v));
	assert_string_equal(json_object_get_string(v), "active");
	json_object_put(d);
	assert_int_equal(qmp_next_event(q, name, sizeof(name), NULL), -EAGAIN);
	/* none comes: the wait ends at its timeout and says for what */
	assert_int_equal(qmp_wait_event(q, "MIGRATION", "status", ends, 150, st, sizeof(st), err, sizeof(err)),
			 -ETIMEDOUT);
	assert_non_null(strstr(err, "MIGRATION"));
	(void)qmp_command(q, "quit", NULL, -1, 2000, NULL, err, sizeof(err));
	/* QEMU gone: no wait */
	assert_int_equal(qmp_wait_event(q, "MIGRATION", "status", ends, 2000, st, sizeof(st), err, sizeof(err)),
			 -EPIPE);
	fake_finish(q);
}

static void s_many_events(int fd)
{
	long long id;

	srv_greet(fd);
	id = srv_cmd(fd, "query-status");
	for (int i = 0; i < QMP_EVENTS_MAX + 36; i++)
		srv_event(fd, "X", i);
	srv_send(fd, "{\"return\": {}, \"id\": %lld}\r\n", id);
	srv_cmd(fd, "quit");
}

static void test_event_queue_bounded(void **state)
{
	struct qmp *q = fake_open(s_many_events);
	json_object *d = NULL, *v;
	char name[16];
	int n = 0;

	assert_int_equal(qmp_command(q, "query-status", NULL, -1, 2000, NULL, NULL, 0), 0);
	/* the oldest were dropped */
	assert_int_equal(qmp_next_event(q, name, sizeof(name), &d), 0);
	assert_true(json_object_object_get_ex(d, "n", &v));
	assert_int_equal(json_object_get_int(v), 36);
	json_object_put(d);
	while (qmp_next_event(q, name, sizeof(name), NULL) == 0)
		n++;
	assert_int_equal(n, QMP_EVENTS_MAX - 1);
	assert_int_equal(qmp_command(q, "quit", NULL, -1, 2000, NULL, NULL, 0), -EPIPE);
	fake_finish(q);
}

static void s_error(int fd)
{
	srv_greet(fd);
	srv_send(fd, "{\"id\": %lld, \"error\": {\"class\": \"CommandNotFound\", "
		     "\"desc\": \"The command nope has not been found\"}}\r\n", srv_cmd(fd, "nope"));
	/* QEMU could not parse a request: an error without id */
	srv_cmd(fd, "weird");
	srv_send(fd, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\r\n");
	srv_cmd(fd, "quit");
}

static void test_error_reply(void **state)
{
	struct qmp *q = fake_open(s_error);
	json_object *r = NULL;
	char err[128];

	assert_int_equal(qmp_command(q, "nope", NULL, -1, 2000, &r, err, sizeof(err)), -EREMOTEIO);
	assert_null(r);
	assert_string_equal(err, "CommandNotFound: The command nope has not been found");
	assert_int_equal(qmp_command(q, "weird", NULL, -1, 2000, &r, err, sizeof(err)), -EREMOTEIO);
	assert_string_equal(err, "GenericError: JSON parse error");
	(void)qmp_command(q, "quit", NULL, -1, 2000, NULL, NULL, 0);
	fake_finish(q);
}

static void s_garbage(int fd)
{
	long long id;

	srv_greet(fd);
	srv_cmd(fd, "query-status");
	srv_send(fd, "this is not json\r\n");
	srv_cmd(fd, "query-status");
	srv_send(fd, "[1, 2]\r\n");
	id = srv_cmd(fd, "query-status");
	srv_send(fd, "{\"return\": 1} trailing\r\n{\"return\": 7, \"id\": %lld}\r\n", id);
	srv_send(fd, "{\"return\": {}, \"id\": %lld}\r\n", srv_cmd(fd, "quit"));
}

static void test_garbage(void **state)
{
	struct qmp *q = fake_open(s_garbage);
	char err[128];

	assert_int_equal(qmp_command(q, "query-status", NULL, -1, 2000, NULL, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "this is not json"));
	assert_int_equal(qmp_command(q, "query-status", NULL, -1, 2000, NULL, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "[1, 2]"));
	assert_int_equal(qmp_command(q, "query-status", NULL, -1, 2000, NULL, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "trailing"));
	/* each bad line is reported once; then the client goes on, the stale reply dropped */
	assert_int_equal(qmp_command(q, "quit", NULL, -1, 2000, NULL, err, sizeof(err)), 0);
	fake_finish(q);
}

static void s_early_close(int fd)
{
	srv_greet(fd);
	srv_cmd(fd, "migrate");
	srv_send(fd, "{\"return\": {}, \"i"); /* dies mid-reply */
}

static void test_early_close(void **state)
{
	struct qmp *q = fake_open(s_early_close);
	json_object *args = json_object_new_object();
	char err[128];

	json_object_object_add(args, "uri", json_object_new_string("file:/x"));
	assert_int_equal(qmp_command(q, "migrate", args, -1, 2000, NULL, err, sizeof(err)), -EPIPE);
	assert_non_null(strstr(err, "closed"));
	json_object_put(args); /* borrowed */
	fake_finish(q);
}

static void s_late(int fd)
{
	long long id1, id2;

	srv_greet(fd);
	id1 = srv_cmd(fd, "query-migrate");
	sleep_ms(300);
	srv_send(fd, "{\"return\": \"late\", \"id\": %lld}\r\n", id1);
	id2 = srv_cmd(fd, "query-migrate");
	srv_send(fd, "{\"return\": \"fresh\", \"id\": %lld}\r\n", id2);
	srv_cmd(fd, "quit");
}

static void test_late_reply(void **state)
{
	struct qmp *q = fake_open(s_late);
	json_object *r = NULL;
	char err[128];

	assert_int_equal(qmp_command(q, "query-migrate", NULL, -1, 100, &r, err, sizeof(err)), -ETIMEDOUT);
	assert_null(r);
	assert_non_null(strstr(err, "no reply"));
	assert_int_equal(qmp_command(q, "query-migrate", NULL, -1, 2000, &r, err, sizeof(err)), 0);
	assert_string_equal(json_object_get_string(r), "fresh");
	json_object_put(r);
	(void)qmp_command(q, "quit", NULL, -1, 2000, NULL, NULL, 0);
	fake_finish(q);
}

static void s_oversized(int fd)
{
	static char big[QMP_LINE_MAX + 4096];
	long long id;

	srv_greet(fd);
	id = srv_cmd(fd, "query-status");
	big[0] = '"';
	memset(big + 1, 'x', sizeof(big) - 1);
	for (size_t off = 0; off < sizeof(big);) {
		ssize_t w = send(fd, big + off, sizeof(big) - off, MSG_NOSIGNAL);
		if (w < 0)
			_exit(20);
		off += (size_t)w;
	}
	srv_send(fd, "\"\r\n{\"return\": \"old\", \"id\": %lld}\r\n", id);
	id = srv_cmd(fd, "query-status");
	srv_send(fd, "{\"return\": \"new\", \"id\": %lld}\r\n", id);
	srv_cmd(fd, "quit");
}

static void test_oversized_line(void **state)
{
	struct qmp *q = fake_open(s_oversized);
	json_object *r = NULL;
	char err[128];

	assert_int_equal(qmp_command(q, "query-status", NULL, -1, 5000, &r, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "longer"));
	/* the rest of the long line is skipped, the old reply dropped */
	assert_int_equal(qmp_command(q, "query-status", NULL, -1, 5000, &r, err, sizeof(err)), 0);
	assert_string_equal(json_object_get_string(r), "new");
	json_object_put(r);
	(void)qmp_command(q, "quit", NULL, -1, 2000, NULL, NULL, 0);
	fake_finish(q);
}

static void s_silent(int fd)
{
	char c;
	(void)read(fd, &c, 1); /* until the client hangs up */
}

static void test_no_greeting(void **state)
{
	struct qmp *q = NULL;
	int fd = fake_start(s_silent);
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(qmp_open(fd, 200, &q), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &b);
	assert_null(q);
	assert_int_equal(fcntl(fd, F_GETFD), -1); /* closed on failure */
	long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	assert_true(ms >= 190 && ms < 1500);
	fake_finish(NULL);
}

static void s_close_at_once(int fd) { }

static void test_closed_before_greeting(void **state)
{
	struct qmp *q = NULL;

	assert_int_equal(qmp_open(fake_start(s_close_at_once), 2000, &q), -EPIPE);
	fake_finish(NULL);
}

static void s_bad_greeting(int fd)
{
	srv_send(fd, "{\"return\": {}}\r\n");
	sleep_ms(500);
}

static void test_bad_greeting(void **state)
{
	struct qmp *q = NULL;

	assert_int_equal(qmp_open(fake_start(s_bad_greeting), 2000, &q), -EPROTO);
	fake_finish(NULL);
}

static void test_free_null(void **state)
{
	qmp_free(NULL);
	qmp_clear_events(NULL);
	assert_int_equal(qmp_open(-1, 100, NULL), -EINVAL);
}

/* ---- the handshake driven step by step, as the event loop does ---- */

static void put(int fd, const char *text)
{
	assert_int_equal(send(fd, text, strlen(text), MSG_NOSIGNAL), (ssize_t)strlen(text));
}

/* The command line the client sent (without its newline), or "" when none. */
static void got(int fd, char *buf, size_t len)
{
	ssize_t n = recv(fd, buf, len - 1, MSG_DONTWAIT);

	buf[n > 0 ? n : 0] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
}

static void test_handshake_steps(void **state)
{
	struct qmp *q = NULL;
	char err[160] = "", line[512], name[64];
	json_object *o, *v, *d = NULL;
	int sv[2], maj, min, mic;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(qmp_connect(sv[0], &q), 0);
	assert_true(fcntl(sv[0], F_GETFD) & FD_CLOEXEC);
	/* Nothing yet: not done, and it does not wait. */
	assert_int_equal(qmp_handshake(q, err, sizeof(err)), 0);
	/* Half a greeting: still not done, nothing sent. */
	put(sv[1], "{\"QMP\": {\"version\": {\"qemu\": ");
	assert_int_equal(qmp_handshake(q, err, sizeof(err)), 0);
	got(sv[1], line, sizeof(line));
	assert_string_equal(line, "");
	/* The rest: the capabilities go out, with an id. */
	put(sv[1], "{\"micro\": 2, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": []}}\r\n");
	assert_int_equal(qmp_handshake(q, err, sizeof(err)), 0);
	got(sv[1], line, sizeof(line));
	o = json_tokener_parse(line);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "execute", &v));
	assert_string_equal(json_object_get_string(v), "qmp_capabilities");
	assert_true(json_object_object_get_ex(o, "id", &v));
	/* An event and a stray reply before ours: the event is kept. */
	snprintf(line, sizeof(line), "{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n"
		 "{\"return\": {}, \"id\": %lld}\r\n{\"return\": {}, \"id\": %lld}\r\n",
		 (long long)json_object_get_int64(v) + 100, (long long)json_object_get_int64(v));
	json_object_put(o);
	put(sv[1], line);
	assert_int_equal(qmp_handshake(q, err, sizeof(err)), 1);
	assert_int_equal(qmp_handshake(q, err, sizeof(err)), 1); /* up stays up */
	qmp_version(q, &maj, &min, &mic);
	assert_int_equal(maj * 10000 + min * 100 + mic, 100002);
	assert_int_equal(qmp_next_event(q, name, sizeof(name), &d), 0);
	assert_string_equal(name, "RESUME");
	json_object_put(d);
	qmp_free(q);
	close(sv[1]);
}

static void test_handshake_failures(void **state)
{
	struct qmp *q = NULL;
	char err[160] = "";
	int sv[2];

	/* QEMU went away before greeting. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(qmp_connect(sv[0], &q), 0);
	close(sv[1]);
	assert_int_equal(qmp_handshake(q, err, sizeof(err)), -EPIPE);
	qmp_free(q);
	/* Not QMP. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(qmp_connect(sv[0], &q), 0);
	put(sv[1], "{\"return\": {}}\r\n");
	assert_int_equal(qmp_handshake(q, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "greeting"));
	qmp_free(q);
	close(sv[1]);
	/* Capabilities refused (an error without our id). */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(qmp_connect(sv[0], &q), 0);
	put(sv[1], GREETING "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}\r\n");
	assert_int_equal(qmp_handshake(q, err, sizeof(err)), -EREMOTEIO);
	assert_non_null(strstr(err, "GenericError: no"));
	qmp_free(q);
	close(sv[1]);
	assert_int_equal(qmp_connect(-1, &q), -EINVAL);
}

/* ---- a real QEMU ---- */

static const char *qemu_path(void)
{
	const char *p = getenv("QEMU");

	if (p && access(p, X_OK) == 0)
		return p;
	return access("/usr/bin/qemu-system-x86_64", X_OK) == 0 ? "/usr/bin/qemu-system-x86_64" : NULL;
}

static void test_real_qemu(void **state)
{
	const char *qemu = qemu_path();
	struct qmp *q = NULL;
	json_object *r = NULL, *v, *args;
	char err[256], chardev[64];
	int sv[2], p[2], maj = 0, st;
	pid_t pid;

	if (!qemu)
		skip();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (fcntl(sv[1], F_SETFD, 0) < 0)
			_exit(126);
		snprintf(chardev, sizeof(chardev), "socket,id=qmp,fd=%d,server=off", sv[1]);
		execl(qemu, qemu, "-S", "-nodefaults", "-no-user-config", "-display", "none",
		      "-machine", "none", "-chardev", chardev, "-mon", "chardev=qmp,mode=control",
		      (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	assert_int_equal(qmp_open(sv[0], 30000, &q), 0);
	qmp_version(q, &maj, NULL, NULL);
	assert_true(maj >= 7);

	assert_int_equal(qmp_command(q, "query-status", NULL, -1, 10000, &r, err, sizeof(err)), 0);
	assert_true(json_object_object_get_ex(r, "status", &v));
	assert_string_equal(json_object_get_string(v), "prelaunch");
	json_object_put(r);

	assert_int_equal(qmp_command(q, "no-such-command", NULL, -1, 10000, &r, err, sizeof(err)),
			 -EREMOTEIO);
	assert_memory_equal(err, "CommandNotFound: ", 17);

	/* an fd over SCM_RIGHTS with add-fd, then seen in query-fdsets */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	args = json_object_new_object();
	json_object_object_add(args, "opaque", json_object_new_string("luoinit-test"));
	assert_int_equal(qmp_command(q, "add-fd", args, p[0], 10000, &r, err, sizeof(err)), 0);
	json_object_put(args);
	close(p[0]);
	close(p[1]);
	assert_true(json_object_object_get_ex(r, "fdset-id", &v));
	assert_true(json_object_object_get_ex(r, "fd", &v));
	assert_true(json_object_get_int(v) >= 0);
	json_object_put(r);
	assert_int_equal(qmp_command(q, "query-fdsets", NULL, -1, 10000, &r, err, sizeof(err)), 0);
	assert_non_null(strstr(json_object_to_json_string(r), "luoinit-test"));
	json_object_put(r);

	/* without an fd add-fd is an error */
	assert_int_equal(qmp_command(q, "add-fd", NULL, -1, 10000, NULL, err, sizeof(err)), -EREMOTEIO);

	assert_int_equal(qmp_command(q, "quit", NULL, -1, 10000, NULL, err, sizeof(err)), 0);
	assert_int_equal(qmp_command(q, "query-status", NULL, -1, 10000, NULL, err, sizeof(err)), -EPIPE);
	qmp_free(q);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normal),
		cmocka_unit_test(test_side_fd_read_while_waiting),
		cmocka_unit_test(test_events_interleaved),
		cmocka_unit_test(test_event_queue_bounded),
		cmocka_unit_test(test_batch),
		cmocka_unit_test(test_wait_event),
		cmocka_unit_test(test_send_await),
		cmocka_unit_test(test_save_abort),
		cmocka_unit_test(test_error_reply),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_early_close),
		cmocka_unit_test(test_late_reply),
		cmocka_unit_test(test_oversized_line),
		cmocka_unit_test(test_no_greeting),
		cmocka_unit_test(test_closed_before_greeting),
		cmocka_unit_test(test_bad_greeting),
		cmocka_unit_test(test_free_null),
		cmocka_unit_test(test_handshake_steps),
		cmocka_unit_test(test_handshake_failures),
		cmocka_unit_test(test_real_qemu),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
