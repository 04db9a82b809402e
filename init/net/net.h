/* Host networking, a layer beside the PID 1 services and below vm/: the
 * configuration's bridges (with their uplinks) and each VM NIC's tap on
 * one. One rtnetlink socket for the init's life; nothing here knows of VMs
 * beyond a name and an index. */
#ifndef LUOINIT_NET_H
#define LUOINIT_NET_H

#include <stdbool.h>
#include <stddef.h>

#include "net/tap.h"

struct json_object;
struct vmconf;

/* Create conf's bridges, enslave each uplink, bring them up. A bridge or
 * uplink that fails is logged and kept for status (network.bridges[].error);
 * the rest goes on, and so do the VMs. Returns how many failed. */
int net_setup(const struct vmconf *conf);
/* {"bridges": [{"name", "uplink", "error"}]}, or NULL when net_setup never ran. */
struct json_object *net_status_json(void);

/* A NIC's tap, kept for as long as the VM exists: every QEMU of the VM gets
 * a dup of fd, so a QEMU restart (vmm-update) keeps the link. */
struct net_nic {
	char tap[TAP_NAME_MAX];
	char bridge[TAP_NAME_MAX]; /* the bridge it is attached to, "" */
	int fd;                    /* -1 until net_nic_up */
	char error[200];           /* why it is not on its bridge, "" */
};

void net_nic_init(struct net_nic *x);
/* Make sure the tap of (vm, index) exists, is up and on bridge (moved when
 * it was on another). -errno with err set only when there is no tap: a
 * bridge that is missing leaves the tap up but alone, x->error says so.
 * bridge NULL: the tap only, before the bridges exist; a later call with
 * its bridge attaches it. */
int net_nic_up(struct net_nic *x, const char *vm, size_t index, const char *bridge, char *err, size_t errlen);
void net_nic_close(struct net_nic *x);

#endif
