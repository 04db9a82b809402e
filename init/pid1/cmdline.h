/* The kernel command line (design.md §2): luoinit.* parameters plus the
 * kernel's own liveupdate= and kho= switches. */
#ifndef LUOINIT_CMDLINE_H
#define LUOINIT_CMDLINE_H

#include <stddef.h>

struct cmdline {
	char state[256];    /* statefs spec, default "LABEL=luoinit-state" */
	char esp[256];      /* the EFI system partition (boot assessment), default
			     * "PARTLABEL=luoinit-esp" */
	char config[4096];  /* "" = /state/vmconf.json, else /etc/luoinit/vmconf.json */
	char modules[1024]; /* "a,b,c" or "" */
	char mgmt[64];      /* virtio-serial port name, default "luoinit.mgmt" */
	int log_level;      /* enum log_level, default LOG_INFO */
	int liveupdate_on;  /* liveupdate=on (kstrtobool spellings) */
	int kho_on;         /* kho=on */
	int test_faults;    /* luoinit.test_faults=1: `update fault=NAME` is accepted */
	int watchdog;       /* luoinit.watchdog=SECONDS: the hardware watchdog's timeout,
			     * 0 = not armed; default CMDLINE_WATCHDOG_DEFAULT */
};

/* Covers the longest stretch without a feed: a kexec under TCG (5-10 s),
 * the new kernel up to the watchdog driver's probe, with a wide margin. */
#define CMDLINE_WATCHDOG_DEFAULT 60
#define CMDLINE_WATCHDOG_MAX     65535

void cmdline_defaults(struct cmdline *ret);

/* Parse S (the contents of /proc/cmdline) into *RET, starting from the
 * defaults. Double quotes group words ("a=b c" or a="b c") and are removed;
 * parsing stops at "--" (the rest is init's argv). Unknown luoinit.*
 * parameters and bad values are passed to WARN (may be NULL) and otherwise
 * ignored. Returns 0, or -EINVAL when S is NULL. */
int cmdline_parse(const char *s, struct cmdline *ret, void (*warn)(const char *param));

/* cmdline_parse() of /proc/cmdline; bad parameters are logged as warnings. */
int cmdline_read(struct cmdline *ret);
/* /proc/cmdline as it is (the running kernel's, for a kexec that keeps it),
 * NUL-terminated, its newline removed. 0 or a negative errno. */
int cmdline_read_raw(char *buf, size_t len);

/* The firmware's own command line, built into its kernel (README "Signed
 * firmware images"): the kernel puts it before the boot loader's or kexec's. */
#define CMDLINE_FIRMWARE_PATH "/etc/luoinit/cmdline"
/* That line: 0, or a negative errno (-ENOENT: an initramfs without one). */
int cmdline_read_firmware(char *buf, size_t len);
/* What PROC (a /proc/cmdline) has beyond BUILTIN, its leading part: the rest,
 * blanks trimmed, into OUT; all of PROC when it does not start with BUILTIN
 * (a kernel without it built in, booted with another line). */
void cmdline_extra(const char *builtin, const char *proc, char *out, size_t len);
/* cmdline_extra() of CMDLINE_FIRMWARE_PATH (none: "") and /proc/cmdline:
 * what a kexec into a firmware image passes to keep this boot's additions.
 * 0 or a negative errno. */
int cmdline_read_extra(char *out, size_t len);

/* Split "a,b,,c" at SEP into a NULL-terminated array ("a", "b", "c"; empty
 * items and surrounding blanks dropped). Free with cmdline_list_free(). */
int cmdline_list_split(const char *s, char sep, char ***ret);
void cmdline_list_free(char **list);

#endif
