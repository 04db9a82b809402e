/* The management port: without udev there is no /dev/virtio-ports/NAME, so
 * the port is found by the name the host gave it in sysfs, now or within
 * PORT_RETRIES s (its driver may still be probing), and handed to main's
 * control server. */
#include "supervisor/sup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pid1/log.h"
#include "pid1/loop.h"

#define PORT_RETRY_MS    1000
#define PORT_RETRIES     30

static int find_port(const char *name, char *dev, size_t len)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	struct dirent *e;
	int found = 0;

	if (!d)
		return 0;
	while (!found && (e = readdir(d))) {
		char path[300], buf[128];
		int fd;
		ssize_t n;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = 0;
		buf[strcspn(buf, "\n")] = 0;
		if (strcmp(buf, name) == 0) {
			snprintf(dev, len, "/dev/%s", e->d_name);
			found = 1;
		}
	}
	closedir(d);
	return found;
}

static void stop_looking(struct sup *s)
{
	loop_timer_del(s->port_timer);
	s->port_timer = -1;
}

static void try_port(struct sup *s)
{
	int r;

	if (!find_port(s->o.mgmt_name, s->port_dev, sizeof(s->port_dev))) {
		if (++s->port_tries == PORT_RETRIES) {
			log_info("no virtio-serial port named %s: control on the socket only", s->o.mgmt_name);
			stop_looking(s);
		}
		return;
	}
	stop_looking(s);
	r = s->o.serve_port ? s->o.serve_port(s->port_dev) : -ENOSYS;
	if (r < 0)
		log_errno(LOG_ERR, r, "management port %s (%s)", s->o.mgmt_name, s->port_dev);
	else
		log_info("control protocol on management port %s (%s)", s->o.mgmt_name, s->port_dev);
}

static void on_port_timer(int fd, uint32_t events, void *data)
{
	try_port(data); /* the loop read the expiry (loop.h) */
}

void sup_port_start(struct sup *s)
{
	if (!s->o.mgmt_name)
		return;
	try_port(s);
	if (s->port_dev[0] == 0)
		s->port_timer = loop_timer_add(PORT_RETRY_MS, PORT_RETRY_MS, on_port_timer, s);
}
