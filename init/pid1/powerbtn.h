/* The power button, a PID 1 service. The kernel's ACPI button driver
 * reports KEY_POWER on an input device (evdev); every /dev/input/event*
 * whose keys include KEY_POWER is watched from the loop, and a press calls
 * the function the supervisor handed in. Devices are looked for once, at
 * start: the board's ACPI button is built into the kernel and there before
 * PID 1 runs. */
#ifndef LUOINIT_POWERBTN_H
#define LUOINIT_POWERBTN_H

#include <stddef.h>

#define POWERBTN_DIR "/dev/input"
#define POWERBTN_MAX 8

struct powerbtn_dev {
	int fd;                     /* -1: gone */
	char path[64];
	char name[64];              /* the device's (EVIOCGNAME), e.g. "Power Button" */
};

typedef void (*powerbtn_fn)(const char *name, void *data);

/* Watch every eventN in dir that can send KEY_POWER; fn on each press.
 * Returns how many are watched, or a negative errno (dir unreadable). */
int powerbtn_start(const char *dir, powerbtn_fn fn, void *data);
/* Watch fd (taken over) as a power button's event stream: what
 * powerbtn_start does for each device it keeps (tests hand in a pipe). */
int powerbtn_watch(int fd, const char *path, const char *name);
/* The devices watched (gone ones have fd -1). */
const struct powerbtn_dev *powerbtn_devices(size_t *n);

#endif
