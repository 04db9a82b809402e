/* QMP client: greeting, capabilities, commands with replies matched by id while
 * events interleave, deadlines, QEMU dying mid-command. Synchronous but for the
 * handshake, which can also be driven by the event loop; the fd is a connected
 * stream socket owned by the client. */
#ifndef LUOINIT_QMP_H
#define LUOINIT_QMP_H

#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#define QMP_LINE_MAX (1024 * 1024)	/* longer lines from QEMU are -EPROTO */
#define QMP_EVENTS_MAX 64		/* queued events; the oldest is dropped beyond */

struct qmp;

/* Takes fd (even on failure: it is closed then). Reads the greeting, records
 * QEMU's version and negotiates capabilities, all within timeout_ms. */
int qmp_open(int fd, int timeout_ms, struct qmp **ret);
/* The same without waiting, for the event loop: qmp_connect takes fd as
 * qmp_open does and reads nothing; call qmp_handshake whenever the fd is
 * readable. It returns 0 while QEMU is not done (greeting read, capabilities
 * sent, reply awaited), 1 once QMP is up (as after qmp_open), or a negative
 * errno with err saying why (-EPIPE: QEMU closed; -EPROTO: not QMP;
 * -EREMOTEIO: capabilities refused). */
int qmp_connect(int fd, struct qmp **ret);
int qmp_handshake(struct qmp *q, char *err, size_t errlen);
void qmp_version(const struct qmp *q, int *major, int *minor, int *micro);

/* Runs one command. args is borrowed (may be NULL); send_fd, when >= 0, goes
 * along with the command over SCM_RIGHTS (add-fd, getfd). On success
 * *ret_return (if asked for) gets the "return" value, owned by the caller.
 * -EREMOTEIO: QEMU answered with an error, err gets "Class: desc".
 * -ETIMEDOUT: no reply in time (a late reply is dropped later).
 * -EPIPE: QEMU closed the connection. -EPROTO: garbage or oversized line.
 * err (may be NULL) says what happened in every failure case. */
int qmp_command(struct qmp *q, const char *execute, struct json_object *args, int send_fd,
		int timeout_ms, struct json_object **ret_return, char *err, size_t errlen);

/* Several commands in one round trip: all sent, then every reply read in
 * order (QEMU runs them in order, each whatever the earlier ones returned:
 * batch only commands that are harmless after a failed one). Each cmds[i].ret
 * (may be NULL) is set as qmp_command's ret_return. Returns 0, or the first
 * failure with err as qmp_command's, and then no ret is set; the replies after
 * a failure are still read, so none is left for a later command. */
#define QMP_BATCH_MAX 8
struct qmp_cmd {
	const char *execute;
	struct json_object *args;   /* borrowed, may be NULL */
	int send_fd;                /* -1, or an fd to pass along (SCM_RIGHTS) */
	struct json_object **ret;
};
int qmp_batch(struct qmp *q, const struct qmp_cmd *cmds, size_t n, int timeout_ms, char *err, size_t errlen);

/* One command in two halves, for commands several QEMUs run side by side:
 * qmp_send sends it (its id in *ret_id), qmp_await reads up to its reply,
 * as qmp_command does; nothing else may be sent on q in between. */
int qmp_send(struct qmp *q, const char *execute, struct json_object *args, int timeout_ms, int64_t *ret_id,
	     char *err, size_t errlen);
int qmp_await(struct qmp *q, const char *execute, int64_t id, int timeout_ms, struct json_object **ret_return,
	      char *err, size_t errlen);

/* Waits for the next event named name (queued ones first, the others stay
 * queued) whose data member key has one of the values vals (NULL-terminated);
 * *ret_value gets it (up to len). -ETIMEDOUT, -EPIPE as qmp_command. */
int qmp_wait_event(struct qmp *q, const char *name, const char *key, const char *const *vals, int timeout_ms,
		   char *ret_value, size_t len, char *err, size_t errlen);

/* Non-blocking: reads what is available and queues the events, for the event
 * loop when the fd is readable. Garbage lines and stray replies are dropped.
 * Returns how many events were queued, or -EPIPE once QEMU closed. Events read
 * during qmp_command() are queued as well: drain the queue
 * after those too, epoll will not signal them again. */
int qmp_poll_events(struct qmp *q);
/* Pops the oldest queued event; -EAGAIN when there is none. */
int qmp_next_event(struct qmp *q, char *name, size_t namelen, struct json_object **ret_data);
void qmp_clear_events(struct qmp *q);

/* While a call here waits for QEMU, fd (QEMU's stderr) is read too, by
 * side(data) whenever it is readable: QEMU writes its stderr blocking, with
 * its big lock held, and answers nothing while the pipe is full. side
 * returns < 0 once fd is done with (EOF); it is not polled any more then. */
void qmp_set_side(struct qmp *q, int fd, int (*side)(void *data), void *data);

int qmp_fd(const struct qmp *q);
void qmp_free(struct qmp *q);	/* closes the fd; NULL is fine */

#endif
