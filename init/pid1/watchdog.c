/* The hardware watchdog. See watchdog.h.
 *
 * Feeding is WDIOC_KEEPALIVE, or a write of one byte that is not 'V' for a
 * driver without it: a 'V' would allow the magic close, and this watchdog
 * is never to be disarmed. */
#include "pid1/watchdog.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/watchdog.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "pid1/log.h"
#include "pid1/loop.h"

#define FEED_MIN_GAP_MS 1000

static struct watchdog_status W;
static int wfd = -1;
static int timer = -1;
static bool feed_failed; /* logged once until a feed works again */

bool watchdog_armed(void)
{
	return wfd >= 0;
}

const struct watchdog_status *watchdog_status(void)
{
	return &W;
}

void watchdog_feed_now(void)
{
	int r = 0;

	if (wfd < 0)
		return;
	if (ioctl(wfd, WDIOC_KEEPALIVE, 0) < 0) {
		r = -errno;
		if (r == -EOPNOTSUPP || r == -ENOTTY)
			r = write(wfd, "k", 1) == 1 ? 0 : -errno;
	}
	if (r < 0) {
		if (!feed_failed)
			log_errno(LOG_ERR, r, "watchdog %s: feeding it failed", W.device);
		feed_failed = true;
		snprintf(W.error, sizeof(W.error), "feeding failed: %s", strerror(-r));
		return;
	}
	if (feed_failed) {
		log_info("watchdog %s: fed again", W.device);
		W.error[0] = 0;
	}
	feed_failed = false;
	W.last_feed = realtime_ms();
	W.last_feed_mono = now_ms();
	W.feeds++;
}

void watchdog_feed(void)
{
	if (wfd >= 0 && now_ms() - W.last_feed_mono >= FEED_MIN_GAP_MS)
		watchdog_feed_now();
}

static void on_timer(int fd, uint32_t events, void *data)
{
	(void)fd;
	(void)events;
	(void)data;
	watchdog_feed_now();
}

/* The timeout asked for, or what the driver keeps when it refuses it.
 * 0 when dev answers neither: not a watchdog. */
static unsigned set_timeout(unsigned want)
{
	int t = (int)want, r;

	if (ioctl(wfd, WDIOC_SETTIMEOUT, &t) == 0 && t > 0)
		return (unsigned)t;
	r = errno;
	if (ioctl(wfd, WDIOC_GETTIMEOUT, &t) < 0 || t <= 0)
		return 0;
	snprintf(W.error, sizeof(W.error), "luoinit.watchdog=%u: the driver refused it (%s); it runs with its %d s",
		 want, strerror(r), t);
	log_warn("watchdog %s: %s", W.device, W.error);
	return (unsigned)t;
}

int watchdog_start(const char *dev, unsigned timeout_s)
{
	struct watchdog_info info;
	unsigned interval;
	int flags = 0;

	if (wfd >= 0)
		return -EALREADY;
	memset(&W, 0, sizeof(W));
	if (!timeout_s) {
		snprintf(W.error, sizeof(W.error), "off (luoinit.watchdog=0)");
		log_info("watchdog: off (luoinit.watchdog=0)");
		return 0;
	}
	/* Opening starts it: from here on it must be fed. */
	wfd = open(dev, O_WRONLY | O_CLOEXEC);
	if (wfd < 0) {
		int r = -errno;
		snprintf(W.error, sizeof(W.error), "%s: %s", dev, strerror(-r));
		return log_errno(r == -ENOENT ? LOG_INFO : LOG_ERR, r, "watchdog %s, not armed", dev);
	}
	snprintf(W.device, sizeof(W.device), "%s", dev);
	W.timeout = set_timeout(timeout_s);
	if (!W.timeout) {
		snprintf(W.error, sizeof(W.error), "%s: not a watchdog (no WDIOC_SETTIMEOUT or GETTIMEOUT)", dev);
		log_err("watchdog %s", W.error);
		close(wfd);
		wfd = -1;
		W.device[0] = 0;
		return -ENOTTY;
	}
	memset(&info, 0, sizeof(info));
	if (ioctl(wfd, WDIOC_GETSUPPORT, &info) == 0)
		snprintf(W.identity, sizeof(W.identity), "%.*s", (int)sizeof(info.identity), (const char *)info.identity);
	if (ioctl(wfd, WDIOC_GETBOOTSTATUS, &flags) == 0)
		W.reset_by_watchdog = (flags & WDIOF_CARDRESET) != 0;
	watchdog_feed_now();
	interval = W.timeout * 1000 / 3;
	(void)loop_init(); /* it may run before the supervisor's */
	timer = loop_timer_add(interval, interval, on_timer, NULL);
	if (timer < 0) {
		/* Still fed at every bounded wait, but not while idle: say so. */
		snprintf(W.error, sizeof(W.error), "no feeding timer: %s", strerror(-timer));
		log_errno(LOG_ERR, timer, "watchdog %s: no feeding timer", dev);
	}
	log_info("watchdog %s (%s): armed, timeout %u s, fed every %u ms%s", dev,
		 W.identity[0] ? W.identity : "?", W.timeout, interval,
		 W.reset_by_watchdog ? "; the last reset was the watchdog's" : "");
	return 0;
}
