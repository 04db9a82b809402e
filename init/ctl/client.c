/* `luoinit ctl`: a QMP client. It reads the greeting, negotiates with
 * qmp_capabilities, sends one command and prints its reply, skipping events;
 * `luoinit ctl watch` prints the events instead.
 *
 * The socket may also be the host end of the management port: a stream shared
 * with earlier clients. So every request carries a unique id and every line
 * that is not the reply to it is ignored, and the greeting may be missing (the
 * guest may not have seen the previous host leave: ctl/server.c): after
 * GREETING_WAIT_MS the client negotiates anyway, takes "already negotiated"
 * for success, renegotiates on any later greeting (a new session), and sends
 * a command again that a new session refused as not negotiated (it did not
 * run). */
#include "ctl/client.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "pid1/loop.h"
#include "update/sha256.h"

#define CTL_CLIENT_LINE_MAX (64 * 1024 * 1024) /* replies such as vm-log can be big */
#define CTL_DEFAULT_TIMEOUT 60
#define GREETING_WAIT_MS    1000
#define NEGOTIATE_TRIES     3

static void usage(FILE *f)
{
	fprintf(f,
		"usage: luoinit ctl [--socket PATH] [--timeout SEC] COMMAND [key=value ...]\n"
		"       luoinit ctl [--socket PATH] [--timeout SEC] watch\n"
		"       luoinit ctl [--socket PATH] [--timeout SEC] image-push FILE\n"
		"  key=value   integers, true, false and null are typed, the rest are strings\n"
		"  key:=JSON   a raw JSON value\n"
		"  --socket    default " CTL_DEFAULT_SOCKET "; also the host end of the\n"
		"              appliance's management port\n"
		"  --timeout   seconds to wait for the reply (default %d, 0: forever);\n"
		"              for watch, for the connection to be ready\n"
		"  watch       print each event as one JSON line until interrupted or the\n"
		"              connection closes\n"
		"  image-push  send a firmware image to <state>/firmware/ in chunks, with\n"
		"              progress on stderr; prints what was stored\n"
		"commands: status, vm-start, vm-stop, vm-restart, vmm-update, update, vm-log,\n"
		"          poweroff, reboot, query-commands, query-version\n", CTL_DEFAULT_TIMEOUT);
}

/* -?[0-9]+ without a leading zero (so "007" stays a string), within int64. */
static int parse_int(const char *s, int64_t *ret)
{
	const char *d = s[0] == '-' ? s + 1 : s;
	char *end;
	long long v;

	if (!*d || (d[0] == '0' && d[1]) || strspn(d, "0123456789") != strlen(d))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return -ERANGE;
	*ret = v;
	return 0;
}

static struct json_object *parse_value(const char *v)
{
	int64_t i;

	if (parse_int(v, &i) == 0)
		return json_object_new_int64(i);
	if (strcmp(v, "true") == 0)
		return json_object_new_boolean(1);
	if (strcmp(v, "false") == 0)
		return json_object_new_boolean(0);
	return json_object_new_string(v);
}

/* One strict JSON value filling all of s. Returns 0, or -EINVAL with *ret_err. */
static int parse_raw(const char *s, struct json_object **ret, const char **ret_err)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o;
	enum json_tokener_error jerr;
	size_t len = strlen(s), end;

	if (!tok) {
		*ret_err = "out of memory";
		return -ENOMEM;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
	/* Include the NUL: it ends a bare number or literal. */
	o = json_tokener_parse_ex(tok, s, (int)len + 1);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (jerr != json_tokener_success) {
		*ret_err = json_tokener_error_desc(jerr);
		return -EINVAL;
	}
	for (; end < len; end++) {
		if (!strchr(" \t\r\n", s[end])) {
			json_object_put(o);
			*ret_err = "trailing data after the value";
			return -EINVAL;
		}
	}
	*ret = o;
	return 0;
}

