/* The CPU's time-stamp counter: it keeps counting through a kexec, while
 * CLOCK_REALTIME after a boot is read from an RTC with one-second resolution.
 * So the time from the old kernel's reboot() to the new init is measured in
 * TSC ticks. x86 only; elsewhere tsc_read() is 0 and callers fall back. */
#ifndef LUOINIT_TSC_H
#define LUOINIT_TSC_H

#include <stdint.h>

uint64_t tsc_read(void);
/* Ticks per second, measured against CLOCK_MONOTONIC_RAW over ~50 ms; 0 when
 * there is no usable TSC. */
double tsc_hz(void);

#endif
