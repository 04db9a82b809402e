/* QMP client. The socket is non-blocking and every wait is one poll() bounded
 * by the time left to the call's deadline, so nothing blocks past its timeout;
 * EINTR just loops. Replies are matched by the "id" we put on each command:
 * a reply for an id we no longer wait for (the command timed out) is dropped. */
#include "vm/qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pid1/log.h"
#include "pid1/loop.h"

#define QMP_POLL_MAX_MSGS 256	/* per qmp_poll_events() call: a chatty QEMU cannot starve the loop */

struct qmp_event {
	char name[64];
	json_object *data;	/* NULL when the event has none */
};

enum handshake { HS_GREETING, HS_CAPS, HS_UP };

struct qmp {
	int fd;
	enum handshake hs;	/* qmp_handshake's progress */
	int64_t caps_id;	/* id of our qmp_capabilities */
	bool closed;		/* QEMU closed its end */
	bool skipping;		/* inside an oversized line: drop up to its newline */
	int64_t last_id;
	int version[3];
	char *buf;		/* QMP_LINE_MAX + 1 bytes; unread data is buf[start, start + len) */
	size_t start, len;
	json_tokener *tok;
	struct qmp_event ev[QMP_EVENTS_MAX];
	unsigned ev_head, ev_count;
	int side_fd;		/* read by side() while waiting, or -1 */
	int (*side)(void *data);
	void *side_data;
};

enum msg_kind { MSG_OTHER, MSG_GREETING, MSG_EVENT, MSG_REPLY };

/* Deadlines are signed here: a negative one means "do not wait". */
static int64_t mono_ms(void)
{
	return (int64_t)now_ms();
}

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Wait until q's fd is ready for events. deadline < 0: do not wait (-EAGAIN).
 * The side fd is served meanwhile (qmp_set_side). */
static int wait_fd(struct qmp *q, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p[2] = { { .fd = q->fd, .events = events }, { .fd = q->side_fd, .events = POLLIN } };
		int64_t left;
		int r;

		if (deadline < 0)
			return -EAGAIN;
		left = deadline - mono_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(p, q->side_fd >= 0 ? 2 : 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0 && p[1].revents && (!q->side || q->side(q->side_data) < 0))
			q->side_fd = -1;
		if (r > 0 && p[0].revents)
			return 0; /* readable, or HUP/ERR: the next recv/send tells */
	}
}

static int send_all(struct qmp *q, const char *buf, size_t len, int send_fd, int64_t deadline)
{
	size_t off = 0;
	bool fd_pending = send_fd >= 0;

	while (off < len) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(int))];
		} cm;
		struct iovec iov = { .iov_base = (char *)buf + off, .iov_len = len - off };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (fd_pending) {
			struct cmsghdr *c;

			memset(&cm, 0, sizeof(cm));
			mh.msg_control = cm.b;
			mh.msg_controllen = sizeof(cm.b);
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &send_fd, sizeof(int));
		}
		n = sendmsg(q->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0) {
			off += (size_t)n;
			fd_pending = false; /* the fd rides with the first byte sent */
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int r = wait_fd(q, POLLOUT, deadline);
			if (r < 0)
				return r;
			continue;
		}
		if (errno == EPIPE || errno == ECONNRESET) {
			q->closed = true;
			return -EPIPE;
		}
		return -errno;
	}
	return 0;
}

