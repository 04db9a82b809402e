/* ctl_server: the real server in this process, driven with loop_run_once()
 * and real Unix sockets in a temporary directory. client() does the QMP
 * handshake; raw_client() leaves it to the test. */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "ctl/proto.h"
#include "ctl/server.h"
#include "pid1/event.h"
#include "pid1/loop.h"

static char dir[64];
static char path[128];
static int handler_calls;
static int nested_fd = -1;    /* the "nested" command writes here, then runs the loop */
static int nested_other = -1; /* ... while this client is served */
static char *nested_other_line;

static char *recv_line(int fd);
static void send_str(int fd, const char *s);

static int test_handler(const char *name, struct json_object *args, struct json_object **ret,
			struct cmd_error *err)
{
	handler_calls++;
	if (strcmp(name, "status") == 0) {
		*ret = json_object_new_object();
		json_object_object_add(*ret, "ok", json_object_new_boolean(1));
		return 0;
	}
	if (strcmp(name, "echo") == 0) {
		*ret = args ? json_object_get(args) : NULL;
		return 0;
	}
	if (strcmp(name, "big") == 0) {
		static char s[64 * 1024];

		memset(s, 'x', sizeof(s) - 1);
		*ret = json_object_new_object();
		json_object_object_add(*ret, "s", json_object_new_string(s));
		return 0;
	}
	if (strcmp(name, "event") == 0) {
		ctl_server_broadcast_event("DURING", NULL);
		return 0;
	}
	if (strcmp(name, "nested") == 0) {
		/* Like a long command waiting on QMP: more input from the same client
		 * must wait its turn, other clients are served meanwhile. */
		send_str(nested_fd, "{\"execute\":\"status\",\"id\":\"after\"}\n");
		send_str(nested_other, "{\"execute\":\"status\",\"id\":\"other\"}\n");
		nested_other_line = recv_line(nested_other);
		return 0;
	}
	if (strcmp(name, "bare-error") == 0)
		return -EBUSY;
	if (strcmp(name, "close-server") == 0) {
		ctl_server_close();
		return 0;
	}
	ctl_proto_set_error(err, "CommandNotFound", "The command %s has not been found", name);
	return -ENOENT;
}

static int setup(void **state)
{
	assert_int_equal(loop_init(), 0);
	snprintf(dir, sizeof(dir), "/tmp/ctltest.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ctl.sock", dir);
	handler_calls = 0;
	ctl_server_set_idle_timeout(0);
	assert_int_equal(ctl_server_listen(path, test_handler), 0);
	return 0;
}

static int teardown(void **state)
{
	ctl_server_close();
	(void)unlink(path);
	(void)rmdir(dir);
	return 0;
}

static void pump(int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	while (now_ms() < end)
		assert_true(loop_run_once(5) >= 0);
}

static int raw_client(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void expect_line(int fd, const char *want);

#define STR_(x) #x
#define STR(x) STR_(x)
#define GREETING "{\"QMP\":{\"version\":{\"qemu\":{\"major\":" STR(LUOINIT_VERSION_MAJOR) \
	",\"minor\":" STR(LUOINIT_VERSION_MINOR) ",\"micro\":" STR(LUOINIT_VERSION_MICRO) \
	"},\"package\":\"" LUOINIT_PACKAGE "\"},\"capabilities\":[]}}"

/* QMP: the greeting, then qmp_capabilities. */
static void negotiate(int fd)
{
	expect_line(fd, GREETING);
	send_str(fd, "{\"execute\":\"qmp_capabilities\",\"id\":\"caps\"}\n");
	expect_line(fd, "{\"return\":{},\"id\":\"caps\"}");
}

static int client(void)
{
	int fd = raw_client();

	negotiate(fd);
	return fd;
}

/* Send everything, running the server while the socket is full. */
static void send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len); /* SIGPIPE is ignored; fd may be a pty */

		if (n < 0) {
			assert_true(errno == EAGAIN);
			assert_true(loop_run_once(5) >= 0);
			continue;
		}
		buf += n;
		len -= (size_t)n;
	}
}

static void send_str(int fd, const char *s)
{
	send_all(fd, s, strlen(s));
}

/* Per-fd receive buffers, so a read past one line is kept for the next. */
static struct { char buf[1 << 18]; size_t len; } rx[512];

/* Next line from fd (without '\n'), running the server meanwhile; NULL on EOF
 * or after 2 s. Caller frees. */
