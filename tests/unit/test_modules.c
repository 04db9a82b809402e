/* modules: list parsing, and name/alias/dependency resolution through a real
 * libkmod dry run on a fake module tree (tiny ELF objects built here with
 * the host compiler, indexed by the real depmod). Nothing is inserted. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <libkmod.h>

#include "pid1/cmdline.h"
#include "pid1/modules.h"

#define KVER "9.9.9-luoinit-test"

static char tmpdir[] = "/tmp/luoinit-test-modules-XXXXXX";
static char moddir[256];
static int tree_ok;

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* fork/exec ARGV quietly; exit status, or -1. */
static int run(char *const argv[])
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			(void)dup2(fd, 1);
			(void)dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* The modules that loading NAME would insert, dependencies first: a libkmod
 * dry run on a context from modules_ctx_new (what modules_load uses), so the
 * fake tree is checked without inserting anything. libkmod's print_action
 * has no user pointer: it reports into these. */
static char *resolved[16];
static size_t n_resolved;

static void resolve_action(struct kmod_module *m, bool install, const char *options)
{
	const char *name = kmod_module_get_name(m);

	(void)install;
	(void)options;
	for (size_t i = 0; i < n_resolved; i++)
		if (strcmp(resolved[i], name) == 0)
			return;
	if (n_resolved < sizeof(resolved) / sizeof(resolved[0]) - 1)
		resolved[n_resolved++] = strdup(name);
}

static int resolve(struct kmod_ctx *ctx, const char *name, char ***ret)
{
	struct kmod_list *list = NULL, *l;
	int r;

	n_resolved = 0;
	r = kmod_module_new_from_lookup(ctx, name, &list);
	if (r < 0)
		return r;
	if (!list)
		return -ENOENT;
	kmod_list_foreach(l, list) {
		struct kmod_module *m = kmod_module_get_module(l);
		r = kmod_module_probe_insert_module(m, KMOD_PROBE_IGNORE_COMMAND | KMOD_PROBE_DRY_RUN,
						    NULL, NULL, NULL, resolve_action);
		kmod_module_unref(m);
		if (r < 0)
			break;
	}
	kmod_module_unref_list(list);
	*ret = calloc(n_resolved + 1, sizeof(**ret));
	assert_non_null(*ret);
	memcpy(*ret, resolved, n_resolved * sizeof(**ret));
	return r;
}

static const char *find_prog(const char *const *cands)
{
	for (; *cands; cands++)
		if (access(*cands, X_OK) == 0)
			return *cands;
	return NULL;
}

/* A module: .modinfo strings, exported symbols in __ksymtab_strings (what
 * depmod reads), and a call to the symbol it depends on. */
static int build_module(const char *cc, const char *file, const char *modinfo,
			const char *exports, const char *uses)
{
	char src[512], obj[512], text[2048];

	(void)snprintf(src, sizeof(src), "%s/%s.c", tmpdir, file);
	(void)snprintf(obj, sizeof(obj), "%s/kernel/%s.ko", moddir, file);
	(void)snprintf(text, sizeof(text),
		 "const char mi[] __attribute__((section(\".modinfo\"), used)) = \"%s\";\n"
		 "const char ks[] __attribute__((section(\"__ksymtab_strings\"), used)) = \"%s\";\n"
		 "%s%s%s\n"
		 "int %s(void) { return %s%s; }\n",
		 modinfo, exports, uses ? "extern int " : "", uses ? uses : "", uses ? "(void);" : "",
		 exports, uses ? uses : "0", uses ? "()" : "");
	write_file(src, text);
	char *argv[] = { (char *)cc, "-c", "-O1", "-o", obj, src, NULL };
	return run(argv);
}

static int setup(void **state)
{
	static const char *const ccs[] = { "/usr/bin/cc", "/usr/bin/gcc", NULL };
	static const char *const depmods[] = { "/usr/sbin/depmod", "/sbin/depmod", "/usr/bin/depmod", NULL };
	const char *cc = find_prog(ccs), *depmod = find_prog(depmods);
	char path[512];

	assert_non_null(mkdtemp(tmpdir));
	(void)snprintf(moddir, sizeof(moddir), "%s/lib/modules/" KVER, tmpdir);
	(void)snprintf(path, sizeof(path), "%s/lib", tmpdir);
	assert_int_equal(mkdir(path, 0755), 0);
	(void)snprintf(path, sizeof(path), "%s/lib/modules", tmpdir);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(mkdir(moddir, 0755), 0);
	(void)snprintf(path, sizeof(path), "%s/kernel", moddir);
	assert_int_equal(mkdir(path, 0755), 0);
	if (!cc || !depmod) {
		fprintf(stderr, "test_modules: no cc or depmod, module tree tests skipped\n");
		return 0;
	}
	/* base <- mid <- top; top also answers to an alias; '-' in a file name
	 * is normalised to '_' by libkmod. */
	if (build_module(cc, "luoinit_base", "license=GPL\\0", "luoinit_base_fn", NULL) != 0 ||
	    build_module(cc, "luoinit_mid", "license=GPL\\0", "luoinit_mid_fn", "luoinit_base_fn") != 0 ||
	    build_module(cc, "luoinit-top", "license=GPL\\0alias=luoinit-test-alias\\0",
			 "luoinit_top_fn", "luoinit_mid_fn") != 0) {
		fprintf(stderr, "test_modules: cannot compile fake modules, tree tests skipped\n");
		return 0;
	}
	/* Empty files depmod otherwise warns about. */
	static const char *const empty[] = { "modules.order", "modules.builtin", "modules.builtin.modinfo" };
	for (size_t i = 0; i < 3; i++) {
		(void)snprintf(path, sizeof(path), "%s/%s", moddir, empty[i]);
		write_file(path, "");
	}
	char *argv[] = { (char *)depmod, "-b", tmpdir, KVER, NULL };
	if (run(argv) != 0) {
		fprintf(stderr, "test_modules: depmod failed, tree tests skipped\n");
		return 0;
	}
	tree_ok = 1;
	return 0;
}

