/* Kernel modules with libkmod: the initramfs's /lib/modules tree, with
 * modules.dep built by depmod at image build time. */
#ifndef LUOINIT_MODULES_H
#define LUOINIT_MODULES_H

#include <stddef.h>

struct kmod_ctx;

/* A libkmod context on DIRNAME (NULL: /lib/modules/$(uname -r)), its
 * messages routed into our log, its indexes loaded. Free with
 * kmod_unref(). NULL on failure with errno set. */
struct kmod_ctx *modules_ctx_new(const char *dirname);

/* Load each of NAMES (module names or aliases, '-' and '_' alike) with its
 * dependencies; blacklists and install commands are ignored (there is no
 * shell), already loaded modules are fine. A missing or failing module is
 * logged here and the others are still loaded. When RET_LOADED is not
 * NULL it gets a NULL-terminated list (free with cmdline_list_free()) of
 * the modules now live in the kernel among those and their dependencies
 * (built-in ones are not listed); RET_FAILED, likewise, gets the names
 * that did not load (for status). Returns the number of names that
 * failed (>= 0), or a negative errno when libkmod cannot even start. */
int modules_load(const char *dirname, const char *const *names, size_t n, char ***ret_loaded,
		 char ***ret_failed);

/* Read a modules list (/etc/luoinit/modules): one name per line, '#'
 * starts a comment, blank lines skipped. Free with cmdline_list_free(). */
int modules_read_list(const char *path, char ***ret);

#endif