static char *recv_line(int fd)
{
	uint64_t end = now_ms() + 2000;
	char *nl, *line;

	assert_true(fd < 512);
	for (;;) {
		nl = memchr(rx[fd].buf, '\n', rx[fd].len);
		if (nl) {
			size_t n = (size_t)(nl - rx[fd].buf);

			line = strndup(rx[fd].buf, n);
			memmove(rx[fd].buf, nl + 1, rx[fd].len - n - 1);
			rx[fd].len -= n + 1;
			return line;
		}
		if (now_ms() > end)
			return NULL;
		assert_true(loop_run_once(5) >= 0);
		assert_true(rx[fd].len < sizeof(rx[fd].buf));
		ssize_t r = read(fd, rx[fd].buf + rx[fd].len, sizeof(rx[fd].buf) - rx[fd].len);
		if (r == 0 || (r < 0 && errno != EAGAIN))
			return NULL;
		if (r > 0)
			rx[fd].len += (size_t)r;
	}
}

static void close_client(int fd)
{
	rx[fd].len = 0;
	close(fd);
}

static void expect_line(int fd, const char *want)
{
	char *line = recv_line(fd);

	assert_non_null(line);
	assert_string_equal(line, want);
	free(line);
}

/* The next line contains needle. */
static void expect_contains(int fd, const char *needle)
{
	char *line = recv_line(fd);

	assert_non_null(line);
	if (!strstr(line, needle))
		fail_msg("line '%.200s' lacks '%s'", line, needle);
	free(line);
}

/* The server closed fd (after any lines already read). */
static void expect_eof(int fd)
{
	char *line = recv_line(fd);

	if (line)
		fail_msg("unexpected line '%.200s'", line);
}

static void test_good_request(void **state)
{
	struct stat st;
	int fd;

	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	fd = client();
	send_str(fd, "{\"execute\":\"status\",\"id\":1}\n");
	expect_line(fd, "{\"return\":{\"ok\":true},\"id\":1}");
	send_str(fd, "{\"execute\":\"echo\",\"arguments\":{\"a\":[1,\"b\"]}}\n");
	expect_line(fd, "{\"return\":{\"a\":[1,\"b\"]}}");
	send_str(fd, "{\"execute\":\"echo\"}\n");
	expect_line(fd, "{\"return\":{}}");
	assert_int_equal(ctl_server_client_count(), 1);
	close_client(fd);
	pump(20);
	assert_int_equal(ctl_server_client_count(), 0);
}

static void test_pipelined_and_crlf(void **state)
{
	int fd = client();

	send_str(fd, "{\"execute\":\"status\",\"id\":\"a\"}\r\n\n  \r\n{\"execute\":\"nope\",\"id\":\"b\"}\n"
		     "{\"execute\":\"echo\",\"arguments\":{\"x\":1},\"id\":\"c\"}\r\n");
	expect_line(fd, "{\"return\":{\"ok\":true},\"id\":\"a\"}");
	expect_line(fd, "{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"The command nope has "
			"not been found\"},\"id\":\"b\"}");
	expect_line(fd, "{\"return\":{\"x\":1},\"id\":\"c\"}");
	/* A request split over several writes. */
	send_str(fd, "{\"execute\":");
	pump(20);
	send_str(fd, "\"status\",\"id\":2}");
	pump(20);
	send_str(fd, "\r\n");
	expect_line(fd, "{\"return\":{\"ok\":true},\"id\":2}");
	close_client(fd);
}

static void test_handler_errors(void **state)
{
	int fd = client();

	send_str(fd, "{\"execute\":\"bare-error\",\"id\":9}\n");
	expect_line(fd, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"bare-error: Device or "
			"resource busy\"},\"id\":9}");
	send_str(fd, "{\"execute\":7,\"id\":10}\n");
	expect_line(fd, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"\\\"execute\\\" must be "
			"a string\"},\"id\":10}");
	close_client(fd);
}

/* Chosen behaviour: an oversized line gets one error reply, the rest of it is
 * discarded up to its newline, and the connection stays usable. */
static void test_oversized_line(void **state)
{
	size_t n = 1 << 20;
	char *junk = malloc(n);
	int fd = client();

	assert_non_null(junk);
	memset(junk, 'a', n);
	send_all(fd, junk, n);
	expect_line(fd, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"request line longer "
			"than 65536 bytes\"}}");
	send_str(fd, "still the same line\n{\"execute\":\"status\",\"id\":2}\n");
	expect_line(fd, "{\"return\":{\"ok\":true},\"id\":2}");
	assert_int_equal(handler_calls, 1);

	/* 100000 '[' is also over the limit; 60000 is within it but too deep. */
	memset(junk, '[', 100000);
	junk[100000] = '\n';
	send_all(fd, junk, 100001);
	expect_contains(fd, "longer than 65536 bytes");
	junk[60000] = '\n';
	send_all(fd, junk, 60001);
	expect_contains(fd, "malformed JSON: nesting too deep");
	send_str(fd, "{\"execute\":\"status\",\"id\":3}\n");
	expect_line(fd, "{\"return\":{\"ok\":true},\"id\":3}");
	free(junk);
	close_client(fd);
}