/* Read once, waiting up to the deadline. -EPIPE on EOF. */
static int fill(struct qmp *q, int64_t deadline)
{
	if (q->start) {
		memmove(q->buf, q->buf + q->start, q->len);
		q->start = 0;
	}
	for (;;) {
		ssize_t n = recv(q->fd, q->buf + q->len, QMP_LINE_MAX - q->len, MSG_DONTWAIT);
		int r;

		if (n > 0) {
			q->len += (size_t)n;
			return 0;
		}
		if (n == 0 || errno == ECONNRESET) {
			q->closed = true;
			return -EPIPE;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		if ((r = wait_fd(q, POLLIN, deadline)) < 0)
			return r;
	}
}

/* One complete line from the buffer (CR/LF stripped, NUL-terminated, valid until
 * the next read): 1, or 0 when none is complete yet, or -EPROTO when too long. */
static int take_line(struct qmp *q, char **ret_line, size_t *ret_len, char *err, size_t errlen)
{
	for (;;) {
		char *p = q->buf + q->start, *nl;
		size_t n;

		if (!q->len)
			return 0;
		nl = memchr(p, '\n', q->len);
		if (!nl) {
			if (q->skipping) {
				q->start = q->len = 0;
				return 0;
			}
			if (q->len < QMP_LINE_MAX)
				return 0;
			q->skipping = true;
			q->len = 0;
			set_err(err, errlen, "QMP line from QEMU longer than %d bytes", QMP_LINE_MAX);
			return -EPROTO;
		}
		n = (size_t)(nl - p) + 1;
		q->start += n;
		q->len -= n;
		if (q->skipping) {
			q->skipping = false;
			continue;
		}
		*nl = '\0';
		if (nl > p && nl[-1] == '\r')
			*--nl = '\0';
		*ret_line = p;
		*ret_len = (size_t)(nl - p);
		return 1;
	}
}

static int parse_line(struct qmp *q, const char *line, size_t n, json_object **ret,
		      char *err, size_t errlen)
{
	json_object *o;
	size_t end;

	json_tokener_reset(q->tok);
	o = json_tokener_parse_ex(q->tok, line, (int)n);
	end = json_tokener_get_parse_end(q->tok);
	while (o && end < n && (line[end] == ' ' || line[end] == '\t'))
		end++;
	if (!o || json_tokener_get_error(q->tok) != json_tokener_success || end != n ||
	    !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		set_err(err, errlen, "garbage on QMP from QEMU: \"%.60s%s\"", line, n > 60 ? "..." : "");
		return -EPROTO;
	}
	*ret = o;
	return 0;
}

/* Next JSON object from QEMU. deadline < 0: only what is already there (-EAGAIN). */
static int read_msg(struct qmp *q, int64_t deadline, json_object **ret, char *err, size_t errlen)
{
	for (;;) {
		char *line;
		size_t n;
		int r = take_line(q, &line, &n, err, errlen);

		if (r < 0)
			return r;
		if (r > 0) {
			if (!n)
				continue;
			return parse_line(q, line, n, ret, err, errlen);
		}
		if (q->closed) {
			set_err(err, errlen, "QEMU closed the QMP connection");
			return -EPIPE;
		}
		r = fill(q, deadline);
		if (r == -EPIPE)
			continue; /* lines already read still count */
		if (r == -ETIMEDOUT)
			set_err(err, errlen, "no answer from QEMU on QMP in time");
		else if (r < 0 && r != -EAGAIN)
			set_err(err, errlen, "QMP read: %s", strerror(-r));
		if (r < 0)
			return r;
	}
}

static enum msg_kind classify(json_object *m)
{
	json_object *v;

	if (json_object_object_get_ex(m, "event", &v))
		return json_object_is_type(v, json_type_string) ? MSG_EVENT : MSG_OTHER;
	if (json_object_object_get_ex(m, "return", NULL) || json_object_object_get_ex(m, "error", NULL))
		return MSG_REPLY;
	if (json_object_object_get_ex(m, "QMP", NULL))
		return MSG_GREETING;
	return MSG_OTHER;
}

/* The oldest queued event. */
static void ev_pop(struct qmp *q, char *name, size_t namelen, json_object **ret_data)
{
	struct qmp_event *e = &q->ev[q->ev_head];

	if (name && namelen)
		snprintf(name, namelen, "%s", e->name);
	if (ret_data)
		*ret_data = e->data;
	else
		json_object_put(e->data);
	q->ev_head = (q->ev_head + 1) % QMP_EVENTS_MAX;
	q->ev_count--;
}

/* Takes m. */
static void ev_push(struct qmp *q, json_object *m)
{
	json_object *name = NULL, *data = NULL;
	struct qmp_event *e;

	(void)json_object_object_get_ex(m, "event", &name);
	(void)json_object_object_get_ex(m, "data", &data);
	if (q->ev_count == QMP_EVENTS_MAX) {
		log_debug("qmp: event queue full, dropping %s", q->ev[q->ev_head].name);
		ev_pop(q, NULL, 0, NULL);
	}
	e = &q->ev[(q->ev_head + q->ev_count) % QMP_EVENTS_MAX];
	snprintf(e->name, sizeof(e->name), "%s", json_object_get_string(name));
	e->data = data ? json_object_get(data) : NULL;
	q->ev_count++;
	json_object_put(m);
}

/* The text of e's member key; "?" when missing or JSON null (json-c gives NULL). */
static const char *member_text(json_object *e, const char *key)
{
	json_object *v;
	const char *s;

	if (!json_object_object_get_ex(e, key, &v) || !(s = json_object_get_string(v)))
		return "?";
	return s;
}

static int reply_result(json_object *m, json_object **ret_return,
			char *err, size_t errlen)
{
	json_object *e, *v;

	if (json_object_object_get_ex(m, "error", &e)) {
		set_err(err, errlen, "%s: %s", member_text(e, "class"), member_text(e, "desc"));
		return -EREMOTEIO;
	}
	(void)json_object_object_get_ex(m, "return", &v);
	if (ret_return)
		*ret_return = json_object_get(v);
	return 0;
}

/* One command line, newline-terminated, with the next id: malloc'd, or NULL. */
static char *format_cmd(struct qmp *q, const char *execute, struct json_object *args, int64_t *ret_id,
			size_t *ret_len)
{
	json_object *req = json_object_new_object();
	const char *s;
	char *line;
	size_t n;

	if (!req)
		return NULL;
	*ret_id = ++q->last_id;
	if (json_object_object_add(req, "execute", json_object_new_string(execute)) < 0 ||
	    (args && json_object_object_add(req, "arguments", json_object_get(args)) < 0) ||
	    json_object_object_add(req, "id", json_object_new_int64(*ret_id)) < 0 ||
	    !(s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN))) {
		json_object_put(req);
		return NULL;
	}
	n = strlen(s);
	line = malloc(n + 1);
	if (line) {
		memcpy(line, s, n);
		line[n] = '\n';
		*ret_len = n + 1;
	}
	json_object_put(req);
	return line;
}

