/* The watchdog service without a watchdog: off when asked (0), not armed
 * when the device is missing or is not a watchdog, each time with the
 * reason; feeding then does nothing. (The real device: tests/board.) */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "pid1/watchdog.h"

static void test_not_armed(void **state)
{
	const struct watchdog_status *w = watchdog_status();

	(void)state;
	assert_int_equal(watchdog_start("/dev/null", 0), 0);
	assert_false(watchdog_armed());
	assert_string_equal(w->error, "off (luoinit.watchdog=0)");

	assert_int_equal(watchdog_start("/nonexistent/watchdog", 60), -ENOENT);
	assert_false(watchdog_armed());
	assert_string_equal(w->device, "");
	assert_non_null(strstr(w->error, "/nonexistent/watchdog: No such file or directory"));

	/* Opens, but answers no watchdog ioctl: closed again. */
	assert_int_equal(watchdog_start("/dev/null", 60), -ENOTTY);
	assert_false(watchdog_armed());
	assert_string_equal(w->device, "");
	assert_int_equal(w->timeout, 0);
	assert_non_null(strstr(w->error, "/dev/null: not a watchdog"));

	watchdog_feed();
	watchdog_feed_now();
	assert_int_equal(w->feeds, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_not_armed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
