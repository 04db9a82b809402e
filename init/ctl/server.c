/* The control server: QMP on the Unix socket and the management port. Every
 * connection is greeted and must negotiate capabilities (ctl/session.c) before
 * commands run or events flow. PID 1 must never block or crash here: every fd is non-blocking, input is
 * bounded by the line limit, output by CTL_OUT_MAX, and a peer that stalls
 * mid-line or stops reading is dropped. Requests run synchronously, in order
 * per client; a handler may run the loop itself (nested), so a connection is
 * only freed once no callback up the stack is using it (busy count). */
#include "ctl/server.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ctl/proto.h"
#include "pid1/log.h"
#include "pid1/loop.h"

#define CTL_MAX_CLIENTS 64
#define CTL_IN_MAX (CTL_LINE_MAX + 2)  /* the longest line plus its CR LF */
#define CTL_IN_START 4096
#define CTL_OUT_MAX (1024 * 1024)
#define CTL_IDLE_MS 60000
#define CTL_RETRY_MS 1000               /* port reconnect poll, accept back-off */
#define CTL_ACCEPT_BATCH 16
#define CTL_READ_BATCH 4

enum conn_kind { CONN_SOCKET, CONN_PORT };

struct conn {
	struct conn *next;
	enum conn_kind kind;
	int fd;
	ctl_handler fn;
	char *in;
	size_t in_len, in_cap;
	int discarding;         /* dropping the rest of an oversized line */
	struct ctl_framer fr;   /* where the request at in[0] ends, so far */
	uint64_t partial_since; /* now_ms() when a pending partial line began, 0: none */
	char *out;
	size_t out_off, out_len, out_cap;
	uint32_t events;        /* as registered with the loop */
	int registered;
	int in_handler;         /* no EPOLLIN while a request runs (nested loops) */
	int eof;                /* peer sent everything: close once replies are out */
	int busy;               /* callbacks on the stack using this conn */
	int dead;               /* closed; freed when busy drops to 0 */
	int port_timer;         /* port only: reconnect poll while the host is away */
	unsigned sessions;      /* port only: host sessions greeted so far */
	uint64_t client;        /* this connection's (the port: this host session's) id */
	struct ctl_session sess;
};

static struct {
	int fd;
	char *path;
	ctl_handler fn;
	int accept_timer;
	struct conn *conns;
	int nclients;
	int idle_timer;
	uint64_t idle_ms;
	uint64_t next_client;   /* ids handed out so far */
	uint64_t current;       /* the client whose request runs, 0: none */
	void (*gone)(uint64_t client);
} srv = { .fd = -1, .accept_timer = -1, .idle_timer = -1, .idle_ms = CTL_IDLE_MS };

static void conn_cb(int fd, uint32_t events, void *data);

static void conn_free(struct conn *c)
{
	free(c->in);
	free(c->out);
	free(c);
}

static void idle_timer_update(void);

/* The client (or the port's host session) is gone: whatever it had begun
 * is abandoned (ctl_server_set_gone_hook). */
static void client_gone(struct conn *c)
{
	uint64_t id = c->client;

	c->client = ++srv.next_client; /* a port's next host is another client */
	if (srv.gone)
		srv.gone(id);
}

static void conn_close(struct conn *c)
{
	struct conn **p;

	if (c->dead)
		return;
	c->dead = 1;
	client_gone(c);
	loop_timer_del(c->port_timer);
	c->port_timer = -1;
	if (c->registered)
		loop_del(c->fd);
	c->registered = 0;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	for (p = &srv.conns; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			break;
		}
	}
	if (c->kind == CONN_SOCKET)
		srv.nclients--;
	idle_timer_update();
	if (!c->busy)
		conn_free(c);
}

/* A socket client with replies it has not read yet gets no more requests
 * run (nor read) until it reads them: one that never reads costs what it
 * has queued, and nobody else waits behind replies made for nobody. */