int ctl_client_build_args(int n, char **words, struct json_object **ret_args,
			  char *errbuf, unsigned errlen)
{
	struct json_object *args = json_object_new_object(), *val;
	const char *perr;
	char *eq, *key;
	int raw;

	if (!args) {
		snprintf(errbuf, errlen, "out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		eq = strchr(words[i], '=');
		if (!eq || eq == words[i] || (eq == words[i] + 1 && words[i][0] == ':')) {
			snprintf(errbuf, errlen, "argument '%s' is not key=value or key:=JSON", words[i]);
			goto fail;
		}
		raw = eq[-1] == ':';
		key = strndup(words[i], (size_t)(eq - words[i]) - (size_t)raw);
		if (!key) {
			snprintf(errbuf, errlen, "out of memory");
			goto fail;
		}
		if (json_object_object_get_ex(args, key, NULL)) {
			snprintf(errbuf, errlen, "argument '%s' given twice", key);
			free(key);
			goto fail;
		}
		if (raw) {
			if (parse_raw(eq + 1, &val, &perr) < 0) {
				snprintf(errbuf, errlen, "argument '%s': bad JSON: %s", key, perr);
				free(key);
				goto fail;
			}
		} else if (strcmp(eq + 1, "null") == 0) {
			val = NULL;
		} else {
			val = parse_value(eq + 1);
			if (!val) {
				snprintf(errbuf, errlen, "out of memory");
				free(key);
				goto fail;
			}
		}
		if (json_object_object_add(args, key, val) < 0) {
			json_object_put(val);
			snprintf(errbuf, errlen, "out of memory");
			free(key);
			goto fail;
		}
		free(key);
	}
	*ret_args = args;
	return 0;
fail:
	json_object_put(args);
	return -EINVAL;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

static int send_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One session with the server: the connection, its input, the ids in flight. */
struct cl {
	int fd;
	const char *path;
	char *buf;
	size_t len, cap;
	bool skipping;          /* dropping the rest of an overlong line */
	char base[40];          /* unique per invocation */
	unsigned seq;           /* numbers the ids after the first */
	char caps_id[56];       /* the qmp_capabilities in flight, "" when none */
	char refusal[512];      /* an error without id: a refused connection says why */
	bool asked, negotiated; /* cl_call: qmp_capabilities sent, and answered */
};

/* Send {"execute": name, "arguments": args, "id": id} on its own line. args
 * is borrowed, may be NULL. The leading newline ends any partial line an
 * earlier client left on a shared stream; the server ignores blank lines. */
static int cl_send(struct cl *c, const char *name, struct json_object *args, const char *id)
{
	struct json_object *req = json_object_new_object();
	const char *s;
	char *line = NULL;
	int r = -ENOMEM;

	if (req && json_object_object_add(req, "execute", json_object_new_string(name)) == 0 &&
	    (!args || json_object_object_add(req, "arguments", json_object_get(args)) == 0) &&
	    json_object_object_add(req, "id", json_object_new_string(id)) == 0 &&
	    (s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
						     JSON_C_TO_STRING_NOSLASHESCAPE)) &&
	    asprintf(&line, "\n%s\n", s) >= 0) {
		r = send_all(c->fd, line, strlen(line));
		if (r < 0)
			fprintf(stderr, "luoinit ctl: %s: send: %s\n", c->path, strerror(-r));
	}
	if (r == -ENOMEM)
		fprintf(stderr, "luoinit ctl: out of memory\n");
	free(line);
	json_object_put(req);
	return r;
}

static int cl_negotiate(struct cl *c)
{
	snprintf(c->caps_id, sizeof(c->caps_id), "%s-caps%u", c->base, ++c->seq);
	return cl_send(c, "qmp_capabilities", NULL, c->caps_id);
}

/* Next line as JSON (lines that are not JSON are skipped). Returns 1 and *ret
 * (caller puts it), 0 when deadline (now_ms(); 0: none) passed, -1 on end of
 * stream or an error (said on stderr unless the server just closed). */
static int cl_next(struct cl *c, uint64_t deadline, struct json_object **ret)
{
	char *nl;
	ssize_t n;

	for (;;) {
		while ((nl = memchr(c->buf, '\n', c->len))) {
			size_t used = (size_t)(nl - c->buf) + 1;
			struct json_object *o = NULL;

			*nl = '\0';
			if (!c->skipping)
				o = json_tokener_parse(c->buf);
			c->skipping = false;
			memmove(c->buf, c->buf + used, c->len - used);
			c->len -= used;
			if (o) {
				*ret = o;
				return 1;
			}
		}
		if (c->len == c->cap) {
			size_t ncap = c->cap ? c->cap * 2 : 65536;
			char *p;

			if (ncap > CTL_CLIENT_LINE_MAX) {
				/* A line longer than any reply we expect: skip to its end. */
				c->len = 0;
				c->skipping = true;
				ncap = c->cap;
			}
			p = ncap == c->cap ? c->buf : realloc(c->buf, ncap);
			if (!p) {
				fprintf(stderr, "luoinit ctl: out of memory\n");
				return -1;
			}
			c->buf = p;
			c->cap = ncap;
		}
		{
			struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
			uint64_t now = now_ms();

			if (deadline && now >= deadline)
				return 0;
			n = poll(&pfd, 1, deadline ? (int)(deadline - now) : -1);
			if (n < 0 && errno != EINTR) {
				fprintf(stderr, "luoinit ctl: poll: %s\n", strerror(errno));
				return -1;
			}
			if (n <= 0)
				continue;
		}
		n = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			fprintf(stderr, "luoinit ctl: %s: read: %s\n", c->path, strerror(errno));
			return -1;
		}
		if (n == 0)
			return -1;
		c->len += (size_t)n;
	}
}