/* Sends one command without waiting for its reply: *ret_id says which. */
static int send_cmd(struct qmp *q, const char *execute, struct json_object *args, int send_fd,
		    int64_t deadline, int timeout_ms, int64_t *ret_id, char *err, size_t errlen)
{
	char *line;
	size_t n;
	int r;

	if (q->closed) {
		set_err(err, errlen, "QEMU closed the QMP connection");
		return -EPIPE;
	}
	if (!(line = format_cmd(q, execute, args, ret_id, &n))) {
		set_err(err, errlen, "%s: out of memory", execute);
		return -ENOMEM;
	}
	r = send_all(q, line, n, send_fd, deadline);
	free(line);
	if (r == -EPIPE)
		set_err(err, errlen, "QEMU closed the QMP connection");
	else if (r == -ETIMEDOUT)
		set_err(err, errlen, "%s: QEMU did not take the command in %d ms", execute, timeout_ms);
	else if (r < 0)
		set_err(err, errlen, "%s: send: %s", execute, strerror(-r));
	return r;
}

/* Reads up to the reply to id, queueing the events on the way. */
static int await_reply(struct qmp *q, const char *execute, int64_t id, int64_t deadline, int timeout_ms,
		       struct json_object **ret_return, char *err, size_t errlen)
{
	for (;;) {
		json_object *m, *v = NULL;
		int r = read_msg(q, deadline, &m, err, errlen);

		if (r == -ETIMEDOUT)
			set_err(err, errlen, "%s: no reply from QEMU in %d ms", execute, timeout_ms);
		if (r < 0)
			return r;
		switch (classify(m)) {
		case MSG_EVENT:
			ev_push(q, m);
			continue;
		case MSG_REPLY:
			if (json_object_object_get_ex(m, "id", &v) ?
			    (json_object_is_type(v, json_type_int) && json_object_get_int64(v) == id) :
			    /* QEMU could not parse our request well enough to echo the id */
			    json_object_object_get_ex(m, "error", NULL)) {
				r = reply_result(m, ret_return, err, errlen);
				json_object_put(m);
				return r;
			}
			log_debug("qmp: dropping a late reply (id %s)", v ? json_object_get_string(v) : "none");
			break;
		default:
			break;
		}
		json_object_put(m);
	}
}

