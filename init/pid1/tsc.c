/* See tsc.h. */
#include "pid1/tsc.h"

#include <time.h>

uint64_t tsc_read(void)
{
#if defined(__x86_64__) || defined(__i386__)
	uint32_t lo, hi;

	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
#else
	return 0;
#endif
}

static double mono_raw(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double tsc_hz(void)
{
	struct timespec d = { 0, 50 * 1000 * 1000 };
	double t0 = mono_raw(), t1;
	uint64_t c0 = tsc_read(), c1;

	if (!c0)
		return 0;
	(void)nanosleep(&d, NULL);
	c1 = tsc_read();
	t1 = mono_raw();
	if (c1 <= c0 || t1 <= t0)
		return 0;
	return (double)(c1 - c0) / (t1 - t0);
}