static void test_binary_junk(void **state)
{
	char junk[4096];
	int fd = client();

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)((i * 7919 + 13) % 251);
	for (size_t i = 0; i < sizeof(junk); i++)
		if (junk[i] == '\n')
			junk[i] = 0;
	junk[sizeof(junk) - 1] = '\n';
	send_all(fd, junk, sizeof(junk));
	expect_contains(fd, "malformed JSON");
	send_all(fd, "\x00\x01\x02\n", 4);
	expect_contains(fd, "malformed JSON");
	send_str(fd, "[\"execute\"]\n");
	expect_contains(fd, "not a JSON object");
	send_str(fd, "{\"execute\":\"status\",\"id\":2}\n");
	expect_line(fd, "{\"return\":{\"ok\":true},\"id\":2}");
	close_client(fd);
}

static void test_half_request_does_not_stall(void **state)
{
	int a = client(), b = client();

	ctl_server_set_idle_timeout(300);
	send_str(a, "{\"execute\":\"sta");
	pump(20);
	send_str(b, "{\"execute\":\"status\",\"id\":\"b\"}\n");
	expect_line(b, "{\"return\":{\"ok\":true},\"id\":\"b\"}");
	/* b has no partial line: it stays; a is dropped after the idle timeout. */
	pump(600);
	expect_contains(a, "timeout");
	expect_eof(a);
	assert_int_equal(ctl_server_client_count(), 1);
	send_str(b, "{\"execute\":\"status\",\"id\":\"b2\"}\n");
	expect_line(b, "{\"return\":{\"ok\":true},\"id\":\"b2\"}");
	close_client(a);
	close_client(b);
}

static void test_client_limit(void **state)
{
	int fds[64], extra;

	for (int i = 0; i < 64; i++) {
		fds[i] = client();
		pump(1);
	}
	pump(20);
	assert_int_equal(ctl_server_client_count(), 64);
	extra = raw_client(); /* refused: an error line, no greeting */
	expect_contains(extra, "too many clients");
	expect_eof(extra);
	close_client(extra);
	assert_int_equal(ctl_server_client_count(), 64);
	for (int i = 0; i < 64; i += 21) {
		send_str(fds[i], "{\"execute\":\"status\",\"id\":1}\n");
		expect_line(fds[i], "{\"return\":{\"ok\":true},\"id\":1}");
	}
	close_client(fds[0]);
	pump(20);
	extra = client();
	send_str(extra, "{\"execute\":\"status\",\"id\":1}\n");
	expect_line(extra, "{\"return\":{\"ok\":true},\"id\":1}");
	close_client(extra);
	for (int i = 1; i < 64; i++)
		close_client(fds[i]);
	pump(20);
	assert_int_equal(ctl_server_client_count(), 0);
}

static void test_disconnect_before_reply(void **state)
{
	char req[64 * 40];
	int fd = client();

	/* Replies (64 KiB each) outgrow the socket buffer, so the server is
	 * mid-reply when the peer goes away. */
	req[0] = '\0';
	for (int i = 0; i < 40; i++)
		strcat(req, "{\"execute\":\"big\"}\n");
	send_str(fd, req);
	pump(5);
	close_client(fd);
	pump(50);
	assert_int_equal(ctl_server_client_count(), 0);

	/* Request, then close at once: the command still runs, nothing breaks. */
	handler_calls = 0;
	fd = client();
	send_str(fd, "{\"execute\":\"status\"}\n");
	close_client(fd);
	pump(50);
	assert_int_equal(handler_calls, 1);
	assert_int_equal(ctl_server_client_count(), 0);
}

