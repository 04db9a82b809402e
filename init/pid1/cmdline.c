/* Kernel command line parsing. Nothing here is fatal: a bad parameter is
 * reported and the default is kept, so a typo never stops the boot. */
#include "pid1/cmdline.h"
#include "pid1/log.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cmdline_defaults(struct cmdline *ret)
{
	memset(ret, 0, sizeof(*ret));
	strcpy(ret->state, "LABEL=luoinit-state");
	strcpy(ret->esp, "PARTLABEL=luoinit-esp");
	strcpy(ret->mgmt, "luoinit.mgmt");
	ret->log_level = LOG_INFO;
	ret->watchdog = CMDLINE_WATCHDOG_DEFAULT;
}

/* Seconds: decimal digits only, 0 to max; -1 otherwise. */
static int parse_seconds(const char *v, int max)
{
	long n = 0;

	if (!v || !*v)
		return -1;
	for (; *v; v++) {
		if (*v < '0' || *v > '9')
			return -1;
		n = n * 10 + (*v - '0');
		if (n > max)
			return -1;
	}
	return (int)n;
}

/* The kernel's kstrtobool spellings; -1 when none. */
static int parse_bool(const char *v)
{
	static const char *const on[] = { "1", "y", "Y", "on", "yes", "true" };
	static const char *const off[] = { "0", "n", "N", "off", "no", "false" };

	if (!v)
		return -1;
	for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
		if (strcmp(v, on[i]) == 0)
			return 1;
		if (strcmp(v, off[i]) == 0)
			return 0;
	}
	return -1;
}

static int copy_value(char *dst, size_t size, const char *v)
{
	size_t n;

	if (!v || !*v)
		return -EINVAL;
	n = strlen(v);
	if (n >= size)
		return -ENAMETOOLONG;
	memcpy(dst, v, n + 1);
	return 0;
}

/* One "key=value" word (quotes already removed). */
static void parse_param(char *word, struct cmdline *c, void (*warn)(const char *))
{
	char *eq = strchr(word, '=');
	const char *key = word, *v = NULL;
	int r = 0, b;

	if (eq) {
		*eq = '\0';
		v = eq + 1;
	}
	if (strcmp(key, "liveupdate") == 0 || strcmp(key, "kho") == 0) {
		/* The kernel checks these itself; a bare "kho" is not "on". */
		b = parse_bool(v);
		if (key[0] == 'l')
			c->liveupdate_on = b == 1;
		else
			c->kho_on = b == 1;
		return;
	}
	if (strncmp(key, "luoinit.", 8) != 0)
		return;
	key += 8;
	if (strcmp(key, "state") == 0)
		r = copy_value(c->state, sizeof(c->state), v);
	else if (strcmp(key, "esp") == 0)
		r = copy_value(c->esp, sizeof(c->esp), v);
	else if (strcmp(key, "config") == 0)
		r = v && v[0] != '/' ? -EINVAL : copy_value(c->config, sizeof(c->config), v);
	else if (strcmp(key, "modules") == 0)
		/* An empty list is valid: it just adds nothing. */
		r = v && !*v ? (c->modules[0] = '\0', 0) : copy_value(c->modules, sizeof(c->modules), v);
	else if (strcmp(key, "mgmt") == 0)
		r = copy_value(c->mgmt, sizeof(c->mgmt), v);
	else if (strcmp(key, "test_faults") == 0) {
		b = parse_bool(v);
		if (b < 0)
			r = -EINVAL;
		else
			c->test_faults = b;
	}
	else if (strcmp(key, "watchdog") == 0) {
		b = parse_seconds(v, CMDLINE_WATCHDOG_MAX);
		if (b < 0)
			r = -EINVAL;
		else
			c->watchdog = b;
	}
	else if (strcmp(key, "log") == 0) {
		b = v ? log_level_parse(v) : -1;
		if (b < 0)
			r = -EINVAL;
		else
			c->log_level = b;
	} else
		r = -ENOENT;
	if (r < 0 && warn) {
		if (eq)
			*eq = '=';
		warn(word);
	}
}

