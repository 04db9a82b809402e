/* The event loop: one epoll for signalfd, sockets, pipes, pidfds and timerfds.
 * Sources are keyed by fd; a source removed while events are pending for it is
 * simply not called. Callbacks never block for long. */
#ifndef LUOINIT_LOOP_H
#define LUOINIT_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>

typedef void (*loop_fn)(int fd, uint32_t events, void *data);

int loop_init(void);
/* events: EPOLLIN, EPOLLOUT, ... Returns 0 or a negative errno. */
int loop_add(int fd, uint32_t events, loop_fn fn, void *data);
int loop_mod(int fd, uint32_t events);
void loop_del(int fd);
/* Wait up to timeout_ms (-1: forever) and dispatch. Returns the number of
 * callbacks run, or a negative errno (EINTR is not an error: returns 0). */
int loop_run_once(int timeout_ms);

/* A one-shot or periodic timer on a timerfd; fn is called on expiry and must
 * read(2) the 8-byte expiry count from the fd to re-arm the level.
 * Returns the timerfd (>= 0) or a negative errno. Delete with loop_timer_del. */
int loop_timer_add(uint64_t first_ms, uint64_t interval_ms, loop_fn fn, void *data);
void loop_timer_del(int tfd);

/* Monotonic milliseconds, and CLOCK_REALTIME in milliseconds (for stamps). */
uint64_t now_ms(void);
double realtime_ms(void);

#endif
