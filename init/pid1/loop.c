/* The event loop. See loop.h. */
#include "pid1/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define LOOP_MAX_FD 4096

struct source {
	loop_fn fn;
	void *data;
	int active;
};

static int epfd = -1;
static struct source sources[LOOP_MAX_FD];

int loop_init(void)
{
	if (epfd >= 0)
		return 0;
	epfd = epoll_create1(EPOLL_CLOEXEC);
	return epfd < 0 ? -errno : 0;
}

int loop_add(int fd, uint32_t events, loop_fn fn, void *data)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };

	if (fd < 0 || fd >= LOOP_MAX_FD)
		return -EMFILE;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	sources[fd] = (struct source){ .fn = fn, .data = data, .active = 1 };
	return 0;
}

int loop_mod(int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };

	if (fd < 0 || fd >= LOOP_MAX_FD || !sources[fd].active)
		return -ENOENT;
	return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void loop_del(int fd)
{
	if (fd < 0 || fd >= LOOP_MAX_FD || !sources[fd].active)
		return;
	/* Fails only when fd was already closed, which also removed it. */
	(void)epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
	sources[fd].active = 0;
}

int loop_run_once(int timeout_ms)
{
	struct epoll_event evs[32];
	int n, ran = 0;

	n = epoll_wait(epfd, evs, 32, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		int fd = evs[i].data.fd;
		/* Removed (or replaced) by an earlier callback in this batch. */
		if (fd < 0 || fd >= LOOP_MAX_FD || !sources[fd].active)
			continue;
		sources[fd].fn(fd, evs[i].events, sources[fd].data);
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
	r = loop_add(tfd, EPOLLIN, fn, data);
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
