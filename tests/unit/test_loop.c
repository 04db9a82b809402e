/* The event loop: a source removed or replaced (same fd number) by an earlier
 * callback of the same batch, or by a nested turn, never gets the stale event;
 * a nested turn's dispatch is not repeated by the outer turn; timers are read
 * by the loop; a failing epoll_wait does not make callers spin. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "pid1/loop.h"

struct src {
	int rd, wr;   /* a pipe */
	int calls;
	int new_calls; /* calls of the source that replaced it */
	struct src *other;
};

static int depth;

static void make_pipe(struct src *s)
{
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	s->rd = p[0];
	s->wr = p[1];
}

static void poke(int wr)
{
	assert_int_equal(write(wr, "x", 1), 1);
}

static void drain(int fd)
{
	char buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static void new_cb(int fd, uint32_t events, void *data)
{
	struct src *s = data;

	(void)events;
	s->new_calls++;
	drain(fd);
}

/* Close s's pipe and put a new, empty one on the same read fd number. */
static void replace(struct src *s)
{
	int p[2];

	loop_del(s->rd);
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(dup3(p[0], s->rd, O_CLOEXEC), s->rd); /* closes the old one */
	close(p[0]);
	close(s->wr);
	s->wr = p[1];
	assert_int_equal(loop_add(s->rd, EPOLLIN, new_cb, s), 0);
}

static void cleanup(struct src *s)
{
	loop_del(s->rd);
	close(s->rd);
	close(s->wr);
}

static int setup(void **state)
{
	(void)state;
	depth = 0;
	return loop_init();
}

/* Whichever runs first replaces the other, whose event is already collected. */
static void replace_other_cb(int fd, uint32_t events, void *data)
{
	struct src *s = data;

	(void)events;
	s->calls++;
	drain(fd);
	replace(s->other);
}

static void test_stale_event_same_batch(void **state)
{
	struct src a = { 0 }, b = { 0 };

	(void)state;
	make_pipe(&a);
	make_pipe(&b);
	a.other = &b;
	b.other = &a;
	assert_int_equal(loop_add(a.rd, EPOLLIN, replace_other_cb, &a), 0);
	assert_int_equal(loop_add(b.rd, EPOLLIN, replace_other_cb, &b), 0);
	poke(a.wr);
	poke(b.wr);
	assert_int_equal(loop_run_once(1000), 1);
	assert_int_equal(a.calls + b.calls, 1);
	assert_int_equal(a.new_calls + b.new_calls, 0);
	/* The new source works, also after a loop_mod (which keeps its key). */
	{
		struct src *r = a.calls ? &b : &a;
		assert_int_equal(loop_mod(r->rd, EPOLLIN), 0);
		poke(r->wr);
		assert_int_equal(loop_run_once(1000), 1);
		assert_int_equal(r->new_calls, 1);
	}
	cleanup(&a);
	cleanup(&b);
}

/* First call (outer turn): run the loop again; the nested turn dispatches the
 * other source, which replaces itself. */
static void nest_then_replace_cb(int fd, uint32_t events, void *data)
{
	struct src *s = data;

	(void)events;
	s->calls++;
	drain(fd);
	if (depth == 0) {
		depth++;
		assert_int_equal(loop_run_once(0), 1);
		depth--;
	} else {
		replace(s);
	}
}

static void test_stale_event_nested(void **state)
{
	struct src a = { 0 }, b = { 0 };

	(void)state;
	make_pipe(&a);
	make_pipe(&b);
	assert_int_equal(loop_add(a.rd, EPOLLIN, nest_then_replace_cb, &a), 0);
	assert_int_equal(loop_add(b.rd, EPOLLIN, nest_then_replace_cb, &b), 0);
	poke(a.wr);
	poke(b.wr);
	assert_int_equal(loop_run_once(1000), 1);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
	assert_int_equal(a.new_calls + b.new_calls, 0);
	cleanup(&a);
	cleanup(&b);
}

static void nest_cb(int fd, uint32_t events, void *data)
{
	struct src *s = data;

	(void)events;
	s->calls++;
	drain(fd);
	if (depth == 0) {
		depth++;
		(void)loop_run_once(0);
		depth--;
	}
}

/* What a nested turn handled is not delivered again by the outer turn. */
static void test_nested_no_redelivery(void **state)
{
	struct src a = { 0 }, b = { 0 };

	(void)state;
	make_pipe(&a);
	make_pipe(&b);
	assert_int_equal(loop_add(a.rd, EPOLLIN, nest_cb, &a), 0);
	assert_int_equal(loop_add(b.rd, EPOLLIN, nest_cb, &b), 0);
	poke(a.wr);
	poke(b.wr);
	assert_int_equal(loop_run_once(1000), 1);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
	cleanup(&a);
	cleanup(&b);
}

/* ---- timers ---- */

static int timer_calls;

static void count_cb(int fd, uint32_t events, void *data)
{
	(void)fd;
	(void)events;
	(void)data;
	timer_calls++; /* no read(2): the loop did it */
}

static void test_timer_read_by_loop(void **state)
{
	int t;

	(void)state;
	timer_calls = 0;
	t = loop_timer_add(0, 0, count_cb, NULL);
	assert_true(t >= 0);
	assert_int_equal(loop_run_once(1000), 1);
	assert_int_equal(timer_calls, 1);
	/* Expired once: not reported again although the callback did not read. */
	assert_int_equal(loop_run_once(50), 0);
	assert_int_equal(timer_calls, 1);
	loop_timer_del(t);

	/* A periodic one keeps firing. */
	timer_calls = 0;
	t = loop_timer_add(1, 1, count_cb, NULL);
	assert_true(t >= 0);
	for (int i = 0; i < 100 && timer_calls < 3; i++)
		assert_true(loop_run_once(1000) >= 0);
	assert_int_equal(timer_calls, 3);
	loop_timer_del(t);
}

/* A timer that still reads the count itself keeps working. */
static void reading_cb(int fd, uint32_t events, void *data)
{
	uint64_t n;

	(void)events;
	(void)data;
	assert_int_equal(read(fd, &n, sizeof(n)), -1);
	assert_int_equal(errno, EAGAIN);
	timer_calls++;
}

static void test_timer_callback_that_reads(void **state)
{
	int t;

	(void)state;
	timer_calls = 0;
	t = loop_timer_add(0, 0, reading_cb, NULL);
	assert_true(t >= 0);
	assert_int_equal(loop_run_once(1000), 1);
	assert_int_equal(timer_calls, 1);
	loop_timer_del(t);
}

static int timers[2], replaced_by = -1, new_timer_calls, deleted_calls;

static void new_timer_cb(int fd, uint32_t events, void *data)
{
	(void)fd;
	(void)events;
	(void)data;
	new_timer_calls++;
}

/* Make `want` (free) the next fd number allocated: hold the lower holes. */
static int hold_lower(int want, int *held, int max)
{
	int n = 0;

	for (;;) {
		int fd = fcntl(0, F_DUPFD_CLOEXEC, 0);
		assert_true(fd >= 0);
		if (fd == want) {
			close(fd);
			return n;
		}
		assert_true(fd < want && n < max);
		held[n++] = fd;
	}
}

/* Whichever timer fires first deletes the other and starts a new one (far in
 * the future) on the same fd number. */
static void delete_other_timer_cb(int fd, uint32_t events, void *data)
{
	int i = (int)(intptr_t)data, other = timers[!i], held[64], n;

	(void)events;
	(void)fd;
	if (replaced_by >= 0) {
		deleted_calls++;
		return;
	}
	replaced_by = i;
	loop_timer_del(other);
	n = hold_lower(other, held, 64);
	timers[!i] = loop_timer_add(60000, 0, new_timer_cb, NULL);
	assert_int_equal(timers[!i], other);
	while (n > 0)
		close(held[--n]);
}

static void test_timer_deleted_in_batch(void **state)
{
	struct pollfd p[2];

	(void)state;
	replaced_by = -1;
	new_timer_calls = deleted_calls = 0;
	for (int i = 0; i < 2; i++) {
		timers[i] = loop_timer_add(0, 0, delete_other_timer_cb, (void *)(intptr_t)i);
		assert_true(timers[i] >= 0);
		p[i] = (struct pollfd){ .fd = timers[i], .events = POLLIN };
	}
	/* Both expired before the loop waits: one batch holds both. */
	for (int i = 0; i < 100 && (p[0].revents & POLLIN) + (p[1].revents & POLLIN) < 2 * POLLIN; i++)
		assert_true(poll(p, 2, 100) >= 0);
	assert_true((p[0].revents & POLLIN) && (p[1].revents & POLLIN));
	assert_int_equal(loop_run_once(1000), 1);
	assert_true(replaced_by >= 0);
	assert_int_equal(deleted_calls, 0);
	assert_int_equal(new_timer_calls, 0);
	assert_int_equal(loop_run_once(20), 0);
	assert_int_equal(new_timer_calls, 0);
	loop_timer_del(timers[0]);
	loop_timer_del(timers[1]);
}

/* ---- a failing epoll_wait ---- */

static int find_epoll_fd(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int found = -1;

	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[300], target[64];
		ssize_t n;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = 0;
		if (strcmp(target, "anon_inode:[eventpoll]") == 0)
			found = atoi(e->d_name);
	}
	closedir(d);
	return found;
}

