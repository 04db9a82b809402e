/* See tscfreq.h. */
#include "update/tscfreq.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define WORD "tsc_early_khz="

int tscfreq_cpu_knows(const char *cpuinfo)
{
	const char *l = cpuinfo;

	while (l && *l) {
		const char *end = strchr(l, '\n');
		size_t n = end ? (size_t)(end - l) : strlen(l);
		if (strncmp(l, "flags", 5) == 0) {
			for (const char *p = l; (p = strstr(p, " tsc_known_freq")) && p < l + n; p++) {
				char after = p[15];
				if (after == ' ' || after == '\n' || after == '\0')
					return 1;
			}
			return 0; /* the first CPU's flags are the boot CPU's */
		}
		l = end ? end + 1 : NULL;
	}
	return 0;
}

static int cpu_knows(void)
{
	static char buf[16384];
	ssize_t n;
	int fd = open("/proc/cpuinfo", O_RDONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1); /* the first CPU's block is enough */
	if (n > 0) {
		buf[n] = 0;
		r = tscfreq_cpu_knows(buf);
	}
	close(fd);
	return r;
}

unsigned tscfreq_carry_khz(void)
{
#if defined(__x86_64__) || defined(__i386__)
	int kvm, vm;
	long khz = 0;

	if (cpu_knows())
		return 0;
	if ((kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0)
		return 0;
	/* A new VM's TSC rate is the kernel's. KVM_GET_TSC_KHZ on a VM (Linux
	 * 6.0, with KVM_CAP_VM_TSC_CONTROL, which says whether it can be
	 * set: not without TSC scaling) fails on older kernels: nothing then. */
	if ((vm = ioctl(kvm, KVM_CREATE_VM, 0)) >= 0) { /* created O_CLOEXEC */
		khz = ioctl(vm, KVM_GET_TSC_KHZ, 0);
		close(vm);
	}
	close(kvm);
	return khz > 0 ? (unsigned)khz : 0;
#else
	return 0;
#endif
}

/* The next word of a kernel command line: quotes keep blanks in it. */
static const char *next_word(const char *s, size_t *len)
{
	bool quoted = false;
	const char *e;

	while (*s == ' ' || *s == '\t' || *s == '\n')
		s++;
	for (e = s; *e && (quoted || (*e != ' ' && *e != '\t' && *e != '\n')); e++)
		if (*e == '"')
			quoted = !quoted;
	*len = (size_t)(e - s);
	return s;
}

/* Append n bytes of s to out (a blank first unless empty): false when full. */
static bool put(char *out, size_t len, size_t *off, const char *s, size_t n)
{
	if (*off + (*off ? 1 : 0) + n + 1 > len)
		return false;
	if (*off)
		out[(*off)++] = ' ';
	memcpy(out + *off, s, n);
	*off += n;
	out[*off] = 0;
	return true;
}

int tscfreq_cmdline(const char *in, unsigned khz, char *out, size_t len)
{
	char ours[32];
	size_t off = 0, n, ol = (size_t)snprintf(ours, sizeof(ours), WORD "%u", khz);
	const char *w;

	if (!len)
		return -E2BIG;
	out[0] = 0;
	for (w = next_word(in, &n); n; w = next_word(w + n, &n)) {
		if (n == 2 && strncmp(w, "--", 2) == 0) {
			/* ours before it; what follows is init's, kept as it is */
			size_t rest = strlen(w);
			while (rest && strchr(" \t\n", w[rest - 1]))
				rest--;
			return put(out, len, &off, ours, ol) && put(out, len, &off, w, rest) ? 0 : -E2BIG;
		}
		if (strncmp(w, WORD, strlen(WORD)) == 0 && n >= strlen(WORD))
			continue;
		if (!put(out, len, &off, w, n))
			return -E2BIG;
	}
	return put(out, len, &off, ours, ol) ? 0 : -E2BIG;
}