int qmp_send(struct qmp *q, const char *execute, struct json_object *args, int timeout_ms, int64_t *ret_id,
	     char *err, size_t errlen)
{
	if (!q || !execute || timeout_ms < 0 || !ret_id) {
		set_err(err, errlen, "%s: no QMP connection or a bad argument", execute ? execute : "(none)");
		return -EINVAL;
	}
	return send_cmd(q, execute, args, -1, mono_ms() + timeout_ms, timeout_ms, ret_id, err, errlen);
}

int qmp_await(struct qmp *q, const char *execute, int64_t id, int timeout_ms, struct json_object **ret_return,
	      char *err, size_t errlen)
{
	if (!q || !execute || timeout_ms < 0) {
		set_err(err, errlen, "%s: no QMP connection or a bad argument", execute ? execute : "(none)");
		return -EINVAL;
	}
	if (ret_return)
		*ret_return = NULL;
	return await_reply(q, execute, id, mono_ms() + timeout_ms, timeout_ms, ret_return, err, errlen);
}

int qmp_command(struct qmp *q, const char *execute, struct json_object *args, int send_fd,
		int timeout_ms, struct json_object **ret_return, char *err, size_t errlen)
{
	struct qmp_cmd c = { execute, args, send_fd, ret_return };

	return qmp_batch(q, &c, 1, timeout_ms, err, errlen);
}

int qmp_batch(struct qmp *q, const struct qmp_cmd *cmds, size_t n, int timeout_ms, char *err, size_t errlen)
{
	int64_t ids[QMP_BATCH_MAX], deadline;
	size_t sent = 0;
	int r = 0;

	if (!q || !cmds || n == 0 || n > QMP_BATCH_MAX || timeout_ms < 0) {
		set_err(err, errlen, "%s: no QMP connection or a bad argument",
			cmds && n && cmds[0].execute ? cmds[0].execute : "(none)");
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!cmds[i].execute) {
			set_err(err, errlen, "(none): no QMP connection or a bad argument");
			return -EINVAL;
		}
		if (cmds[i].ret)
			*cmds[i].ret = NULL;
	}
	deadline = mono_ms() + timeout_ms;
	for (; sent < n; sent++) {
		r = send_cmd(q, cmds[sent].execute, cmds[sent].args, cmds[sent].send_fd, deadline, timeout_ms,
			     &ids[sent], err, errlen);
		if (r < 0)
			break;
	}
	/* Every command sent is answered, in order; the first failure is the
	 * one reported, the replies after it are still read (and dropped). */
	for (size_t i = 0; i < sent; i++) {
		char e[256];
		int ri = await_reply(q, cmds[i].execute, ids[i], deadline, timeout_ms, cmds[i].ret, e, sizeof(e));

		if (ri < 0 && r == 0) {
			r = ri;
			set_err(err, errlen, "%s", e);
		}
		if (ri == -EPIPE || ri == -ETIMEDOUT || ri == -EPROTO)
			break; /* nothing more will come (or in time) */
	}
	if (r < 0)
		for (size_t i = 0; i < n; i++)
			if (cmds[i].ret) {
				json_object_put(*cmds[i].ret);
				*cmds[i].ret = NULL;
			}
	return r;
}