static bool conn_backlogged(const struct conn *c)
{
	return c->kind == CONN_SOCKET && c->out_len > c->out_off;
}

static void conn_update_events(struct conn *c)
{
	uint32_t ev = 0;

	/* A port whose host is away stays edge-triggered until it is back. */
	if (c->dead || !c->registered || c->port_timer >= 0)
		return;
	if (!c->in_handler && !c->eof && !conn_backlogged(c))
		ev |= EPOLLIN;
	if (c->out_len > c->out_off)
		ev |= EPOLLOUT;
	if (ev != c->events && loop_mod(c->fd, ev) == 0)
		c->events = ev;
}

static void port_timer_cb(int fd, uint32_t events, void *data);
static void conn_flush(struct conn *c);
static void port_new_session(struct conn *c);

/* A virtio-serial port reports a hang-up for as long as no host is connected. */
static bool port_host_present(const struct conn *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

	return poll(&pfd, 1, 0) >= 0 && !(pfd.revents & (POLLHUP | POLLERR | POLLNVAL));
}

/* The port's host side went away: stop polling it level-triggered (it would
 * report EPOLLHUP forever) until the host is back.
 *
 * Whole queued lines are kept. virtio-serial carries a host's open and close
 * events on the control queue and its data on the port's own queue, so the
 * guest may read the next host session's request while it still sees the
 * previous one closed; the reply to it cannot be written yet (EAGAIN) and is
 * sent once the port reopens, after that session's greeting. A reply meant for
 * a host that has gone reaches the next one, whose client skips replies to ids
 * it did not send (QMP clients must). */
static void port_disconnected(struct conn *c)
{
	int t;

	if (c->port_timer >= 0)
		return; /* away already: port_try_reconnect greets the next host */
	/* The hang-up may be stale: one host client left and the next one is
	 * already connected. Only a port that still reports it has no host; one
	 * that has a host again has a new one, which is greeted. */
	if (port_host_present(c)) {
		port_new_session(c);
		return;
	}
	client_gone(c);
	/* Edge-triggered while away: virtio_console wakes pollers when the host
	 * connects (the port turns writable) and when data comes; the timer is
	 * the fallback. */
	if (c->registered && loop_mod(c->fd, EPOLLIN | EPOLLOUT | EPOLLET) < 0) {
		loop_del(c->fd);
		c->registered = 0;
	}
	t = loop_timer_add(CTL_RETRY_MS, CTL_RETRY_MS, port_timer_cb, c);
	if (t < 0) {
		log_errno(LOG_ERR, -t, "ctl: management port: cannot arm the reconnect timer");
		return;
	}
	c->port_timer = t;
	log_debug("ctl: management port: host disconnected");
}

/* The host is back when the port no longer reports a hang-up. */
static void port_try_reconnect(struct conn *c)
{
	int r;

	if (!port_host_present(c))
		return;
	r = c->registered ? loop_mod(c->fd, EPOLLIN) : loop_add(c->fd, EPOLLIN, conn_cb, c);
	if (r < 0) {
		log_errno(LOG_ERR, -r, "ctl: management port: cannot watch it");
		return;
	}
	c->registered = 1;
	c->events = EPOLLIN;
	loop_timer_del(c->port_timer);
	c->port_timer = -1;
	log_debug("ctl: management port: host connected%s", c->out_len > c->out_off ? ", sending what waited" : "");
	port_new_session(c);
	conn_flush(c);
}

static void port_timer_cb(int fd, uint32_t events, void *data)
{
	port_try_reconnect(data); /* the loop read the expiry (loop.h) */
}

/* A host appeared on the port: a new QMP session. The greeting must be its
 * first line, so it goes before what is still queued; the rest of a line an
 * earlier host got only part of is dropped (it would garble the greeting). A
 * guest that never saw the previous host leave cannot know a new one came:
 * then there is no greeting, and `luoinit ctl` negotiates without one. */
