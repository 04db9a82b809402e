/* libFuzzer target: the QMP client against a fake QEMU that says whatever the
 * fuzzer wants. The input is
 *
 *   byte 0..3  a script: each byte picks one client call (see run_op); the
 *              top bit of byte 0 selects chunked delivery, of byte 1 an
 *              open peer (below)
 *   byte 4..   what "QEMU" sends: greeting, replies, events, garbage
 *
 * The fake QEMU's bytes are all queued on a socketpair before the client
 * starts, then its end is shut for writing: the client sees them and then
 * EOF, so no call ever waits for a deadline (each run is fast and repeatable)
 * and every read path, including "QEMU died mid-command", is reached. The
 * client's own writes (capabilities, commands, a passed fd) pile up unread in
 * the fake QEMU's receive queue.
 *
 * Chunked delivery: a stream socket hands the client everything in one
 * recv(). To cut lines across reads (and so reach the buffer compaction and
 * partial-line paths) the socketpair is SOCK_SEQPACKET instead, and the bytes
 * are sent as records split at each 0x01 byte (dropped): every recv() then
 * returns exactly one record, the same way on every run.
 *
 * Open peer: the fake QEMU's end is left open, so once its bytes are read the
 * client finds nothing more (EAGAIN, as in production between messages), and
 * every call gets a 0 ms timeout so it gives up at once instead of waiting. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "pid1/log.h"
#include "vm/qmp.h"

#define SCRIPT_LEN 4
#define CHUNKED 0x80     /* in script[0] */
#define OPEN_PEER 0x80   /* in script[1] */
#define CHUNK_SEP 0x01
#define CHUNKS_MAX 200   /* the socket holds about 270 small records */
#define TIMEOUT_MS 5000 /* never reached: EOF or a 0 ms timeout ends every wait */

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "fuzz_qmp: %s:%d: check failed: %s\n",      \
				__FILE__, __LINE__, #cond);                          \
			abort();                                                     \
		}                                                                    \
	} while (0)

static int devnull = -1;
static int timeout_ms = TIMEOUT_MS;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		abort();
	log_open(devnull, 0);
	log_set_level(LOG_ERR);
	return 0;
}

static void check_err(int r, const char *err)
{
	/* The documented codes, and every failure says what happened. */
	CHECK(r == -EREMOTEIO || r == -ETIMEDOUT || r == -EPIPE || r == -EPROTO ||
	      r == -ENOMEM || r == -ECONNRESET);
	CHECK(memchr(err, '\0', 256));
	CHECK(err[0]);
}

static void drain(struct qmp *q)
{
	char name[64];
	json_object *data;

	while (qmp_next_event(q, name, sizeof(name), &data) == 0) {
		CHECK(memchr(name, '\0', sizeof(name)));
		json_object_put(data);
	}
}

static void run_op(struct qmp *q, uint8_t op)
{
	char err[256];
	json_object *ret = NULL, *args;
	int r;

	err[0] = '\0';
	switch (op % 8) {
	case 0:
		r = qmp_command(q, "query-status", NULL, -1, timeout_ms, &ret, err, sizeof(err));
		if (r < 0)
			check_err(r, err);
		json_object_put(ret);
		break;
	case 1:
		args = json_object_new_object();
		json_object_object_add(args, "fdset-id", json_object_new_int(op >> 3));
		/* An fd rides along, as with add-fd. */
		r = qmp_command(q, "add-fd", args, devnull, timeout_ms, NULL, err, sizeof(err));
		if (r < 0)
			check_err(r, err);
		json_object_put(args);
		break;
	case 2:
		/* What cpr.c polls a migration with: a reply object to read. */
		r = qmp_command(q, "query-migrate", NULL, -1, timeout_ms, &ret, err, sizeof(err));
		if (r < 0)
			check_err(r, err);
		json_object_put(ret);
		break;
	case 3:
		r = qmp_command(q, (op & 8) ? "cont" : "migrate-cancel", NULL, -1, timeout_ms, NULL, err,
				sizeof(err));
		if (r < 0)
			check_err(r, err);
		break;
	case 4:
		r = qmp_poll_events(q);
		CHECK(r >= 0 || r == -EPIPE);
		break;
	case 5:
		drain(q);
		break;
	case 6: {
		char name[8]; /* short on purpose: names are cut, not overflowed */
		r = qmp_next_event(q, name, sizeof(name), NULL);
		CHECK(r == 0 || r == -EAGAIN);
		break;
	}
	case 7:
		qmp_clear_events(q);
		CHECK(qmp_next_event(q, NULL, 0, NULL) == -EAGAIN);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t script[SCRIPT_LEN] = { 0, 4, 2, 5 };
	struct qmp *q = NULL;
	int sv[2], r;

	if (size >= SCRIPT_LEN) {
		memcpy(script, data, SCRIPT_LEN);
		data += SCRIPT_LEN;
		size -= SCRIPT_LEN;
	} else {
		size = 0;
	}
	bool chunked = script[0] & CHUNKED;
	if (socketpair(AF_UNIX, (chunked ? SOCK_SEQPACKET : SOCK_STREAM) | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	/* Non-blocking: bytes beyond what the socket holds are simply not sent
	 * (-max_len keeps inputs well under that). */
	(void)fcntl(sv[1], F_SETFL, O_NONBLOCK);
	for (size_t off = 0, chunks = 0; off < size; chunks++) {
		size_t len = size - off;
		const uint8_t *sep;

		if (chunked && chunks + 1 < CHUNKS_MAX &&
		    (sep = memchr(data + off, CHUNK_SEP, len)))
			len = (size_t)(sep - (data + off));
		ssize_t n = len ? send(sv[1], data + off, len, MSG_NOSIGNAL) : 0;
		if (n < 0)
			break;
		off += (size_t)n + (chunked && off + (size_t)n < size ? 1 : 0);
	}
	timeout_ms = TIMEOUT_MS;
	if (script[1] & OPEN_PEER)
		timeout_ms = 0;
	else
		(void)shutdown(sv[1], SHUT_WR);

	r = qmp_open(sv[0], timeout_ms, &q);
	CHECK(r == 0 || r == -EPIPE || r == -EPROTO || r == -EREMOTEIO || r == -ENOMEM ||
	      r == -ECONNRESET || (r == -ETIMEDOUT && !timeout_ms));
	if (r == 0) {
		int major, minor, micro;

		CHECK(qmp_fd(q) == sv[0]);
		qmp_version(q, &major, &minor, &micro);
		for (int i = 0; i < SCRIPT_LEN; i++) {
			run_op(q, script[i]);
			if (i % 2)
				(void)qmp_poll_events(q);
		}
		drain(q);
		qmp_free(q);
	}
	close(sv[1]);
	return 0;
}
