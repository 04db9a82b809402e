/* Module loading with libkmod, as modprobe does it, minus the shell. */
#include "pid1/modules.h"
#include "pid1/cmdline.h"
#include "pid1/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libkmod.h>

/* A growable NULL-terminated list of names, without duplicates. */
struct names {
	char **v;
	size_t n, cap;
};

static int names_add(struct names *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return 0;
	if (l->n + 1 >= l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n] = strdup(s);
	if (!l->v[l->n])
		return -ENOMEM;
	l->v[++l->n] = NULL;
	return 0;
}

/* An empty list is still a valid (empty) NULL-terminated array. */
static int names_take(struct names *l, char ***ret)
{
	if (!l->v) {
		l->v = calloc(1, sizeof(*l->v));
		if (!l->v)
			return -ENOMEM;
	}
	*ret = l->v;
	l->v = NULL;
	l->n = l->cap = 0;
	return 0;
}

static void modules_log(void *data, int priority, const char *file, int line,
			const char *fn, const char *format, va_list args)
{
	char buf[512];
	size_t n;

	(void)vsnprintf(buf, sizeof(buf), format, args);
	n = strlen(buf);
	if (n && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	/* Syslog priorities, as enum log_level; libkmod's info ("context
	 * released") is chatter for us. */
	if (priority < LOG_ERR)
		priority = LOG_ERR;
	if (priority > LOG_WARN)
		priority = LOG_DEBUG;
	log_msg((enum log_level)priority, "kmod: %s", buf);
}

struct kmod_ctx *modules_ctx_new(const char *dirname)
{
	struct kmod_ctx *ctx;
	int r;

	errno = 0;
	ctx = kmod_new(dirname, NULL);
	if (!ctx) {
		if (!errno)
			errno = ENOMEM;
		return NULL;
	}
	kmod_set_log_fn(ctx, modules_log, NULL);
	kmod_set_log_priority(ctx, log_get_level() == LOG_DEBUG ? LOG_DEBUG : LOG_WARN);
	/* Preloading only saves time: libkmod opens the indexes on demand
	 * otherwise, and one empty index (depmod without modules.builtin)
	 * must not stop every module from loading. */
	r = kmod_load_resources(ctx);
	if (r < 0)
		log_errno(LOG_WARN, r, "kmod: cannot preload the indexes of %s",
			  kmod_get_dirname(ctx));
	return ctx;
}

static bool module_live(struct kmod_module *m)
{
	int s = kmod_module_get_initstate(m);
	return s == KMOD_MODULE_LIVE || s == KMOD_MODULE_COMING;
}

/* Record MOD and its dependencies that are now in the kernel. */
static int collect_live(struct kmod_module *mod, struct names *loaded)
{
	struct kmod_list *deps = kmod_module_get_dependencies(mod), *l;
	int r = 0;

	kmod_list_foreach(l, deps) {
		struct kmod_module *d = kmod_module_get_module(l);
		if (module_live(d))
			r = names_add(loaded, kmod_module_get_name(d));
		kmod_module_unref(d);
		if (r < 0)
			break;
	}
	kmod_module_unref_list(deps);
	if (r == 0 && module_live(mod))
		r = names_add(loaded, kmod_module_get_name(mod));
	return r;
}

/* Probe one name; logs its own failure. Returns 0 or negative errno. */
static int load_one(struct kmod_ctx *ctx, const char *name, struct names *loaded)
{
	struct kmod_list *list = NULL, *l;
	int r;

	r = kmod_module_new_from_lookup(ctx, name, &list);
	if (r < 0)
		return log_errno(LOG_ERR, r, "module %s: lookup", name);
	if (!list) {
		log_err("module %s: not found", name);
		return -ENOENT;
	}
	kmod_list_foreach(l, list) {
		struct kmod_module *m = kmod_module_get_module(l);
		int q = kmod_module_probe_insert_module(m, KMOD_PROBE_IGNORE_COMMAND,
							NULL, NULL, NULL, NULL);
		if (q < 0) {
			log_errno(LOG_ERR, q, "module %s: loading %s", name, kmod_module_get_name(m));
			if (r == 0)
				r = q;
		} else {
			log_debug("module %s: %s loaded", name, kmod_module_get_name(m));
		}
		if (loaded && collect_live(m, loaded) < 0 && r == 0)
			r = -ENOMEM;
		kmod_module_unref(m);
	}
	kmod_module_unref_list(list);
	return r;
}

int modules_load(const char *dirname, const char *const *names, size_t n, char ***ret_loaded,
		 char ***ret_failed)
{
	struct names loaded = { 0 }, failed_names = { 0 };
	struct kmod_ctx *ctx;
	int failed = 0, r = 0;

	/* Nothing to load (after a kexec whose restore needs no module): no
	 * context either, its index files cost time in the blackout. */
	ctx = n ? modules_ctx_new(dirname) : NULL;
	if (n && !ctx)
		return -errno;
	for (size_t i = 0; i < n; i++)
		if (load_one(ctx, names[i], ret_loaded ? &loaded : NULL) < 0) {
			failed++;
			if (ret_failed && r == 0)
				r = names_add(&failed_names, names[i]);
		}
	kmod_unref(ctx); /* NULL-safe */
	if (r == 0 && ret_loaded)
		r = names_take(&loaded, ret_loaded);
	if (r == 0 && ret_failed)
		r = names_take(&failed_names, ret_failed);
	if (r < 0) {
		cmdline_list_free(loaded.v);
		cmdline_list_free(failed_names.v);
		if (ret_loaded) {
			cmdline_list_free(*ret_loaded);
			*ret_loaded = NULL;
		}
		return r;
	}
	return failed;
}

int modules_read_list(const char *path, char ***ret)
{
	struct names list = { 0 };
	char *line = NULL;
	size_t cap = 0;
	FILE *f;
	int r = 0;

	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) >= 0) {
		char *s = line, *e;

		e = strchr(s, '#');
		if (e)
			*e = '\0';
		while (*s == ' ' || *s == '\t')
			s++;
		e = s + strlen(s);
		while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
			e--;
		*e = '\0';
		if (!*s)
			continue;
		r = names_add(&list, s);
		if (r < 0)
			break;
	}
	if (r == 0 && ferror(f))
		r = -EIO;
	free(line);
	(void)fclose(f);
	if (r == 0)
		r = names_take(&list, ret);
	cmdline_list_free(list.v);
	return r;
}