/* The queued event i, taken out of the queue (the others keep their order). */
static void ev_take(struct qmp *q, unsigned i)
{
	json_object_put(q->ev[(q->ev_head + i) % QMP_EVENTS_MAX].data);
	for (; i + 1 < q->ev_count; i++)
		q->ev[(q->ev_head + i) % QMP_EVENTS_MAX] = q->ev[(q->ev_head + i + 1) % QMP_EVENTS_MAX];
	q->ev_count--;
}

static bool ev_matches(const struct qmp_event *e, const char *name, const char *key, const char *const *vals,
		       char *ret_value, size_t len)
{
	json_object *v;
	const char *s;

	if (strcmp(e->name, name) != 0 || !e->data || !json_object_object_get_ex(e->data, key, &v) ||
	    !(s = json_object_get_string(v)))
		return false;
	for (; *vals; vals++)
		if (strcmp(s, *vals) == 0) {
			if (ret_value && len)
				snprintf(ret_value, len, "%s", s);
			return true;
		}
	return false;
}

int qmp_wait_event(struct qmp *q, const char *name, const char *key, const char *const *vals, int timeout_ms,
		   char *ret_value, size_t len, char *err, size_t errlen)
{
	int64_t deadline;

	if (!q || !name || !key || !vals || timeout_ms < 0) {
		set_err(err, errlen, "waiting for an event: no QMP connection or a bad argument");
		return -EINVAL;
	}
	deadline = mono_ms() + timeout_ms;
	for (;;) {
		json_object *m;
		int r;

		for (unsigned i = 0; i < q->ev_count; i++)
			if (ev_matches(&q->ev[(q->ev_head + i) % QMP_EVENTS_MAX], name, key, vals, ret_value, len)) {
				ev_take(q, i);
				return 0;
			}
		r = read_msg(q, deadline, &m, err, errlen);
		if (r == -ETIMEDOUT)
			set_err(err, errlen, "no %s event from QEMU in %d ms", name, timeout_ms);
		if (r < 0)
			return r;
		if (classify(m) == MSG_EVENT)
			ev_push(q, m);
		else
			json_object_put(m); /* a late reply: nobody waits for it */
	}
}

int qmp_poll_events(struct qmp *q)
{
	int queued = 0;

	if (!q)
		return -EINVAL;
	for (int i = 0; i < QMP_POLL_MAX_MSGS; i++) {
		char err[128];
		json_object *m;
		int r = read_msg(q, -1, &m, err, sizeof(err));

		if (r == -EAGAIN)
			break;
		if (r == -EPROTO) {
			log_warn("qmp: %s", err);
			continue;
		}
		if (r < 0)
			return r;
		if (classify(m) == MSG_EVENT) {
			ev_push(q, m);
			queued++;
		} else {
			json_object_put(m);
		}
	}
	return queued;
}

int qmp_next_event(struct qmp *q, char *name, size_t namelen, struct json_object **ret_data)
{
	if (!q)
		return -EINVAL;
	if (!q->ev_count)
		return -EAGAIN;
	ev_pop(q, name, namelen, ret_data);
	return 0;
}

void qmp_clear_events(struct qmp *q)
{
	if (!q)
		return;
	while (q->ev_count)
		ev_pop(q, NULL, 0, NULL);
}

void qmp_set_side(struct qmp *q, int fd, int (*side)(void *data), void *data)
{
	q->side_fd = side ? fd : -1;
	q->side = side;
	q->side_data = data;
}

int qmp_fd(const struct qmp *q)
{
	return q ? q->fd : -EINVAL;
}

void qmp_version(const struct qmp *q, int *major, int *minor, int *micro)
{
	if (major)
		*major = q ? q->version[0] : 0;
	if (minor)
		*minor = q ? q->version[1] : 0;
	if (micro)
		*micro = q ? q->version[2] : 0;
}

void qmp_free(struct qmp *q)
{
	if (!q)
		return;
	qmp_clear_events(q);
	if (q->fd >= 0)
		(void)close(q->fd);
	if (q->tok)
		json_tokener_free(q->tok);
	free(q->buf);
	free(q);
}