static bool is_greeting(struct json_object *o)
{
	struct json_object *v;

	return json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, "QMP", &v) &&
	       json_object_is_type(v, json_type_object);
}

/* 1 when o is the reply to id: a JSON object with that id and "return" or "error". */
static int is_reply_to(struct json_object *o, const char *id)
{
	struct json_object *v;

	if (!json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "id", &v) || !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), id) != 0)
		return 0;
	return json_object_object_get_ex(o, "return", NULL) ||
	       json_object_object_get_ex(o, "error", NULL);
}

/* The error's class and desc ("" when absent); NULL class: not an error. */
static const char *error_of(struct json_object *o, const char **desc)
{
	struct json_object *e, *v;
	const char *cls = "";

	*desc = "";
	if (!json_object_object_get_ex(o, "error", &e) || !json_object_is_type(e, json_type_object))
		return NULL;
	if (json_object_object_get_ex(e, "class", &v) && json_object_is_type(v, json_type_string))
		cls = json_object_get_string(v);
	if (json_object_object_get_ex(e, "desc", &v) && json_object_is_type(v, json_type_string))
		*desc = json_object_get_string(v);
	return cls;
}

/* Print the reply; returns the exit status. */
static int print_reply(struct json_object *o, const char *path)
{
	struct json_object *v, *desc;

	if (json_object_object_get_ex(o, "return", &v)) {
		const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PRETTY |
								  JSON_C_TO_STRING_SPACED |
								  JSON_C_TO_STRING_NOSLASHESCAPE);
		if (printf("%s\n", s ? s : "null") < 0 || fflush(stdout) == EOF) {
			fprintf(stderr, "luoinit ctl: writing the reply: %s\n", strerror(errno));
			return 1;
		}
		return 0;
	}
	(void)json_object_object_get_ex(o, "error", &v);
	if (json_object_object_get_ex(v, "desc", &desc) &&
	    json_object_is_type(desc, json_type_string))
		fprintf(stderr, "%s\n", json_object_get_string(desc));
	else
		fprintf(stderr, "luoinit ctl: %s: error reply without a description: %s\n", path,
			json_object_to_json_string(v));
	return 1;
}