static void port_new_session(struct conn *c)
{
	char *g = ctl_proto_format_greeting();
	size_t glen, pending;
	char *nl;

	ctl_session_reset(&c->sess);
	if (c->sessions)
		client_gone(c);
	c->sessions++;
	if (c->out_off > 0 && c->out[c->out_off - 1] != '\n') {
		nl = memchr(c->out + c->out_off, '\n', c->out_len - c->out_off);
		c->out_off = nl ? (size_t)(nl - c->out) + 1 : c->out_len;
	}
	if (!g) {
		log_err("ctl: out of memory for the greeting");
		return;
	}
	glen = strlen(g);
	pending = c->out_len - c->out_off;
	if (glen + pending > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *p;

		while (cap < glen + pending)
			cap *= 2;
		p = realloc(c->out, cap);
		if (!p) {
			log_err("ctl: out of memory for the greeting");
			free(g);
			return;
		}
		c->out = p;
		c->out_cap = cap;
	}
	memmove(c->out + glen, c->out + c->out_off, pending);
	memcpy(c->out, g, glen);
	c->out_off = 0;
	c->out_len = glen + pending;
	free(g);
	conn_update_events(c);
}

/* Write what the fd takes now: bytes written, or a negative errno. */
static ssize_t conn_write(struct conn *c, const char *buf, size_t len)
{
	ssize_t n;

	for (;;) {
		if (c->kind == CONN_SOCKET)
			n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		else
			n = write(c->fd, buf, len);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -errno;
	}
}

static void conn_write_failed(struct conn *c, int err)
{
	if (c->kind == CONN_PORT) {
		port_disconnected(c);
		return;
	}
	if (err != -EPIPE && err != -ECONNRESET)
		log_errno(LOG_DEBUG, -err, "ctl: client write");
	conn_close(c);
}

static void conn_flush(struct conn *c)
{
	ssize_t n;

	while (!c->dead && c->out_len > c->out_off) {
		n = conn_write(c, c->out + c->out_off, c->out_len - c->out_off);
		if (n < 0) {
			conn_write_failed(c, (int)n);
			return;
		}
		if (n == 0)
			break;
		c->out_off += (size_t)n;
	}
	if (c->dead)
		return;
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->eof && c->out_len == 0 && c->kind == CONN_SOCKET) {
		conn_close(c);
		return;
	}
	conn_update_events(c);
}

/* Queue a line, writing what the fd takes now. A client with over CTL_OUT_MAX
 * unread is not reading: a reply disconnects it (a port just loses its
 * backlog), an event is dropped (drop_if_full). So a queue holds at most
 * CTL_OUT_MAX plus one reply, and lines are only ever queued whole. */
static void conn_send(struct conn *c, const char *buf, size_t len, int drop_if_full)
{
	size_t pending;
	ssize_t n;

	if (c->dead || !c->registered)
		return;
	if (drop_if_full && c->port_timer >= 0)
		return; /* an event for a port without a host: nobody to tell */
	pending = c->out_len - c->out_off;
	if (drop_if_full && len > CTL_OUT_MAX - (pending < CTL_OUT_MAX ? pending : CTL_OUT_MAX))
		return;
	if (!drop_if_full && pending >= CTL_OUT_MAX) {
		log_warn("ctl: client does not read its replies; disconnecting it");
		if (c->kind == CONN_PORT)
			c->out_len = c->out_off = pending = 0;
		else {
			conn_close(c);
			return;
		}
	}
	if (pending == 0) {
		n = conn_write(c, buf, len);
		if (n < 0) {
			conn_write_failed(c, (int)n);
			return;
		}
		buf += n;
		len -= (size_t)n;
		if (len == 0)
			return;
	}
	if (c->out_off > 0) {
		memmove(c->out, c->out + c->out_off, pending);
		c->out_off = 0;
		c->out_len = pending;
	}
	if (c->out_len + len > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *p;

		while (cap < c->out_len + len)
			cap *= 2;
		p = realloc(c->out, cap);
		if (!p) {
			log_err("ctl: out of memory for a reply; disconnecting the client");
			conn_close(c);
			return;
		}
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, buf, len);
	c->out_len += len;
	conn_update_events(c);
}