static void read_version(struct qmp *q, json_object *greeting)
{
	static const char *const keys[] = { "major", "minor", "micro" };
	json_object *o, *v;

	if (!json_object_object_get_ex(greeting, "QMP", &o) ||
	    !json_object_object_get_ex(o, "version", &o) ||
	    !json_object_object_get_ex(o, "qemu", &o))
		return;
	for (int i = 0; i < 3; i++)
		if (json_object_object_get_ex(o, keys[i], &v))
			q->version[i] = json_object_get_int(v);
}

int qmp_connect(int fd, struct qmp **ret)
{
	struct qmp *q;
	int fl, r;

	if (fd < 0 || !ret) {
		if (fd >= 0)
			(void)close(fd);
		return -EINVAL;
	}
	*ret = NULL;
	q = calloc(1, sizeof(*q));
	if (!q) {
		(void)close(fd);
		return -ENOMEM;
	}
	q->fd = fd;
	q->side_fd = -1;
	q->buf = malloc(QMP_LINE_MAX + 1);
	q->tok = json_tokener_new_ex(64);
	if (!q->buf || !q->tok) {
		r = -ENOMEM;
		goto fail;
	}
	if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		r = -errno;
		goto fail;
	}
	*ret = q;
	return 0;
fail:
	qmp_free(q);
	return r < 0 ? r : -EIO;
}

int qmp_handshake(struct qmp *q, char *err, size_t errlen)
{
	for (;;) {
		json_object *m, *v;
		enum msg_kind k;
		char *line;
		size_t n;
		int r;

		if (q->hs == HS_UP)
			return 1;
		r = read_msg(q, -1, &m, err, errlen);
		if (r == -EAGAIN)
			return 0;
		if (r < 0)
			return r;
		k = classify(m);
		if (q->hs == HS_GREETING) {
			if (k == MSG_EVENT) { /* nothing to tell before QMP is up */
				json_object_put(m);
				continue;
			}
			if (k != MSG_GREETING) {
				json_object_put(m);
				set_err(err, errlen, "expected the QMP greeting");
				return -EPROTO;
			}
			read_version(q, m);
			json_object_put(m);
			/* One short line into an empty socket: it does not block. */
			if (!(line = format_cmd(q, "qmp_capabilities", NULL, &q->caps_id, &n)))
				return -ENOMEM;
			r = send_all(q, line, n, -1, mono_ms() + 1000);
			free(line);
			if (r < 0) {
				set_err(err, errlen, "qmp_capabilities: send: %s", strerror(-r));
				return r;
			}
			q->hs = HS_CAPS;
			continue;
		}
		if (k == MSG_EVENT) {
			ev_push(q, m);
			continue;
		}
		/* Ours, or an error QEMU could not put our id on. */
		if (k == MSG_REPLY && (json_object_object_get_ex(m, "id", &v) ?
				       (json_object_is_type(v, json_type_int) && json_object_get_int64(v) == q->caps_id) :
				       json_object_object_get_ex(m, "error", NULL))) {
			r = reply_result(m, NULL, err, errlen);
			json_object_put(m);
			if (r < 0)
				return r;
			q->hs = HS_UP;
			return 1;
		}
		json_object_put(m);
	}
}

int qmp_open(int fd, int timeout_ms, struct qmp **ret)
{
	char err[160] = "";
	struct qmp *q = NULL;
	int64_t deadline;
	int r;

	if (timeout_ms < 0) {
		if (fd >= 0)
			(void)close(fd);
		return -EINVAL;
	}
	if ((r = qmp_connect(fd, &q)) < 0 || !q)
		return r < 0 ? r : -EIO;
	deadline = mono_ms() + timeout_ms;
	while ((r = qmp_handshake(q, err, sizeof(err))) == 0) {
		r = wait_fd(q, POLLIN, deadline);
		if (r < 0) {
			if (r == -ETIMEDOUT)
				set_err(err, sizeof(err), "no answer from QEMU on QMP in time");
			break;
		}
	}
	if (r < 0) {
		log_debug("qmp: open: %s", r == -ENOMEM ? "out of memory" : err);
		qmp_free(q);
		return r;
	}
	*ret = q;
	return 0;
}