/* One event as one JSON line on stdout; returns 0 or the exit status 1. */
static int print_event(struct json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							  JSON_C_TO_STRING_NOSLASHESCAPE);

	if (!s || printf("%s\n", s) < 0 || fflush(stdout) == EOF) {
		fprintf(stderr, "luoinit ctl: writing an event: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

/* Negotiate, then run CMD with ARGS (NULL: watch events instead). Returns the
 * exit status. */
static int cl_run(struct cl *c, const char *cmd, struct json_object *args, unsigned timeout_s)
{
	uint64_t start = now_ms(), deadline = timeout_s ? start + (uint64_t)timeout_s * 1000 : 0;
	char cmd_id[56] = "";
	bool asked = false;     /* qmp_capabilities sent at least once */
	bool negotiated = false, announced = false;
	unsigned tries = 0;
	const char *cls, *desc;
	struct json_object *o;
	int r, rc = 1;

	for (;;) {
		uint64_t until = deadline;

		if (!asked && (!until || start + GREETING_WAIT_MS < until))
			until = start + GREETING_WAIT_MS;
		r = cl_next(c, until, &o);
		if (r == 0) {
			if (!asked && (!deadline || now_ms() < deadline)) {
				/* No greeting: negotiate anyway (see the top of the file). */
				asked = true;
				if (cl_negotiate(c) < 0)
					return 1;
				continue;
			}
			fprintf(stderr, "luoinit ctl: %s: no reply within %u s\n", c->path, timeout_s);
			return 1;
		}
		if (r < 0) {
			if (!cmd && negotiated)
				return 0; /* watched until the server went */
			if (c->refusal[0])
				fprintf(stderr, "%s\n", c->refusal);
			else
				fprintf(stderr, "luoinit ctl: %s: connection closed before the reply\n", c->path);
			return 1;
		}
		if (is_greeting(o)) {
			/* A (new) session: negotiate it. A command in flight is
			 * answered, or refused unrun as not negotiated: sent again. */
			asked = true;
			negotiated = false;
			if (cl_negotiate(c) < 0)
				goto out;
		} else if (c->caps_id[0] && is_reply_to(o, c->caps_id)) {
			cls = error_of(o, &desc);
			if (cls && !(strcmp(cls, "CommandNotFound") == 0 && strstr(desc, "already complete"))) {
				rc = print_reply(o, c->path);
				goto out;
			}
			c->caps_id[0] = '\0';
			if (!cmd && !announced) /* once: a new session goes on silently */
				fprintf(stderr, "luoinit ctl: watching events on %s\n", c->path);
			announced = negotiated = true;
			if (!cmd) {
				deadline = 0; /* watching: no more deadline */
			} else if (!cmd_id[0]) {
				if (tries++ == 0)
					snprintf(cmd_id, sizeof(cmd_id), "%s", c->base);
				else
					snprintf(cmd_id, sizeof(cmd_id), "%s-%u", c->base, ++c->seq);
				if (cl_send(c, cmd, args, cmd_id) < 0)
					goto out;
			}
		} else if (cmd && cmd_id[0] && is_reply_to(o, cmd_id)) {
			cls = error_of(o, &desc);
			if (cls && strcmp(cls, "CommandNotFound") == 0 &&
			    strncmp(desc, "Expecting capabilities negotiation", 34) == 0 && tries < NEGOTIATE_TRIES) {
				/* Refused unrun by a session that began after ours. */
				cmd_id[0] = '\0';
				negotiated = false;
				if (cl_negotiate(c) < 0)
					goto out;
			} else {
				rc = print_reply(o, c->path);
				goto out;
			}
		} else if (!cmd && negotiated && json_object_object_get_ex(o, "event", NULL)) {
			if (print_event(o) != 0)
				goto out;
		} else if (!json_object_object_get_ex(o, "id", NULL) && error_of(o, &desc)) {
			/* A refused connection gets one error line and a close. */
			snprintf(c->refusal, sizeof(c->refusal), "%s", desc);
		}
		json_object_put(o);
	}
out:
	json_object_put(o);
	return rc;
}

/* One command on a session that may already be negotiated (cl_run's rules,
 * for a sequence of commands). Returns 1 with *ret, the whole reply (caller
 * puts it; it may be an error), or -1 when the session broke (said on
 * stderr). */
static int cl_call(struct cl *c, const char *cmd, struct json_object *args, unsigned timeout_s,
		   struct json_object **ret)
{
	uint64_t start = now_ms(), deadline = timeout_s ? start + (uint64_t)timeout_s * 1000 : 0;
	char cmd_id[56] = "";
	unsigned tries = 0;
	const char *cls, *desc;
	struct json_object *o;
	int r;

	if (c->negotiated) {
		snprintf(cmd_id, sizeof(cmd_id), "%s-%u", c->base, ++c->seq);
		tries = 1;
		if (cl_send(c, cmd, args, cmd_id) < 0)
			return -1;
	}
	for (;;) {
		uint64_t until = deadline;

		if (!c->asked && (!until || start + GREETING_WAIT_MS < until))
			until = start + GREETING_WAIT_MS;
		r = cl_next(c, until, &o);
		if (r == 0) {
			if (!c->asked && (!deadline || now_ms() < deadline)) {
				c->asked = true;
				if (cl_negotiate(c) < 0)
					return -1;
				continue;
			}
			fprintf(stderr, "luoinit ctl: %s: no reply to %s within %u s\n", c->path, cmd, timeout_s);
			return -1;
		}
		if (r < 0) {
			fprintf(stderr, "%s\n", c->refusal[0] ? c->refusal : "luoinit ctl: connection closed before the reply");
			return -1;
		}
		if (is_greeting(o)) {
			c->asked = true;
			c->negotiated = false;
			if (cl_negotiate(c) < 0)
				goto broken;
		} else if (c->caps_id[0] && is_reply_to(o, c->caps_id)) {
			cls = error_of(o, &desc);
			if (cls && !(strcmp(cls, "CommandNotFound") == 0 && strstr(desc, "already complete"))) {
				fprintf(stderr, "%s\n", desc);
				goto broken;
			}
			c->caps_id[0] = '\0';
			c->negotiated = true;
			if (!cmd_id[0]) {
				snprintf(cmd_id, sizeof(cmd_id), "%s-%u", c->base, ++c->seq);
				tries++;
				if (cl_send(c, cmd, args, cmd_id) < 0)
					goto broken;
			}
		} else if (cmd_id[0] && is_reply_to(o, cmd_id)) {
			cls = error_of(o, &desc);
			if (cls && strcmp(cls, "CommandNotFound") == 0 &&
			    strncmp(desc, "Expecting capabilities negotiation", 34) == 0 && tries < NEGOTIATE_TRIES) {
				cmd_id[0] = '\0';
				c->negotiated = false;
				if (cl_negotiate(c) < 0)
					goto broken;
			} else {
				*ret = o;
				return 1;
			}
		} else if (!json_object_object_get_ex(o, "id", NULL) && error_of(o, &desc)) {
			snprintf(c->refusal, sizeof(c->refusal), "%s", desc);
		}
		json_object_put(o);
	}
broken:
	json_object_put(o);
	return -1;
}

/* The "return" of a reply, or NULL with the error's desc on stderr. */
static struct json_object *reply_return(struct json_object *o, const char *what)
{
	struct json_object *v;
	const char *desc;

	if (json_object_object_get_ex(o, "return", &v))
		return v;
	(void)error_of(o, &desc);
	fprintf(stderr, "%s%s%s\n", desc[0] ? "" : "luoinit ctl: ", desc[0] ? desc : what,
		desc[0] ? "" : ": an error without a description");
	return NULL;
}

static void progress(uint64_t done, uint64_t size, int *shown)
{
	int pct = size ? (int)(done * 100 / size) : 100;

	if (pct / 10 == *shown / 10 && done != size)
		return;
	*shown = pct;
	fprintf(stderr, "luoinit ctl: image-push: %.1f of %.1f MiB (%d%%)\n", (double)done / (1 << 20),
		(double)size / (1 << 20), pct);
}

/* luoinit ctl image-push FILE: begin, the chunks, end (the init's
 * image-push-* commands; README, "Firmware images: delivery"). */
static int image_push(struct cl *c, const char *file, unsigned timeout_s)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char hex[SHA256_HEX_LEN + 1], *enc = NULL;
	struct json_object *args = NULL, *o = NULL, *v, *ret;
	uint8_t *buf = NULL;
	uint64_t size, off = 0;
	int64_t handle;
	size_t chunk = 32 * 1024;
	struct stat st;
	int fd, rc = 1, shown = -10;

	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "luoinit ctl: image-push: %s: %s\n", file, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "luoinit ctl: image-push: %s: not a regular file\n", file);
		goto out;
	}
	size = (uint64_t)st.st_size;
	if (sha256_fd_hex(fd, hex) < 0) {
		fprintf(stderr, "luoinit ctl: image-push: reading %s: %s\n", file, strerror(errno));
		goto out;
	}
	args = json_object_new_object();
	json_object_object_add(args, "size", json_object_new_int64((int64_t)size));
	json_object_object_add(args, "sha256", json_object_new_string(hex));
	{
		/* FILE.abi (make image writes it): the image's live-update ABI. */
		char path[4096], line[256];
		FILE *f;
		if ((size_t)snprintf(path, sizeof(path), "%s.abi", file) < sizeof(path) && (f = fopen(path, "re"))) {
			if (fgets(line, sizeof(line), f)) {
				line[strcspn(line, "\n")] = '\0';
				json_object_object_add(args, "abi", json_object_new_string(line));
			}
			fclose(f);
		}
	}
	if (cl_call(c, "image-push-begin", args, timeout_s, &o) < 0 || !(ret = reply_return(o, "image-push-begin")))
		goto out;
	if (!json_object_object_get_ex(ret, "handle", &v) || !json_object_is_type(v, json_type_int)) {
		fprintf(stderr, "luoinit ctl: image-push-begin: no handle in the reply\n");
		goto out;
	}
	handle = json_object_get_int64(v);
	if (json_object_object_get_ex(ret, "chunk_max", &v) && json_object_is_type(v, json_type_int) &&
	    json_object_get_int64(v) > 0 && (uint64_t)json_object_get_int64(v) < chunk)
		chunk = (size_t)json_object_get_int64(v);
	json_object_put(o);
	o = NULL;
	buf = malloc(chunk);
	enc = malloc((chunk + 2) / 3 * 4 + 1);
	if (!buf || !enc) {
		fprintf(stderr, "luoinit ctl: out of memory\n");
		goto out;
	}
	fprintf(stderr, "luoinit ctl: image-push: %s, %" PRIu64 " bytes, sha256 %s\n", file, size, hex);
	while (off < size) {
		size_t n = size - off < chunk ? (size_t)(size - off) : chunk, e = 0;
		ssize_t got = pread(fd, buf, n, (off_t)off);

		if (got <= 0) {
			fprintf(stderr, "luoinit ctl: image-push: reading %s: %s\n", file,
				got < 0 ? strerror(errno) : "shorter than it was");
			goto out;
		}
		n = (size_t)got;
		for (size_t i = 0; i < n; i += 3) {
			uint32_t w = (uint32_t)buf[i] << 16 | (i + 1 < n ? (uint32_t)buf[i + 1] << 8 : 0) |
				     (i + 2 < n ? buf[i + 2] : 0);
			enc[e++] = b64[w >> 18 & 63];
			enc[e++] = b64[w >> 12 & 63];
			enc[e++] = i + 1 < n ? b64[w >> 6 & 63] : '=';
			enc[e++] = i + 2 < n ? b64[w & 63] : '=';
		}
		enc[e] = '\0';
		json_object_put(args);
		args = json_object_new_object();
		json_object_object_add(args, "handle", json_object_new_int64(handle));
		json_object_object_add(args, "offset", json_object_new_int64((int64_t)off));
		json_object_object_add(args, "data", json_object_new_string_len(enc, (int)e));
		if (cl_call(c, "image-push-chunk", args, timeout_s, &o) < 0 || !reply_return(o, "image-push-chunk"))
			goto out;
		json_object_put(o);
		o = NULL;
		off += n;
		progress(off, size, &shown);
	}
	json_object_put(args);
	args = json_object_new_object();
	json_object_object_add(args, "handle", json_object_new_int64(handle));
	if (cl_call(c, "image-push-end", args, timeout_s, &o) < 0 || !reply_return(o, "image-push-end"))
		goto out;
	rc = print_reply(o, c->path);
