/* The TSC rate the next kernel starts with. A kernel whose CPU does not
 * report its TSC frequency calibrates it early in boot against a timer
 * (and refines its clock a second later). KVM gives its VMs the rate of
 * the kernel at KVM's start (without constant_tsc), or at the VM's
 * creation, which after a kexec comes before the refinement; a restored
 * guest asks for the rate it was saved with. Two calibrations that differ
 * by more than KVM's tolerance (250 ppm) leave the guest's TSC on another
 * rate, or in KVM's catch-up mode (no TSC scaling). So the old kernel's
 * rate, as KVM gives it to a VM, goes to the new one as tsc_early_khz=. */
#ifndef LUOINIT_TSCFREQ_H
#define LUOINIT_TSCFREQ_H

#include <stddef.h>

/* This kernel's TSC rate in kHz, as KVM gives it to new VMs; 0 when there
 * is none to carry (the CPU reports its frequency, no KVM, not x86). */
unsigned tscfreq_carry_khz(void);

/* in with every tsc_early_khz= word left out and tsc_early_khz=khz added
 * (before a "--", whose words go to init); 0, or -E2BIG. */
int tscfreq_cmdline(const char *in, unsigned khz, char *out, size_t len);

/* Does the "flags" line of a /proc/cpuinfo text list tsc_known_freq? */
int tscfreq_cpu_knows(const char *cpuinfo);

#endif