int cmdline_parse(const char *s, struct cmdline *ret, void (*warn)(const char *param))
{
	struct cmdline c;
	char *word;
	size_t n;

	if (!s)
		return -EINVAL;
	cmdline_defaults(&c);
	word = malloc(strlen(s) + 1);
	if (!word)
		return -ENOMEM;
	for (;;) {
		int quoted = 0;

		while (isspace((unsigned char)*s))
			s++;
		if (!*s)
			break;
		/* Like the kernel's next_arg(): spaces inside quotes belong to the word. */
		for (n = 0; *s && (quoted || !isspace((unsigned char)*s)); s++) {
			if (*s == '"')
				quoted = !quoted;
			else
				word[n++] = *s;
		}
		word[n] = '\0';
		if (strcmp(word, "--") == 0)
			break;
		parse_param(word, &c, warn);
	}
	free(word);
	*ret = c;
	return 0;
}

static void cmdline_warn_log(const char *param)
{
	log_warn("ignoring kernel parameter '%s': unknown or bad value", param);
}

/* A one-line text file, its newline removed. */
static int read_line(const char *path, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;
	int fd;

	if (!buf || !size)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (len < size - 1) {
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int r = -errno;
			(void)close(fd);
			return r;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	(void)close(fd);
	buf[len] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

int cmdline_read_raw(char *buf, size_t size)
{
	return read_line("/proc/cmdline", buf, size);
}

int cmdline_read_firmware(char *buf, size_t len)
{
	return read_line(CMDLINE_FIRMWARE_PATH, buf, len);
}

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

void cmdline_extra(const char *builtin, const char *proc, char *out, size_t len)
{
	size_t bl;

	while (builtin && blank(*builtin))
		builtin++;
	bl = builtin ? strlen(builtin) : 0;
	while (bl && blank(builtin[bl - 1]))
		bl--;
	while (blank(*proc))
		proc++;
	/* The kernel glues its built-in line, a space, and the boot loader's. */
	if (bl && !strncmp(proc, builtin, bl) && (!proc[bl] || blank(proc[bl])))
		proc += bl;
	while (blank(*proc))
		proc++;
	snprintf(out, len, "%s", proc);
	for (size_t n = strlen(out); n && blank(out[n - 1]); n--)
		out[n - 1] = '\0';
}

int cmdline_read_extra(char *out, size_t len)
{
	char proc[4096], builtin[4096];
	int r;

	if ((r = cmdline_read_raw(proc, sizeof(proc))) < 0)
		return r;
	if (cmdline_read_firmware(builtin, sizeof(builtin)) < 0)
		builtin[0] = '\0'; /* no firmware command line: all of /proc/cmdline is extra */
	cmdline_extra(builtin, proc, out, len);
	return 0;
}

int cmdline_read(struct cmdline *ret)
{
	char buf[8192] = "";
	int r = cmdline_read_raw(buf, sizeof(buf));

	if (r < 0)
		return r;
	return cmdline_parse(buf, ret, cmdline_warn_log);
}

void cmdline_list_free(char **list)
{
	if (!list)
		return;
	for (char **p = list; *p; p++)
		free(*p);
	free(list);
}

int cmdline_list_split(const char *s, char sep, char ***ret)
{
	char **list;
	size_t n = 0, cap = 1;
	const char *p;

	if (!s)
		return -EINVAL;
	for (p = s; *p; p++)
		cap += *p == sep;
	list = calloc(cap + 1, sizeof(*list));
	if (!list)
		return -ENOMEM;
	for (p = s;;) {
		const char *end = strchr(p, sep), *b = p, *e;

		if (!end)
			end = p + strlen(p);
		e = end;
		while (b < e && isspace((unsigned char)*b))
			b++;
		while (e > b && isspace((unsigned char)e[-1]))
			e--;
		if (e > b) {
			list[n] = strndup(b, (size_t)(e - b));
			if (!list[n]) {
				cmdline_list_free(list);
				return -ENOMEM;
			}
			n++;
		}
		if (!*end)
			break;
		p = end + 1;
	}
	*ret = list;
	return 0;
}