static void test_wait_failure_does_not_spin(void **state)
{
	int ep = find_epoll_fd(), saved, null;
	uint64_t t0, t1;
	struct src a = { 0 };

	(void)state;
	assert_true(ep >= 0);
	make_pipe(&a);
	assert_int_equal(loop_add(a.rd, EPOLLIN, nest_cb, &a), 0);
	/* Put a non-epoll file on the loop's epoll fd number. */
	saved = fcntl(ep, F_DUPFD_CLOEXEC, 0);
	null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(saved >= 0 && null >= 0);
	assert_int_equal(dup3(null, ep, O_CLOEXEC), ep);
	t0 = now_ms();
	assert_int_equal(loop_run_once(100), -EINVAL);
	t1 = now_ms();
	assert_true(t1 - t0 >= 100);
	assert_int_equal(loop_run_once(0), -EINVAL); /* 0: the caller asked not to wait */
	/* Restored: the registrations live in the epoll file, kept by saved. */
	assert_int_equal(dup3(saved, ep, O_CLOEXEC), ep);
	close(saved);
	close(null);
	poke(a.wr);
	depth = 1; /* no nesting */
	assert_int_equal(loop_run_once(1000), 1);
	assert_int_equal(a.calls, 1);
	cleanup(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_stale_event_same_batch, setup),
		cmocka_unit_test_setup(test_stale_event_nested, setup),
		cmocka_unit_test_setup(test_nested_no_redelivery, setup),
		cmocka_unit_test_setup(test_timer_read_by_loop, setup),
		cmocka_unit_test_setup(test_timer_callback_that_reads, setup),
		cmocka_unit_test_setup(test_timer_deleted_in_batch, setup),
		cmocka_unit_test_setup(test_wait_failure_does_not_spin, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
