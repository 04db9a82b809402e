/* The event loop: one epoll for signalfd, sockets, pipes, pidfds and timerfds.
 *
 * Sources are keyed by fd, and each registration carries a generation in its
 * epoll data: an event collected for a source that has since been removed, or
 * replaced by a new source on the same fd number (closed and reused by an
 * earlier callback of the same batch, or by a nested loop_run_once), is
 * dropped, never delivered to the new source. Callbacks may run the loop
 * again (nested); an event a nested turn has already dispatched is not
 * delivered a second time by the outer turn. Call loop_del before close.
 * Callbacks never block for long. */
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
 * callbacks run, or a negative errno (EINTR is not an error: returns 0).
 * When epoll_wait itself fails it first waits out timeout_ms (at most 1 s,
 * also for -1), so a caller that retries never spins hot. */
int loop_run_once(int timeout_ms);

/* A one-shot or periodic timer on a timerfd. The loop reads the expiry count
 * itself and calls fn only for a real expiry (fn must not read(2) the fd: it
 * would get EAGAIN); a timer deleted or replaced meanwhile is
 * not called. Returns the timerfd (>= 0) or a negative errno. Delete with
 * loop_timer_del (it also closes the fd; -1 is ignored). */
int loop_timer_add(uint64_t first_ms, uint64_t interval_ms, loop_fn fn, void *data);
void loop_timer_del(int tfd);

/* Monotonic milliseconds, and CLOCK_REALTIME in milliseconds (for stamps). */
uint64_t now_ms(void);
double realtime_ms(void);

#endif