static void test_slow_reader_held(void **state)
{
	char req[64 * 100], *line;
	int fd = client(), other = client();

	req[0] = '\0';
	for (int i = 0; i < 100; i++)
		snprintf(req + strlen(req), sizeof(req) - strlen(req), "{\"execute\":\"big\",\"id\":%d}\n", i);
	send_str(fd, req);
	pump(200);
	/* 100 * 64 KiB asked for, none read: the first few fill the socket,
	 * the rest wait unrun; the client stays, nothing grows. */
	assert_int_equal(ctl_server_client_count(), 2);
	send_str(other, "{\"execute\":\"status\",\"id\":1}\n");
	expect_line(other, "{\"return\":{\"ok\":true},\"id\":1}");
	/* Reading, it gets every reply, in order. */
	for (int i = 0; i < 100; i++) {
		char want[32];

		line = recv_line(fd);
		assert_non_null(line);
		snprintf(want, sizeof(want), ",\"id\":%d}", i);
		assert_true(strlen(line) > 64 * 1024 - 1);
		assert_string_equal(line + strlen(line) - strlen(want), want);
		free(line);
	}
	close_client(fd);
	close_client(other);
}

static void test_half_close(void **state)
{
	int fd = client();

	/* Like `printf ... | socat - UNIX:...`: no newline, then shutdown(SHUT_WR). */
	send_str(fd, "{\"execute\":\"status\",\"id\":5}");
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	expect_line(fd, "{\"return\":{\"ok\":true},\"id\":5}");
	expect_eof(fd);
	close_client(fd);
	pump(10);
	assert_int_equal(ctl_server_client_count(), 0);
}

static void test_events(void **state)
{
	struct json_object *data = json_object_new_object();
	int a = client(), b = client();
	char *line;

	pump(20);
	json_object_object_add(data, "name", json_object_new_string("vm0"));
	ctl_server_broadcast_event("VM_STATE", data);
	json_object_put(data);
	for (int i = 0; i < 2; i++) {
		line = recv_line(i ? b : a);
		assert_non_null(line);
		assert_non_null(strstr(line, "\"event\":\"VM_STATE\",\"data\":{\"name\":\"vm0\"}"));
		assert_non_null(strstr(line, "\"timestamp\":{\"seconds\":"));
		free(line);
	}
	/* An event raised while a request runs reaches everyone, and comes
	 * before that request's reply. */
	send_str(a, "{\"execute\":\"event\",\"id\":1}\n");
	expect_contains(a, "\"event\":\"DURING\"");
	expect_line(a, "{\"return\":{},\"id\":1}");
	expect_contains(b, "\"event\":\"DURING\"");
	close_client(a);
	close_client(b);
}

/* QMP: the greeting first; nothing but qmp_capabilities before negotiation
 * (the handler is not even asked); it succeeds once. */
static void test_handshake(void **state)
{
	int fd = raw_client();

	expect_line(fd, GREETING);
	send_str(fd, "{\"execute\":\"status\",\"id\":1}\n{\"execute\":\"nope\",\"id\":2}\n");
	expect_line(fd, "{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"Expecting capabilities "
			"negotiation with 'qmp_capabilities'\"},\"id\":1}");
	expect_contains(fd, "Expecting capabilities negotiation");
	/* Malformed input is still just malformed. */
	send_str(fd, "{\"execute\":7,\"id\":3}\n");
	expect_contains(fd, "\"class\":\"GenericError\"");
	send_str(fd, "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]},\"id\":4}\n");
	expect_line(fd, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"Capability oob not available\"},"
			"\"id\":4}");
	assert_int_equal(handler_calls, 0);
	/* Without a newline, as QEMU's Python client sends it. */
	send_str(fd, "{\"execute\":\"qmp_capabilities\",\"id\":5}");
	expect_line(fd, "{\"return\":{},\"id\":5}");
	send_str(fd, "{\"execute\":\"qmp_capabilities\",\"id\":6}\n{\"execute\":\"status\",\"id\":7}\n");
	expect_line(fd, "{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"Capabilities negotiation "
			"is already complete, command ignored\"},\"id\":6}");
	expect_line(fd, "{\"return\":{\"ok\":true},\"id\":7}");
	assert_int_equal(handler_calls, 1);
	close_client(fd);
}

/* Events reach negotiated clients only, also through the sink of pid1/event.h. */
static void test_events_after_negotiation(void **state)
{
	int a = raw_client(), b = client();

	event_set_sink(ctl_server_broadcast_event);
	expect_line(a, GREETING);
	event_emit("FIRST", NULL);
	expect_contains(b, "\"event\":\"FIRST\"");
	/* a was greeted but not negotiated: the next line it sees is its reply. */
	send_str(a, "{\"execute\":\"qmp_capabilities\"}\n");
	expect_line(a, "{\"return\":{}}");
	event_emit("SECOND", NULL);
	expect_contains(a, "\"event\":\"SECOND\",\"data\":{}");
	expect_contains(b, "\"event\":\"SECOND\"");
	event_set_sink(NULL);
	close_client(a);
	close_client(b);
}

