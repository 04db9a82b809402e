/* The power button: only a KEY_POWER press (value 1) calls the supervisor's
 * function, once per press; a device whose stream ends is dropped; files in
 * the input folder that are not input devices with KEY_POWER are skipped. */
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "pid1/loop.h"
#include "pid1/powerbtn.h"

static int presses;
static char pressed_by[64];

static void on_press(const char *name, void *data)
{
	assert_ptr_equal(data, &presses);
	presses++;
	snprintf(pressed_by, sizeof(pressed_by), "%s", name);
}

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/powerbtn-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static void send_ev(int fd, unsigned short type, unsigned short code, int value)
{
	struct input_event ev[2];

	memset(ev, 0, sizeof(ev));
	ev[0].type = type;
	ev[0].code = code;
	ev[0].value = value;
	ev[1].type = EV_SYN; /* SYN_REPORT, as evdev sends after each */
	assert_int_equal(write(fd, ev, sizeof(ev)), (ssize_t)sizeof(ev));
}

static void test_skips_what_is_not_a_power_button(void **state)
{
	char p[128];
	size_t n;
	int fd;

	(void)state;
	assert_int_equal(powerbtn_start("/nonexistent-input", on_press, &presses), -ENOENT);
	/* A regular file and a FIFO named like event devices, and a mouse. */
	snprintf(p, sizeof(p), "%s/event0", dir);
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(p, sizeof(p), "%s/event1", dir);
	assert_int_equal(mkfifo(p, 0600), 0);
	snprintf(p, sizeof(p), "%s/mouse0", dir);
	assert_int_equal(mkfifo(p, 0600), 0);
	assert_int_equal(powerbtn_start(dir, on_press, &presses), 0);
	(void)powerbtn_devices(&n);
	assert_int_equal(n, 0);
}

static void test_press_calls_once(void **state)
{
	const struct powerbtn_dev *d;
	int p[2];
	size_t n;

	(void)state;
	assert_int_equal(powerbtn_start(dir, on_press, &presses), 0);
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(powerbtn_watch(p[0], "/dev/input/event9", "Power Button"), 0);
	d = powerbtn_devices(&n);
	assert_int_equal(n, 1);
	assert_string_equal(d[0].name, "Power Button");

	/* Release, repeat, other keys: nothing. */
	send_ev(p[1], EV_KEY, KEY_POWER, 0);
	send_ev(p[1], EV_KEY, KEY_POWER, 2);
	send_ev(p[1], EV_KEY, KEY_A, 1);
	send_ev(p[1], EV_SW, KEY_POWER, 1);
	assert_int_equal(loop_run_once(1000), 1);
	assert_int_equal(presses, 0);
	/* A press and its release: once. */
	send_ev(p[1], EV_KEY, KEY_POWER, 1);
	send_ev(p[1], EV_KEY, KEY_POWER, 0);
	assert_int_equal(loop_run_once(1000), 1);
	assert_int_equal(presses, 1);
	assert_string_equal(pressed_by, "Power Button");
	/* Two presses in one read: twice. */
	send_ev(p[1], EV_KEY, KEY_POWER, 1);
	send_ev(p[1], EV_KEY, KEY_POWER, 1);
	assert_int_equal(loop_run_once(1000), 1);
	assert_int_equal(presses, 3);

	/* The stream ends (the device went away): no longer watched. */
	close(p[1]);
	assert_int_equal(loop_run_once(1000), 1);
	d = powerbtn_devices(&n);
	assert_int_equal(d[0].fd, -1);
	assert_int_equal(loop_run_once(0), 0);
	assert_int_equal(presses, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_skips_what_is_not_a_power_button),
		cmocka_unit_test(test_press_calls_once),
	};
	int r;

	setup(NULL);
	r = cmocka_run_group_tests(tests, NULL, NULL);
	{
		char p[128];
		const char *names[] = { "event0", "event1", "mouse0" };
		for (size_t i = 0; i < 3; i++) {
			snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
			(void)unlink(p);
		}
		(void)rmdir(dir);
	}
	return r;
}
