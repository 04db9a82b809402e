/* `luoinit ctl`. The socket may also be the host end of the management port,
 * a stream shared with earlier clients and carrying events: so the request
 * carries a unique id and every line that is not the reply to it is ignored. */
#include "ctl/client.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "pid1/loop.h"

#define CTL_CLIENT_LINE_MAX (64 * 1024 * 1024) /* replies such as vm-log can be big */
#define CTL_DEFAULT_TIMEOUT 60

static void usage(FILE *f)
{
	fprintf(f,
		"usage: luoinit ctl [--socket PATH] [--timeout SEC] COMMAND [key=value ...]\n"
		"  key=value   integers, true, false and null are typed, the rest are strings\n"
		"  key:=JSON   a raw JSON value\n"
		"  --socket    default " CTL_DEFAULT_SOCKET "; also the host end of the\n"
		"              appliance's management port\n"
		"  --timeout   seconds to wait for the reply (default %d, 0: forever)\n"
		"commands: status, vm-start, vm-stop, vm-restart, vmm-update, update, vm-log,\n"
		"          poweroff, reboot\n", CTL_DEFAULT_TIMEOUT);
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

/* 1 when line is the reply to id: a JSON object with our id and "return" or "error". */
static int is_our_reply(struct json_object *o, const char *id)
{
	struct json_object *v;

	if (!json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "id", &v) || !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), id) != 0)
		return 0;
	return json_object_object_get_ex(o, "return", NULL) ||
	       json_object_object_get_ex(o, "error", NULL);
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

/* Read lines until our reply; returns the exit status. */
static int wait_reply(int fd, const char *path, const char *id, unsigned timeout_s)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_s * 1000;
	size_t len = 0, cap = 0, start;
	int skipping = 0, rc = 1;
	char *buf = NULL, *nl;
	ssize_t n;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int wait_ms = -1;

		if (timeout_s) {
			uint64_t now = now_ms();

			if (now >= deadline) {
				fprintf(stderr, "luoinit ctl: %s: no reply within %u s\n", path, timeout_s);
				goto out;
			}
			wait_ms = (int)(deadline - now);
		}
		n = poll(&pfd, 1, wait_ms);
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "luoinit ctl: poll: %s\n", strerror(errno));
			goto out;
		}
		if (n <= 0)
			continue;
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 65536;
			char *p;

			if (ncap > CTL_CLIENT_LINE_MAX) {
				/* A line longer than any reply we expect: skip to its end. */
				len = 0;
				skipping = 1;
				ncap = cap;
			}
			p = ncap == cap ? buf : realloc(buf, ncap);
			if (!p) {
				fprintf(stderr, "luoinit ctl: out of memory\n");
				goto out;
			}
			buf = p;
			cap = ncap;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			fprintf(stderr, "luoinit ctl: %s: read: %s\n", path, strerror(errno));
			goto out;
		}
		if (n == 0) {
			fprintf(stderr, "luoinit ctl: %s: connection closed before the reply\n", path);
			goto out;
		}
		len += (size_t)n;
		start = 0;
		while ((nl = memchr(buf + start, '\n', len - start))) {
			struct json_object *o;

			*nl = '\0';
			if (!skipping) {
				o = json_tokener_parse(buf + start);
				if (o && is_our_reply(o, id)) {
					rc = print_reply(o, path);
					json_object_put(o);
					goto out;
				}
				json_object_put(o);
			}
			skipping = 0;
			start = (size_t)(nl - buf) + 1;
		}
		memmove(buf, buf + start, len - start);
		len -= start;
	}
out:
	free(buf);
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
	struct json_object *req = NULL, *args = NULL;
	char errbuf[256], id[48], *end, *line = NULL;
	const char *s;
	int i, fd, r, rc = 1;

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
	if (ctl_client_build_args(argc - i, argv + i, &args, errbuf, sizeof(errbuf)) < 0) {
		fprintf(stderr, "luoinit ctl: %s\n", errbuf);
		return 2;
	}
	make_id(id, sizeof(id));
	req = json_object_new_object();
	if (!req || json_object_object_add(req, "execute", json_object_new_string(cmd)) < 0 ||
	    json_object_object_add(req, "arguments", args) < 0) {
		json_object_put(args);
		goto oom;
	}
	args = NULL;
	if (json_object_object_add(req, "id", json_object_new_string(id)) < 0)
		goto oom;
	s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	/* The leading newline ends any partial line an earlier client left on a
	 * shared stream; the server ignores blank lines. */
	if (!s || asprintf(&line, "\n%s\n", s) < 0)
		goto oom;

	fd = connect_to(path);
	if (fd < 0) {
		fprintf(stderr, "luoinit ctl: cannot connect to %s: %s\n", path, strerror(-fd));
		goto out;
	}
	r = send_all(fd, line, strlen(line));
	if (r < 0)
		fprintf(stderr, "luoinit ctl: %s: send: %s\n", path, strerror(-r));
	else
		rc = wait_reply(fd, path, id, (unsigned)timeout);
	close(fd);
	goto out;
oom:
	fprintf(stderr, "luoinit ctl: out of memory\n");
out:
	free(line);
	json_object_put(req);
	return rc;
}
