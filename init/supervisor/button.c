/* The power button (pid1/powerbtn.c) asks for a clean power-off: guests
 * powered down, /state unmounted, as `poweroff` does. PID 1 only: in --host
 * mode the buttons are the host's. */
#include "supervisor/sup.h"

#include "pid1/log.h"
#include "pid1/powerbtn.h"

static void on_press(const char *name, void *data)
{
	struct sup *s = data;

	log_info("power button (%s): power off", name);
	sup_ask(s, SUP_POWEROFF, SUP_SHUTDOWN_TIMEOUT);
}

void sup_button_start(struct sup *s)
{
	int r;

	if (!s->o.pid1)
		return;
	r = powerbtn_start(POWERBTN_DIR, on_press, s);
	if (r < 0)
		log_errno(LOG_WARN, r, "%s: no power button", POWERBTN_DIR);
	else if (r == 0)
		log_info("no power button (no input device in %s sends KEY_POWER)", POWERBTN_DIR);
}
