/* The hardware watchdog (/dev/watchdog), a PID 1 service.
 *
 * PID 1 opens it first thing (luoinit.watchdog=SECONDS, 0: not armed) and
 * feeds it from the loop every third of its timeout. What blocks the loop
 * for long feeds it on the way, but only inside waits that are bounded
 * (watchdog_feed: a migration's wait, a QEMU's exit, the boot's steps), and
 * the update feeds it right before the kexec (watchdog_feed_now). It is
 * never disarmed: no magic close, and the board's kernels lock it once it
 * started (CONFIG_WATCHDOG_NOWAYOUT), so it counts on across the kexec until
 * the new init opens it again. A hung PID 1 or a dead kernel: a reset. */
#ifndef LUOINIT_WATCHDOG_H
#define LUOINIT_WATCHDOG_H

#include <stdbool.h>
#include <stdint.h>

#define WATCHDOG_DEVICE "/dev/watchdog"

struct watchdog_status {
	char device[64];            /* "" when not armed */
	char identity[32];          /* the driver's name for it (WDIOC_GETSUPPORT) */
	unsigned timeout;           /* seconds, as the driver took them; 0: not armed */
	double last_feed;           /* CLOCK_REALTIME ms of the last feed, 0: none */
	uint64_t last_feed_mono;    /* and monotonic ms */
	uint64_t feeds;
	bool reset_by_watchdog;     /* WDIOF_CARDRESET: it reset the machine before this boot */
	char error[200];            /* why it is not armed, or its last failure; "" */
};

/* Open dev, set timeout_s (0: leave it alone, not armed), feed it, and put
 * the feeding timer in the loop. 0, or a negative errno (logged, and said in
 * the status' error); a device that does not open is not armed. */
int watchdog_start(const char *dev, unsigned timeout_s);
bool watchdog_armed(void);
/* Feed if the last feed is a second old or more: for bounded waits. */
void watchdog_feed(void);
/* Feed now: before a kexec, a reboot. */
void watchdog_feed_now(void);
const struct watchdog_status *watchdog_status(void);

#endif
