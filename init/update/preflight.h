/* Pre-flight checks of a host kernel update (design.md §9): pure decisions on
 * the target and the running kernel, made before anything is loaded or
 * preserved. A refusal names the problem; nothing has changed then. */
#ifndef LUOINIT_PREFLIGHT_H
#define LUOINIT_PREFLIGHT_H

#include <stdbool.h>
#include <stddef.h>

#include "update/kabi.h"

enum preflight_mode { PREFLIGHT_AUTO, PREFLIGHT_LUO, PREFLIGHT_FULL_RAM };

/* "auto", "luo", "full-ram"; NULL or "" is auto. 0 or -EINVAL. */
int preflight_mode_parse(const char *s, enum preflight_mode *ret);
const char *preflight_mode_name(enum preflight_mode m);

struct preflight {
	const char *kernel;
	const char *initrd;             /* NULL or "": none */
	bool builtin_initramfs;         /* a firmware image: the kernel carries it */
	const char *cmdline;            /* exactly what the target kernel will get */
	enum preflight_mode mode;       /* requested */
	bool luo_available;             /* /dev/liveupdate works on the running kernel */
	const struct kabi *running;     /* kabi_running() */
	const struct kabi *target;      /* kabi_target(kernel) */
	unsigned watchdog_timeout;      /* the armed watchdog's timeout (s), 0: not armed */
};

/* Decide. 0: *ret_mode is PREFLIGHT_LUO or PREFLIGHT_FULL_RAM, and reason says
 * why auto chose full-ram (for the log; "" otherwise). Else -errno and err
 * names the problem: -EINVAL (no kernel or initramfs, a LUO target command
 * line without liveupdate=on kho=on, luoinit.watchdog=0 in the target
 * command line while the watchdog is armed: it cannot be disarmed short of
 * a reset, and the new init would not feed it), -ENODEV (mode=luo without LUO),
 * -EPROTO (mode=luo across different or unknown live-update ABIs). */
int preflight_check(const struct preflight *p, enum preflight_mode *ret_mode, char *reason,
		    size_t reasonlen, char *err, size_t errlen);

/* "10.0.13", "9.2" (QEMU's version): MAJOR.MINOR[.MICRO], digits only. 0 or
 * -EINVAL. */
int preflight_qemu_version(const char *s, unsigned *major, unsigned *minor);
/* The QEMU release a versioned machine type belongs to: "pc-q35-10.0" and
 * "pc-i440fx-2.12" end in "-MAJOR.MINOR". 0, or -ENOENT for a machine
 * without one (microvm, none: every QEMU has those). */
int preflight_machine_version(const char *machine, unsigned *major, unsigned *minor);
/* Can a target firmware's QEMU (its version, "" when its image does not say)
 * restore a guest saved on machine (as its QEMU resolved it)? A QEMU has the
 * machine types of its own release and older ones, never newer: a guest on
 * pc-q35-10.0 cannot be restored by QEMU 9.2. 0 (also when either version is
 * unknown), or -EPROTO with err naming vm, its machine and both versions. */
int preflight_qemu_machine(const char *vm, const char *machine, const char *target_qemu,
			   const char *image, char *err, size_t errlen);

/* A boolean early parameter as the kernel reads it (kstrtobool: y/Y/1/t/T/e/E
 * or on: true; n/N/0/f/F/d/D or off: false; anything else, or no "=", is
 * ignored; the last valid one wins; nothing after "--"). */
enum preflight_switch { PREFLIGHT_ABSENT, PREFLIGHT_ON, PREFLIGHT_OFF, PREFLIGHT_INVALID };
/* val (when non-NULL) gets the deciding value, or the first ignored one. */
enum preflight_switch preflight_cmdline_switch(const char *cmdline, const char *name, char *val,
					       size_t vallen);

#endif
