/* The event loop. See loop.h.
 *
 * epoll reports events by the data given at registration, not by the file:
 * an fd closed and reused within one batch would otherwise get the events
 * of its predecessor. Each registration gets a fresh generation, stored
 * beside the fd in the 64-bit epoll data; dispatch checks it. */
#include "pid1/loop.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define LOOP_MAX_FD 4096
#define LOOP_BATCH 32
#define LOOP_FAIL_PAUSE_MS 1000

struct source {
	loop_fn fn;
	void *data;
	uint64_t turn; /* the loop_run_once turn that last dispatched it */
	uint32_t gen;  /* 0: no source on this fd */
	bool timer;
};

static int epfd = -1;
static struct source sources[LOOP_MAX_FD];
static uint32_t last_gen;
static uint64_t last_turn;

static uint64_t key(int fd)
{
	return (uint64_t)sources[fd].gen << 32 | (uint32_t)fd;
}

int loop_init(void)
{
	if (epfd >= 0)
		return 0;
	epfd = epoll_create1(EPOLL_CLOEXEC);
	return epfd < 0 ? -errno : 0;
}

static int add(int fd, uint32_t events, loop_fn fn, void *data, bool timer)
{
	struct epoll_event ev = { .events = events };
	uint32_t gen;

	if (fd < 0 || fd >= LOOP_MAX_FD)
		return -EMFILE;
	if (++last_gen == 0)
		last_gen = 1;
	gen = last_gen;
	ev.data.u64 = (uint64_t)gen << 32 | (uint32_t)fd;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	sources[fd] = (struct source){ .fn = fn, .data = data, .gen = gen, .timer = timer };
	return 0;
}

int loop_add(int fd, uint32_t events, loop_fn fn, void *data)
{
	return add(fd, events, fn, data, false);
}

int loop_mod(int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events };

	if (fd < 0 || fd >= LOOP_MAX_FD || !sources[fd].gen)
		return -ENOENT;
	ev.data.u64 = key(fd);
	return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void loop_del(int fd)
{
	if (fd < 0 || fd >= LOOP_MAX_FD || !sources[fd].gen)
		return;
	/* Fails only when fd was already closed, which also removed it. */
	(void)epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
	sources[fd].gen = 0;
}

/* epoll_wait failed (not EINTR): a broken loop. Callers retry, so take the
 * time a wait would have taken rather than return at once (a PID 1 spinning
 * on a dead epoll starves the machine). */
static void fail_pause(int timeout_ms)
{
	int ms = timeout_ms < 0 || timeout_ms > LOOP_FAIL_PAUSE_MS ? LOOP_FAIL_PAUSE_MS : timeout_ms;
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	(void)nanosleep(&ts, NULL);
}

/* Consume a timer's expiry count: false when there was none (already read,
 * or the timer was re-armed since the wait). */
static bool timer_expired(int tfd)
{
	uint64_t n;

	return read(tfd, &n, sizeof(n)) == (ssize_t)sizeof(n) && n > 0;
}

int loop_run_once(int timeout_ms)
{
	struct epoll_event evs[LOOP_BATCH];
	uint64_t turn = ++last_turn;
	int n, r, ran = 0;

	n = epoll_wait(epfd, evs, LOOP_BATCH, timeout_ms);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		r = -errno;
		fail_pause(timeout_ms);
		return r;
	}
	for (int i = 0; i < n; i++) {
		int fd = (int)(uint32_t)evs[i].data.u64;
		uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
		struct source *s;

		if (fd < 0 || fd >= LOOP_MAX_FD)
			continue;
		s = &sources[fd];
		/* Removed, or replaced by a new source on the same number, by
		 * an earlier callback of this batch or a nested turn. */
		if (!gen || s->gen != gen)
			continue;
		/* A nested turn waited after us and already ran it: what we
		 * collected is older than what it handled. */
		if (s->turn > turn)
			continue;
		s->turn = turn;
		if (s->timer && !timer_expired(fd))
			continue;
		s->fn(fd, evs[i].events, s->data);
		ran++;
	}
	return ran;
}

int loop_timer_add(uint64_t first_ms, uint64_t interval_ms, loop_fn fn, void *data)
{
	struct itimerspec its = {
		.it_value = { (time_t)(first_ms / 1000), (long)(first_ms % 1000) * 1000000 },
		.it_interval = { (time_t)(interval_ms / 1000), (long)(interval_ms % 1000) * 1000000 },
	};
	int tfd, r;

	if (first_ms == 0)
		its.it_value.tv_nsec = 1; /* zero would disarm it */
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (tfd < 0)
		return -errno;
	if (timerfd_settime(tfd, 0, &its, NULL) < 0) {
		r = -errno;
		close(tfd);
		return r;
	}
	r = add(tfd, EPOLLIN, fn, data, true);
	if (r < 0) {
		close(tfd);
		return r;
	}
	return tfd;
}

void loop_timer_del(int tfd)
{
	if (tfd < 0)
		return;
	loop_del(tfd);
	close(tfd);
}

uint64_t now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

double realtime_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}
