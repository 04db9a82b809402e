/* Pre-flight checks of a host kernel update. See preflight.h.
 *
 * The target command line is read the way the target kernel will read it:
 * words split by lib/cmdline.c's next_arg() (double quotes group spaces and
 * are dropped around the value or the word), parameters stop at "--", names
 * compare with '-' and '_' alike (parameq), and liveupdate= and kho= are
 * early_params parsed with kstrtobool(): an invalid value is ignored, the
 * last valid one wins. */
#include "update/preflight.h"
#include "update/luo.h"
#include "pid1/cmdline.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const mode_names[] = {
	[PREFLIGHT_AUTO] = "auto",
	[PREFLIGHT_LUO] = "luo",
	[PREFLIGHT_FULL_RAM] = "full-ram",
};

int preflight_mode_parse(const char *s, enum preflight_mode *ret)
{
	if (!s || !*s) {
		*ret = PREFLIGHT_AUTO;
		return 0;
	}
	for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
		if (!strcmp(s, mode_names[i])) {
			*ret = (enum preflight_mode)i;
			return 0;
		}
	return -EINVAL;
}

const char *preflight_mode_name(enum preflight_mode m)
{
	return (unsigned)m < sizeof(mode_names) / sizeof(mode_names[0]) ? mode_names[m] : "?";
}

/* The kernel's isspace(): its ctype also counts Latin-1 NBSP. */
static int kspace(char c)
{
	unsigned char u = (unsigned char)c;

	return u == ' ' || (u >= '\t' && u <= '\r') || u == 0xa0;
}

struct word {
	const char *param, *val; /* val NULL: no '=' */
	size_t plen, vlen;
};

/* next_arg() without writing into the line: one word at p (no leading space);
 * returns where the next word starts. */
static const char *next_word(const char *p, struct word *w)
{
	size_t i, equals = 0, end;
	int in_quote = 0, quoted = 0;

	if (*p == '"') {
		p++;
		in_quote = quoted = 1;
	}
	for (i = 0; p[i]; i++) {
		if (kspace(p[i]) && !in_quote)
			break;
		if (equals == 0 && p[i] == '=')
			equals = i;
		if (p[i] == '"')
			in_quote = !in_quote;
	}
	end = i;
	if (quoted && i > 0 && p[i - 1] == '"')
		end = i - 1;
	w->param = p;
	if (!equals) {
		w->val = NULL;
		w->vlen = 0;
		w->plen = end;
	} else {
		size_t vs = equals + 1, ve = i;
		w->plen = equals;
		if (p[vs] == '"') {
			vs++;
			if (p[i - 1] == '"')
				ve = i - 1;
		}
		if (end < ve)
			ve = end;
		if (ve < vs)
			ve = vs;
		w->val = p + vs;
		w->vlen = ve - vs;
	}
	p += i;
	if (*p)
		p++;
	while (*p && kspace(*p))
		p++;
	return p;
}

static int parameq(const char *a, size_t alen, const char *b)
{
	if (strlen(b) != alen)
		return 0;
	for (size_t i = 0; i < alen; i++) {
		char x = a[i] == '-' ? '_' : a[i], y = b[i] == '-' ? '_' : b[i];
		if (x != y)
			return 0;
	}
	return 1;
}

/* kstrtobool(): 1 true, 0 false, -1 not a boolean. */
static int kbool(const char *v, size_t len)
{
	if (!v || len == 0)
		return -1;
	switch (v[0]) {
	case 'e': case 'E': case 'y': case 'Y': case 't': case 'T': case '1':
		return 1;
	case 'd': case 'D': case 'n': case 'N': case 'f': case 'F': case '0':
		return 0;
	case 'o': case 'O':
		if (len < 2)
			return -1;
		if (v[1] == 'n' || v[1] == 'N')
			return 1;
		if (v[1] == 'f' || v[1] == 'F')
			return 0;
		return -1;
	default:
		return -1;
	}
}

enum preflight_switch preflight_cmdline_switch(const char *cmdline, const char *name, char *val,
					       size_t vallen)
{
	enum preflight_switch st = PREFLIGHT_ABSENT;
	const char *p = cmdline ? cmdline : "";

	if (val && vallen)
		val[0] = 0;
	while (*p && kspace(*p))
		p++;
	while (*p) {
		struct word w;
		int b;

		p = next_word(p, &w);
		if (!w.val && w.plen == 2 && !memcmp(w.param, "--", 2))
			break;
		if (!parameq(w.param, w.plen, name))
			continue;
		b = kbool(w.val, w.vlen);
		if (b < 0 && st != PREFLIGHT_ABSENT)
			continue; /* the kernel warns and keeps the earlier value */
		st = b < 0 ? PREFLIGHT_INVALID : b ? PREFLIGHT_ON : PREFLIGHT_OFF;
		if (val && vallen)
			snprintf(val, vallen, "%.*s", (int)w.vlen, w.val ? w.val : "");
	}
	return st;
}

/* "" when name is on; else what is wrong with it, for an error message. */
static void switch_problem(const char *cmdline, const char *name, char *out, size_t len)
{
	char v[32];

	switch (preflight_cmdline_switch(cmdline, name, v, sizeof(v))) {
	case PREFLIGHT_ON:
		out[0] = 0;
		break;
	case PREFLIGHT_ABSENT:
		snprintf(out, len, "no %s=on", name);
		break;
	case PREFLIGHT_OFF:
		snprintf(out, len, "%s=%s (off)", name, v);
		break;
	case PREFLIGHT_INVALID:
		snprintf(out, len, "%s%s%s, which the kernel ignores (not a boolean)", name, *v ? "=" : "", v);
		break;
	}
}