static void conn_send_line(struct conn *c, char *line)
{
	if (!line) {
		log_err("ctl: out of memory formatting a reply");
		return;
	}
	conn_send(c, line, strlen(line), 0);
	free(line);
}

static void conn_send_error(struct conn *c, const char *desc, struct json_object *id)
{
	struct cmd_error err = { 0 };

	ctl_proto_set_error(&err, NULL, "%s", desc);
	conn_send_line(c, ctl_proto_format_error(&err, id));
}

static void conn_handle_line(struct conn *c, const char *line, size_t len)
{
	struct ctl_request req;
	struct cmd_error err = { 0 };
	struct json_object *ret = NULL;
	char *reply;
	int r;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	r = ctl_proto_parse(line, len, &req, &err);
	if (r == -ENODATA) {
		ctl_request_clear(&req);
		return;
	}
	if (r == 0) {
		uint64_t outer = srv.current;

		c->in_handler = 1;
		conn_update_events(c);
		srv.current = c->client;
		r = ctl_session_execute(&c->sess, c->fn, req.execute, req.args, &ret, &err);
		srv.current = outer;
		c->in_handler = 0;
		if (r < 0 && !err.desc[0])
			ctl_proto_set_error(&err, err.class_[0] ? err.class_ : NULL, "%s: %s",
					    req.execute, strerror(-r));
	}
	if (!c->dead) {
		reply = r < 0 ? ctl_proto_format_error(&err, req.id)
			      : ctl_proto_format_return(ret, req.id);
		conn_send_line(c, reply);
	}
	json_object_put(ret);
	ctl_request_clear(&req);
}

/* Run every complete request in the input buffer (ctl_proto_frame: a line,
 * or an object without its newline), then police what is left. */
static void conn_process(struct conn *c)
{
	size_t start = 0, n, used;
	int completed = 0;
	bool paused = false;
	char *nl;

	while (!c->dead && start < c->in_len) {
		if (conn_backlogged(c)) {
			paused = true; /* resumed once the replies are read (conn_cb) */
			break;
		}
		if (c->discarding) {
			nl = memchr(c->in + start, '\n', c->in_len - start);
			if (!nl)
				break;
			c->discarding = 0;
			start = (size_t)(nl - c->in) + 1;
		} else {
			if (!ctl_proto_frame(&c->fr, c->in + start, c->in_len - start, &n, &used))
				break;
			ctl_framer_reset(&c->fr);
			conn_handle_line(c, c->in + start, n);
			start += used;
		}
		completed = 1;
	}
	if (c->dead)
		return;
	memmove(c->in, c->in + start, c->in_len - start);
	c->in_len -= start;
	if (c->discarding) {
		c->in_len = 0;
	} else if (c->in_len >= CTL_IN_MAX && !paused) {
		char desc[80];

		snprintf(desc, sizeof(desc), "request line longer than %d bytes", CTL_LINE_MAX);
		c->in_len = 0;
		c->discarding = 1;
		ctl_framer_reset(&c->fr);
		conn_send_error(c, desc, NULL);
	}
	if (completed)
		c->partial_since = 0;
	if ((c->in_len > 0 || c->discarding) && !c->partial_since)
		c->partial_since = now_ms();
	else if (c->in_len == 0 && !c->discarding)
		c->partial_since = 0;
}

/* Make room to read: grow the buffer up to CTL_IN_MAX. Returns the free space. */
static size_t conn_in_room(struct conn *c)
{
	if (c->in_len == c->in_cap && c->in_cap < CTL_IN_MAX) {
		size_t cap = c->in_cap ? c->in_cap * 4 : CTL_IN_START;
		char *p;

		if (cap > CTL_IN_MAX)
			cap = CTL_IN_MAX;
		p = realloc(c->in, cap);
		if (!p)
			return 0;
		c->in = p;
		c->in_cap = cap;
	}
	return c->in_cap - c->in_len;
}

