/* A VM NIC's host side: its tap (/dev/net/tun) and, where it helps, its
 * vhost-net device. */
#ifndef LUOINIT_TAP_H
#define LUOINIT_TAP_H

#include <stddef.h>

#define TAP_NAME_MAX 16 /* IFNAMSIZ */

/* "lu-VM-N", within IFNAMSIZ: a VM name too long for it keeps its first six
 * characters and gets four hex digits of a hash of the whole name
 * ("lu-averyl1a2b-0"). The same for a VM and index on every boot. */
void tap_name(const char *vm, size_t index, char out[TAP_NAME_MAX]);
/* Create the tap `name` (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, not
 * persistent: it goes with the last fd), CLOEXEC. The fd, or -errno. */
int tap_open(const char *name);
/* /dev/vhost-net, CLOEXEC: a fresh one per QEMU (a vhost device belongs to
 * the process that set it up). The fd, or -errno. */
int vhost_open(void);

#endif
