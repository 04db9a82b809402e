/* The power button. See powerbtn.h. */
#include "pid1/powerbtn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <linux/input.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "pid1/log.h"
#include "pid1/loop.h"

#define LONG_BITS (8 * sizeof(long))

static struct powerbtn_dev devs[POWERBTN_MAX];
static size_t n_devs;
static powerbtn_fn on_press;
static void *on_press_data;

const struct powerbtn_dev *powerbtn_devices(size_t *n)
{
	*n = n_devs;
	return devs;
}

static void gone(struct powerbtn_dev *d, int err)
{
	if (err)
		log_errno(LOG_WARN, err, "power button %s (%s): no longer watched", d->path, d->name);
	else
		log_warn("power button %s (%s): closed, no longer watched", d->path, d->name);
	loop_del(d->fd);
	close(d->fd);
	d->fd = -1;
}

/* A press is EV_KEY KEY_POWER with value 1 (0 is the release, 2 a repeat). */
static void on_events(int fd, uint32_t events, void *data)
{
	struct powerbtn_dev *d = data;
	struct input_event ev[16];
	ssize_t n;

	(void)fd;
	(void)events;
	for (;;) {
		n = read(d->fd, ev, sizeof(ev));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			gone(d, n < 0 ? errno : 0);
			return;
		}
		/* evdev hands out whole events only. */
		for (size_t i = 0; i < (size_t)n / sizeof(ev[0]); i++)
			if (ev[i].type == EV_KEY && ev[i].code == KEY_POWER && ev[i].value == 1) {
				log_info("power button pressed (%s)", d->name);
				if (on_press)
					on_press(d->name, on_press_data);
			}
	}
}

int powerbtn_watch(int fd, const char *path, const char *name)
{
	struct powerbtn_dev *d;
	int r;

	if (n_devs >= POWERBTN_MAX) {
		close(fd);
		return -ENOSPC;
	}
	d = &devs[n_devs];
	d->fd = fd;
	snprintf(d->path, sizeof(d->path), "%s", path);
	snprintf(d->name, sizeof(d->name), "%s", name);
	if ((r = loop_add(fd, EPOLLIN, on_events, d)) < 0) {
		close(fd);
		d->fd = -1;
		return r;
	}
	n_devs++;
	return 0;
}

/* Does the input device on fd send KEY_POWER? */
static bool has_power_key(int fd)
{
	unsigned long keys[KEY_MAX / LONG_BITS + 1];

	memset(keys, 0, sizeof(keys));
	if (ioctl(fd, EVIOCGBIT(EV_KEY, sizeof(keys)), keys) < 0)
		return false;
	return (keys[KEY_POWER / LONG_BITS] >> (KEY_POWER % LONG_BITS)) & 1;
}

int powerbtn_start(const char *dir, powerbtn_fn fn, void *data)
{
	struct dirent *e;
	DIR *dp;
	int r, n = 0;

	on_press = fn;
	on_press_data = data;
	if ((r = loop_init()) < 0)
		return r;
	dp = opendir(dir);
	if (!dp)
		return -errno;
	while ((e = readdir(dp))) {
		char path[64], name[64] = "";
		int fd;

		if (strncmp(e->d_name, "event", 5) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0) {
			log_errno(LOG_WARN, errno, "%s", path);
			continue;
		}
		if (!has_power_key(fd)) {
			close(fd);
			continue;
		}
		if (ioctl(fd, EVIOCGNAME(sizeof(name) - 1), name) < 0)
			snprintf(name, sizeof(name), "?");
		if ((r = powerbtn_watch(fd, path, name)) < 0) {
			log_errno(LOG_WARN, r, "power button %s (%s): not watched", path, name);
			continue;
		}
		log_info("power button: %s (%s)", path, name);
		n++;
	}
	closedir(dp);
	return n;
}