static void conn_eof(struct conn *c)
{
	if (c->kind == CONN_PORT) {
		/* No data and no host: a partial line was the last session's, and
		 * must not prefix the next session's request. */
		c->in_len = 0;
		c->discarding = 0;
		c->partial_since = 0;
		ctl_framer_reset(&c->fr);
		port_disconnected(c);
		return;
	}
	/* A last request without its newline still counts. */
	if (c->in_len > 0 && !c->discarding && conn_in_room(c) > 0) {
		c->in[c->in_len++] = '\n';
		conn_process(c);
		if (c->dead)
			return;
	}
	c->eof = 1;
	conn_flush(c);
}

static void conn_read(struct conn *c)
{
	size_t room;
	ssize_t n;

	for (int i = 0; i < CTL_READ_BATCH && !c->dead && !c->eof && c->registered && !conn_backlogged(c); i++) {
		room = conn_in_room(c);
		if (room == 0) {
			log_err("ctl: out of memory for a request; disconnecting the client");
			conn_close(c);
			return;
		}
		n = read(c->fd, c->in + c->in_len, room);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (c->kind == CONN_SOCKET && errno != ECONNRESET)
				log_errno(LOG_DEBUG, errno, "ctl: client read");
			if (c->kind == CONN_PORT)
				port_disconnected(c);
			else
				conn_close(c);
			return;
		}
		if (n == 0) {
			conn_eof(c);
			return;
		}
		c->in_len += (size_t)n;
		conn_process(c);
	}
}

static void conn_cb(int fd, uint32_t events, void *data)
{
	struct conn *c = data;
	unsigned sessions = c->sessions;

	if (c->kind == CONN_PORT && c->port_timer >= 0) {
		/* Away: an edge-triggered wake-up, maybe the host connecting. */
		port_try_reconnect(c);
		if (c->port_timer >= 0)
			return;
	}
	c->busy++;
	if (c->busy > 1) {
		/* Re-entered from a handler's nested loop: only flush or drop. */
		if (events & EPOLLOUT)
			conn_flush(c);
		if (!c->dead && (events & (EPOLLHUP | EPOLLERR))) {
			if (c->kind == CONN_PORT)
				port_disconnected(c);
			else
				conn_close(c);
		}
		c->busy--;
		return;
	}
	if (events & EPOLLOUT) {
		conn_flush(c);
		/* Its replies read: the requests it sent meanwhile run now. */
		if (!c->dead && !conn_backlogged(c) && c->in_len > 0)
			conn_process(c);
	}
	if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		conn_read(c);
	/* A port without a host reports EPOLLHUP with nothing to read (unless
	 * the session it ended was already replaced above). */
	if (!c->dead && c->kind == CONN_PORT && c->registered && (events & EPOLLHUP) &&
	    c->sessions == sessions)
		port_disconnected(c);
	else if (!c->dead && c->kind == CONN_SOCKET &&
		 ((events & EPOLLERR) || ((events & EPOLLHUP) && conn_backlogged(c))))
		conn_close(c); /* hung up with replies unread: nothing to read them */
	if (!c->dead)
		conn_update_events(c);
	c->busy--;
	if (c->dead && c->busy == 0)
		conn_free(c);
}

static void idle_timer_cb(int fd, uint32_t events, void *data)
{
	uint64_t now = now_ms(); /* the loop read the expiry (loop.h) */
	struct conn *c, *next;

	for (c = srv.conns; c; c = next) {
		next = c->next;
		if (!c->partial_since || now - c->partial_since < srv.idle_ms || c->busy)
			continue;
		if (c->kind == CONN_PORT) {
			c->in_len = 0;
			c->discarding = 0;
			c->partial_since = 0;
			ctl_framer_reset(&c->fr);
			continue;
		}
		c->busy++; /* the send may close it already */
		if (conn_backlogged(c)) {
			log_info("ctl: closing a client that has not read its replies for %llu s",
				 (unsigned long long)(srv.idle_ms / 1000));
		} else {
			log_info("ctl: closing a client idle mid-request");
			conn_send_error(c, "timeout: incomplete request line", NULL);
		}
		conn_close(c);
		if (--c->busy == 0)
			conn_free(c);
	}
}