static int teardown(void **state)
{
	char *argv[] = { "rm", "-rf", tmpdir, NULL };
	(void)run(argv);
	return 0;
}

static void assert_list(char **got, const char *const *want)
{
	size_t i;

	assert_non_null(got);
	for (i = 0; want[i]; i++) {
		assert_non_null(got[i]);
		assert_string_equal(got[i], want[i]);
	}
	assert_null(got[i]);
}

static void test_read_list(void **state)
{
	static const char *const want[] = { "virtio_rng", "rng-core", "virtio_blk", "ext4", NULL };
	char path[512], **list = NULL;

	(void)snprintf(path, sizeof(path), "%s/modules", tmpdir);
	write_file(path, "# modules for the appliance\n\nvirtio_rng\n  rng-core  # its dep\r\n"
			 "\t\n#virtio_net\nvirtio_blk\nvirtio_rng\next4");
	assert_int_equal(modules_read_list(path, &list), 0);
	assert_list(list, want);
	cmdline_list_free(list);

	write_file(path, "# nothing\n\n");
	list = NULL;
	assert_int_equal(modules_read_list(path, &list), 0);
	assert_non_null(list);
	assert_null(list[0]);
	cmdline_list_free(list);

	(void)snprintf(path, sizeof(path), "%s/missing", tmpdir);
	list = NULL;
	assert_int_equal(modules_read_list(path, &list), -ENOENT);
	assert_null(list);
}

static void test_resolve(void **state)
{
	static const char *const want[] = { "luoinit_base", "luoinit_mid", "luoinit_top", NULL };
	static const char *const want_mid[] = { "luoinit_base", "luoinit_mid", NULL };
	struct kmod_ctx *ctx;
	char **list = NULL;

	if (!tree_ok)
		skip();
	ctx = modules_ctx_new(moddir);
	assert_non_null(ctx);

	assert_int_equal(resolve(ctx, "luoinit_top", &list), 0);
	assert_list(list, want);
	cmdline_list_free(list);

	list = NULL;
	assert_int_equal(resolve(ctx, "luoinit-test-alias", &list), 0);
	assert_list(list, want);
	cmdline_list_free(list);

	list = NULL;
	assert_int_equal(resolve(ctx, "luoinit-mid", &list), 0);
	assert_list(list, want_mid);
	cmdline_list_free(list);

	list = NULL;
	assert_int_equal(resolve(ctx, "luoinit_no_such_module", &list), -ENOENT);
	assert_null(list);
	kmod_unref(ctx);
}

/* Only names that do not resolve: modules_load must not insert the fake
 * objects into the running kernel. */
static void test_load_missing(void **state)
{
	const char *const names[] = { "luoinit_nope1", "luoinit-nope2" };
	static const char *const want_failed[] = { "luoinit_nope1", "luoinit-nope2", NULL };
	static const char *const none[] = { NULL };
	char **loaded = NULL, **failed = NULL;

	if (!tree_ok)
		skip();
	assert_int_equal(modules_load(moddir, names, 2, &loaded, &failed), 2);
	assert_non_null(loaded);
	assert_null(loaded[0]);
	/* For status: the names as asked, in order. */
	assert_list(failed, want_failed);
	cmdline_list_free(loaded);
	cmdline_list_free(failed);
	failed = NULL;
	assert_int_equal(modules_load(moddir, names, 0, NULL, &failed), 0);
	assert_list(failed, none);
	cmdline_list_free(failed);
	assert_int_equal(modules_load(moddir, names, 0, NULL, NULL), 0);
}

/* depmod writes a 0-byte modules.builtin.bin when the tree lacks
 * modules.builtin: libkmod cannot preload it, modules must still resolve. */
static void test_empty_index(void **state)
{
	static const char *const want[] = { "luoinit_base", "luoinit_mid", "luoinit_top", NULL };
	char path[512], **list = NULL;
	struct kmod_ctx *ctx;

	if (!tree_ok)
		skip();
	(void)snprintf(path, sizeof(path), "%s/modules.builtin.bin", moddir);
	write_file(path, "");
	ctx = modules_ctx_new(moddir);
	assert_non_null(ctx);
	assert_int_equal(resolve(ctx, "luoinit-test-alias", &list), 0);
	assert_list(list, want);
	cmdline_list_free(list);
	kmod_unref(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_list),
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_load_missing),
		cmocka_unit_test(test_empty_index), /* last: it damages the tree */
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