int preflight_check(const struct preflight *p, enum preflight_mode *ret_mode, char *reason,
		    size_t reasonlen, char *err, size_t errlen)
{
	char why[300], lu[96], kho[96];
	bool auto_mode = p->mode == PREFLIGHT_AUTO;

	if (reasonlen)
		reason[0] = 0;
	if (!p->kernel || !*p->kernel) {
		snprintf(err, errlen, "no kernel: give kernel=PATH or set update.kernel in the config");
		return -EINVAL;
	}
	/* Both modes need it: luoinit is the initramfs's /init. */
	if (!p->builtin_initramfs && (!p->initrd || !*p->initrd)) {
		snprintf(err, errlen, "no initramfs: luoinit would not run after the kexec and the VMs "
			 "would never come back (give initrd=PATH or set update.initrd in the config)");
		return -EINVAL;
	}
	if (p->watchdog_timeout) {
		struct cmdline c;
		/* Read as the new init will read it. */
		if (cmdline_parse(p->cmdline ? p->cmdline : "", &c, NULL) < 0) {
			snprintf(err, errlen, "out of memory reading the target command line");
			return -ENOMEM;
		}
		if (c.watchdog == 0) {
			snprintf(err, errlen, "the target command line has luoinit.watchdog=0, but the watchdog "
				 "is armed (%u s) and the kernel cannot disarm it (nowayout): the new init would "
				 "not feed it and it would reset the appliance, guests and all (keep it on; to "
				 "turn it off, power off and boot with luoinit.watchdog=0)", p->watchdog_timeout);
			return -EINVAL;
		}
	}
	if (p->mode == PREFLIGHT_FULL_RAM) {
		*ret_mode = PREFLIGHT_FULL_RAM; /* lossless across any kernels */
		return 0;
	}
	if (!p->luo_available) {
		if (auto_mode) {
			snprintf(reason, reasonlen, "LUO is not available on the running kernel (no %s)",
				 LUO_DEVICE);
			*ret_mode = PREFLIGHT_FULL_RAM;
			return 0;
		}
		snprintf(err, errlen, "mode=luo: LUO is not available on the running kernel (no %s: it "
			 "needs liveupdate=on kho=on); mode=full-ram saves the RAM to /state", LUO_DEVICE);
		return -ENODEV;
	}
	why[0] = 0;
	if (!p->running || !p->target)
		snprintf(why, sizeof(why), "the %s kernel's is unknown", !p->running ? "running" : "target");
	else if (kabi_compare(p->running, p->target, why, sizeof(why)) == 0)
		why[0] = 0;
	if (why[0]) {
		if (auto_mode) {
			snprintf(reason, reasonlen, "the live-update ABI does not match: %s", why);
			*ret_mode = PREFLIGHT_FULL_RAM;
			return 0;
		}
		snprintf(err, errlen, "mode=luo: the target kernel cannot take this kernel's preserved "
			 "memory: live-update ABI: %s (mode=full-ram works across any kernels)", why);
		return -EPROTO;
	}
	switch_problem(p->cmdline, "liveupdate", lu, sizeof(lu));
	switch_problem(p->cmdline, "kho", kho, sizeof(kho));
	if (*lu || *kho) {
		snprintf(err, errlen, "the target command line has %s%s%s: the new kernel would not take "
			 "the preserved memory (it needs liveupdate=on kho=on; or use mode=full-ram)",
			 lu, *lu && *kho ? " and " : "", kho);
		return -EINVAL;
	}
	*ret_mode = PREFLIGHT_LUO;
	return 0;
}

/* Digits into *v, at most 9 of them; the end in *end. */
static int number(const char *s, const char **end, unsigned *v)
{
	unsigned n = 0;
	size_t i;

	for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
		if (i == 9)
			return -EINVAL;
		n = n * 10 + (unsigned)(s[i] - '0');
	}
	if (i == 0)
		return -EINVAL;
	*v = n;
	*end = s + i;
	return 0;
}

int preflight_qemu_version(const char *s, unsigned *major, unsigned *minor)
{
	const char *p;
	unsigned micro;

	if (!s || number(s, &p, major) < 0 || *p != '.' || number(p + 1, &p, minor) < 0)
		return -EINVAL;
	if (*p == '.' && number(p + 1, &p, &micro) < 0)
		return -EINVAL;
	return *p ? -EINVAL : 0;
}

int preflight_machine_version(const char *machine, unsigned *major, unsigned *minor)
{
	const char *dash = machine ? strrchr(machine, '-') : NULL, *p;

	if (!dash || number(dash + 1, &p, major) < 0 || *p != '.' || number(p + 1, &p, minor) < 0 || *p)
		return -ENOENT;
	return 0;
}

int preflight_qemu_machine(const char *vm, const char *machine, const char *target_qemu,
			   const char *image, char *err, size_t errlen)
{
	unsigned qmaj, qmin, mmaj, mmin;

	if (!target_qemu || preflight_qemu_version(target_qemu, &qmaj, &qmin) < 0 ||
	    preflight_machine_version(machine, &mmaj, &mmin) < 0)
		return 0;
	if (qmaj > mmaj || (qmaj == mmaj && qmin >= mmin))
		return 0;
	snprintf(err, errlen, "%s runs on machine %s, which firmware %s's QEMU %s does not have (its newest is "
		 "%u.%u): the guest could not be restored there", vm, machine, image, target_qemu, qmaj, qmin);
	return -EPROTO;
}