/* Watch for stalled partial lines only while there is something to watch. */
static void idle_timer_update(void)
{
	uint64_t every = srv.idle_ms / 4;
	int t;

	if (!srv.conns) {
		loop_timer_del(srv.idle_timer);
		srv.idle_timer = -1;
		return;
	}
	if (srv.idle_timer >= 0)
		return;
	if (every > 5000)
		every = 5000;
	if (every == 0)
		every = 1;
	t = loop_timer_add(every, every, idle_timer_cb, NULL);
	if (t < 0)
		log_errno(LOG_WARN, -t, "ctl: cannot arm the idle timer");
	else
		srv.idle_timer = t;
}

static struct conn *conn_new(int fd, enum conn_kind kind, ctl_handler fn)
{
	struct conn *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return NULL;
	c->fd = fd;
	c->kind = kind;
	c->fn = fn;
	c->port_timer = -1;
	c->client = ++srv.next_client;
	r = loop_add(fd, EPOLLIN, conn_cb, c);
	if (r < 0) {
		free(c);
		errno = -r;
		return NULL;
	}
	c->registered = 1;
	c->events = EPOLLIN;
	c->next = srv.conns;
	srv.conns = c;
	if (kind == CONN_SOCKET)
		srv.nclients++;
	idle_timer_update();
	return c;
}

static void refuse(int fd, const char *desc)
{
	struct cmd_error err = { 0 };
	char *line;

	ctl_proto_set_error(&err, NULL, "%s", desc);
	line = ctl_proto_format_error(&err, NULL);
	if (line)
		(void)!send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
	free(line);
	close(fd);
}

static void accept_retry_cb(int fd, uint32_t events, void *data)
{
	loop_timer_del(srv.accept_timer);
	srv.accept_timer = -1;
	if (srv.fd >= 0)
		(void)loop_mod(srv.fd, EPOLLIN);
}

static void listen_cb(int lfd, uint32_t events, void *data)
{
	struct conn *c;
	struct ucred cred;
	socklen_t clen;
	int fd;

	for (int i = 0; i < CTL_ACCEPT_BATCH; i++) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			/* Out of fds or memory: the listener stays readable, so pause it
			 * instead of spinning. */
			log_errno(LOG_WARN, errno, "ctl: accept");
			if (srv.accept_timer < 0 && loop_mod(lfd, 0) == 0) {
				srv.accept_timer = loop_timer_add(CTL_RETRY_MS, 0, accept_retry_cb, NULL);
				if (srv.accept_timer < 0)
					(void)loop_mod(lfd, EPOLLIN);
			}
			return;
		}
		clen = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
			log_errno(LOG_WARN, errno, "ctl: SO_PEERCRED");
			refuse(fd, "permission denied: peer credentials unavailable");
			continue;
		}
		if (cred.uid != 0 && cred.uid != geteuid()) {
			log_warn("ctl: refusing a client with uid %u (pid %d)", (unsigned)cred.uid,
				 (int)cred.pid);
			refuse(fd, "permission denied: only root may use this socket");
			continue;
		}
		if (srv.nclients >= CTL_MAX_CLIENTS) {
			log_warn("ctl: too many clients (%d); refusing pid %d", CTL_MAX_CLIENTS,
				 (int)cred.pid);
			refuse(fd, "too many clients connected");
			continue;
		}
		c = conn_new(fd, CONN_SOCKET, srv.fn);
		if (!c) {
			log_errno(LOG_WARN, errno, "ctl: cannot serve a client");
			refuse(fd, "server out of resources");
			continue;
		}
		log_debug("ctl: client connected (pid %d, uid %u)", (int)cred.pid, (unsigned)cred.uid);
		/* QMP: the server speaks first. (c may be gone after this.) */
		conn_send_line(c, ctl_proto_format_greeting());
	}
}

