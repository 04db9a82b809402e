/* Taps and vhost-net devices. */
#include "net/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define TUN_DEVICE   "/dev/net/tun"
#define VHOST_DEVICE "/dev/vhost-net"

void tap_name(const char *vm, size_t index, char out[TAP_NAME_MAX])
{
	uint32_t h = 2166136261u; /* FNV-1a 32 */

	if ((size_t)snprintf(out, TAP_NAME_MAX, "lu-%s-%zu", vm, index) < TAP_NAME_MAX)
		return;
	for (const char *p = vm; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 16777619u;
	}
	snprintf(out, TAP_NAME_MAX, "lu-%.6s%04x-%zu", vm, (unsigned)((h ^ (h >> 16)) & 0xffff), index % 10);
}

int tap_open(const char *name)
{
	struct ifreq ifr;
	int fd = open(TUN_DEVICE, O_RDWR | O_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int vhost_open(void)
{
	int fd = open(VHOST_DEVICE, O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}