static void test_handler_closes_server(void **state)
{
	int fd = client();

	send_str(fd, "{\"execute\":\"close-server\"}\n{\"execute\":\"status\"}\n");
	expect_eof(fd);
	assert_int_equal(handler_calls, 1);
	assert_int_equal(access(path, F_OK), -1);
	close_client(fd);
	/* teardown's second close is harmless */
}

static void test_nested_loop_in_handler(void **state)
{
	nested_fd = client();
	nested_other = client();
	pump(20);
	send_str(nested_fd, "{\"execute\":\"nested\",\"id\":\"first\"}\n");
	expect_line(nested_fd, "{\"return\":{},\"id\":\"first\"}");
	expect_line(nested_fd, "{\"return\":{\"ok\":true},\"id\":\"after\"}");
	assert_non_null(nested_other_line);
	assert_string_equal(nested_other_line, "{\"return\":{\"ok\":true},\"id\":\"other\"}");
	free(nested_other_line);
	close_client(nested_fd);
	close_client(nested_other);
}

static void test_stale_socket(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	/* A live server holds the path. */
	ctl_server_close();
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(ctl_server_listen(path, test_handler), -EADDRINUSE);
	/* The same socket file, now dead: replaced. */
	close(fd);
	assert_int_equal(ctl_server_listen(path, test_handler), 0);
	assert_int_equal(ctl_server_listen(path, test_handler), -EALREADY);
	fd = client();
	send_str(fd, "{\"execute\":\"status\",\"id\":1}\n");
	expect_line(fd, "{\"return\":{\"ok\":true},\"id\":1}");
	close_client(fd);
	/* Never something that is not a socket. */
	ctl_server_close();
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(ctl_server_listen(path, test_handler), -EEXIST);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(ctl_server_listen(path, test_handler), 0);
}

/* A client whose uid is neither 0 nor ours gets an error line and is closed. */
static void test_peer_uid_refused(void **state)
{
	int status;
	pid_t pid;

	if (geteuid() != 0)
		skip();
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(chmod(path, 0666), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char buf[256] = { 0 };
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int fd;
		ssize_t n, got = 0;

		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(10);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		strcpy(sa.sun_path, path);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			_exit(11);
		while ((n = read(fd, buf + got, sizeof(buf) - 1 - (size_t)got)) > 0)
			got += n;
		_exit(strstr(buf, "permission denied") ? 0 : 12);
	}
	for (int i = 0; i < 400 && waitpid(pid, &status, WNOHANG) == 0; i++)
		pump(5);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(ctl_server_client_count(), 0);
}

/* The management port, played by a pty: requests served, and a host that
 * goes away is not polled in a busy loop. */
static void test_port_pty(void **state)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC), ran = 0;
	uint64_t end;

	assert_true(m >= 0);
	assert_int_equal(grantpt(m), 0);
	assert_int_equal(unlockpt(m), 0);
	assert_int_equal(ctl_server_add_port(ptsname(m), test_handler), 0);
	assert_int_equal(fcntl(m, F_SETFL, O_NONBLOCK), 0);
	/* A host is there (the master is open): it is greeted. */
	expect_line(m, GREETING);
	send_str(m, "junk from an earlier host{\"execute\":\"status\",\"id\":1}\n"
		    "{\"execute\":\"status\",\"id\":2}\n");
	expect_contains(m, "malformed JSON");
	expect_contains(m, "Expecting capabilities negotiation");
	ctl_server_broadcast_event("EARLY", NULL); /* not negotiated: not sent */
	send_str(m, "{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"status\",\"id\":3}\n");
	expect_line(m, "{\"return\":{}}");
	expect_line(m, "{\"return\":{\"ok\":true},\"id\":3}");
	ctl_server_broadcast_event("PORT", NULL);
	expect_contains(m, "\"event\":\"PORT\"");
	close_client(m);
	pump(50);
	end = now_ms() + 300;
	while (now_ms() < end)
		ran += loop_run_once(10);
	assert_true(ran <= 3);
	/* Sockets keep working meanwhile. */
	m = client();
	send_str(m, "{\"execute\":\"status\",\"id\":1}\n");
	expect_line(m, "{\"return\":{\"ok\":true},\"id\":1}");
	close_client(m);
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_and_crlf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handler_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binary_junk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_request_does_not_stall, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_before_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_reader_held, setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handshake, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events_after_negotiation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handler_closes_server, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nested_loop_in_handler, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_uid_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_port_pty, setup, teardown),
	};
	if (argc > 1) cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