/* Remove a socket file left by an earlier server, but never a live one nor
 * anything that is not a socket. */
static int unlink_stale(const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	r = r == 0 || errno == EAGAIN ? -EADDRINUSE : 0;
	close(fd);
	if (r < 0)
		return r;
	if (unlink(sa->sun_path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int ctl_server_listen(const char *path, ctl_handler fn)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old;
	int fd, r;

	if (srv.fd >= 0)
		return -EALREADY;
	if (!path || !fn)
		return -EINVAL;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	r = unlink_stale(&sa);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* umask closes the window between bind and chmod. */
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || chmod(path, 0600) < 0 || listen(fd, CTL_MAX_CLIENTS) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	srv.path = strdup(path);
	if (!srv.path) {
		close(fd);
		(void)unlink(path);
		return -ENOMEM;
	}
	r = loop_add(fd, EPOLLIN, listen_cb, NULL);
	if (r < 0) {
		close(fd);
		(void)unlink(path);
		free(srv.path);
		srv.path = NULL;
		return r;
	}
	srv.fd = fd;
	srv.fn = fn;
	return 0;
}

int ctl_server_add_port(const char *devpath, ctl_handler fn)
{
	struct termios tio;
	struct conn *c;
	int fd;

	if (!devpath || !fn)
		return -EINVAL;
	fd = open(devpath, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	/* A tty (a serial line, or a pty in tests) must pass bytes untouched. */
	if (tcgetattr(fd, &tio) == 0) {
		cfmakeraw(&tio);
		if (tcsetattr(fd, TCSANOW, &tio) < 0)
			log_errno(LOG_WARN, errno, "ctl: %s: raw mode", devpath);
	}
	c = conn_new(fd, CONN_PORT, fn);
	if (!c) {
		int r = -errno;

		close(fd);
		return r;
	}
	/* The host side may not be connected: find out now, not on a busy
	 * EPOLLHUP. One that is gets its greeting now. */
	if (port_host_present(c))
		port_new_session(c);
	else
		port_disconnected(c);
	return 0;
}

void ctl_server_broadcast_event(const char *name, struct json_object *data)
{
	struct timespec ts;
	struct conn *c, *next;
	char *line;
	size_t len;

	if (!srv.conns)
		return;
	(void)clock_gettime(CLOCK_REALTIME, &ts);
	line = ctl_proto_format_event(name, data, (int64_t)ts.tv_sec, (int64_t)(ts.tv_nsec / 1000));
	if (!line)
		return;
	len = strlen(line);
	for (c = srv.conns; c; c = next) {
		next = c->next;
		if (c->sess.negotiated) /* QMP: no events before negotiation */
			conn_send(c, line, len, 1);
	}
	free(line);
}

void ctl_server_close(void)
{
	struct conn *c;

	while ((c = srv.conns))
		conn_close(c);
	loop_timer_del(srv.idle_timer);
	srv.idle_timer = -1;
	loop_timer_del(srv.accept_timer);
	srv.accept_timer = -1;
	if (srv.fd >= 0) {
		loop_del(srv.fd);
		close(srv.fd);
		srv.fd = -1;
	}
	if (srv.path) {
		(void)unlink(srv.path);
		free(srv.path);
		srv.path = NULL;
	}
}

void ctl_server_set_idle_timeout(uint64_t ms)
{
	srv.idle_ms = ms ? ms : CTL_IDLE_MS;
	loop_timer_del(srv.idle_timer);
	srv.idle_timer = -1;
	idle_timer_update();
}

int ctl_server_client_count(void)
{
	return srv.nclients;
}

uint64_t ctl_server_current_client(void)
{
	return srv.current;
}

void ctl_server_set_gone_hook(void (*fn)(uint64_t client))
{
	srv.gone = fn;
}