out:
	json_object_put(o);
	json_object_put(args);
	free(buf);
	free(enc);
	if (fd >= 0)
		close(fd);
	return rc;
}

static void make_id(char *buf, size_t len)
{
	uint32_t rnd;

	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)(now_ms() * 2654435761u) ^ (uint32_t)realtime_ms();
	snprintf(buf, len, "ctl-%d-%08" PRIx32, (int)getpid(), rnd);
}

int ctl_client_main(int argc, char **argv)
{
	const char *path = CTL_DEFAULT_SOCKET, *cmd;
	unsigned long timeout = CTL_DEFAULT_TIMEOUT;
	struct json_object *args = NULL;
	struct cl c = { .fd = -1 };
	char errbuf[256], *end;
	int i, rc;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *opt = argv[i], *val = NULL;

		if (strcmp(opt, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(opt, "-h") == 0 || strcmp(opt, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strncmp(opt, "--socket=", 9) == 0) {
			val = opt + 9;
		} else if (strncmp(opt, "--timeout=", 10) == 0) {
			val = opt + 10;
		} else if (strcmp(opt, "--socket") == 0 || strcmp(opt, "--timeout") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "luoinit ctl: %s needs a value\n", opt);
				return 2;
			}
			val = argv[++i];
		} else {
			fprintf(stderr, "luoinit ctl: unknown option %s\n", opt);
			usage(stderr);
			return 2;
		}
		if (strncmp(opt, "--socket", 8) == 0) {
			path = val;
			continue;
		}
		errno = 0;
		timeout = strtoul(val, &end, 10);
		if (errno || !*val || *end || val[0] == '-' || timeout > 86400 * 365) {
			fprintf(stderr, "luoinit ctl: bad --timeout '%s' (seconds)\n", val);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[i++];
	if (!*path) {
		fprintf(stderr, "luoinit ctl: empty --socket\n");
		return 2;
	}
	if (strcmp(cmd, "image-push") == 0) {
		if (i + 1 != argc) {
			fprintf(stderr, "luoinit ctl: image-push takes one argument, the image FILE\n");
			return 2;
		}
	} else if (strcmp(cmd, "watch") == 0) {
		if (i < argc) {
			fprintf(stderr, "luoinit ctl: watch takes no arguments\n");
			return 2;
		}
		cmd = NULL;
	} else if (ctl_client_build_args(argc - i, argv + i, &args, errbuf, sizeof(errbuf)) < 0) {
		fprintf(stderr, "luoinit ctl: %s\n", errbuf);
		return 2;
	}
	make_id(c.base, sizeof(c.base));
	c.path = path;
	c.fd = connect_to(path);
	if (c.fd < 0) {
		fprintf(stderr, "luoinit ctl: cannot connect to %s: %s\n", path, strerror(-c.fd));
		json_object_put(args);
		return 1;
	}
	if (cmd && strcmp(cmd, "image-push") == 0)
		rc = image_push(&c, argv[i], (unsigned)timeout);
	else
		rc = cl_run(&c, cmd, args, (unsigned)timeout);
	close(c.fd);
	free(c.buf);
	json_object_put(args);
	return rc;
}
