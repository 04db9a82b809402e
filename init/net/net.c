/* Bridges from the configuration, taps for the VMs' NICs. */
#include "net/net.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/link.h"
#include "net/nl.h"
#include "pid1/log.h"
#include "vmconf.h"

struct bridge {
	char name[TAP_NAME_MAX];
	char uplink[TAP_NAME_MAX];
	char error[256];
};

static int nl_fd = -1;
static struct bridge *bridges;
static size_t n_bridges;
static bool set_up;

static int nl(void)
{
	if (nl_fd < 0)
		nl_fd = nl_open();
	return nl_fd;
}

static int bridge_up(struct bridge *b)
{
	char e[192];
	int fd = nl(), idx, up, r;

	if (fd < 0) {
		snprintf(b->error, sizeof(b->error), "rtnetlink: %s", strerror(-fd));
		return fd;
	}
	r = link_bridge_add(fd, b->name, e, sizeof(e));
	if (r == -EEXIST) {
		char kind[16] = "";
		if (link_index(fd, b->name, kind, sizeof(kind)) > 0 && strcmp(kind, "bridge") != 0) {
			snprintf(b->error, sizeof(b->error), "%s exists and is not a bridge", b->name);
			return -EEXIST;
		}
		log_info("network: bridge %s exists already: used as it is", b->name);
	} else if (r < 0) {
		snprintf(b->error, sizeof(b->error), "cannot create bridge %s: %s", b->name, e);
		return r;
	}
	if ((idx = link_index(fd, b->name, NULL, 0)) < 0) {
		snprintf(b->error, sizeof(b->error), "bridge %s: %s", b->name, strerror(-idx));
		return idx;
	}
	if ((r = link_set(fd, idx, -1, e, sizeof(e))) < 0) {
		snprintf(b->error, sizeof(b->error), "cannot bring bridge %s up: %s", b->name, e);
		return r;
	}
	if (!b->uplink[0])
		return 0;
	if ((up = link_index(fd, b->uplink, NULL, 0)) < 0) {
		snprintf(b->error, sizeof(b->error), "uplink %s of bridge %s: %s", b->uplink, b->name,
			 up == -ENODEV ? "no such interface" : strerror(-up));
		return up;
	}
	if ((r = link_set(fd, up, idx, e, sizeof(e))) < 0) {
		snprintf(b->error, sizeof(b->error), "cannot put uplink %s on bridge %s: %s", b->uplink, b->name, e);
		return r;
	}
	return 0;
}

int net_setup(const struct vmconf *conf)
{
	int failures = 0;

	free(bridges);
	bridges = calloc(conf->n_bridges ? conf->n_bridges : 1, sizeof(*bridges));
	n_bridges = 0;
	set_up = bridges != NULL;
	if (!bridges) {
		log_errno(LOG_ERR, ENOMEM, "network");
		return 1;
	}
	for (size_t i = 0; i < conf->n_bridges; i++) {
		struct bridge *b = &bridges[n_bridges++];
		snprintf(b->name, sizeof(b->name), "%s", conf->bridges[i].name);
		snprintf(b->uplink, sizeof(b->uplink), "%s", conf->bridges[i].uplink ? conf->bridges[i].uplink : "");
		if (bridge_up(b) < 0) {
			log_err("network: %s (the bridge's VMs still start)", b->error);
			failures++;
		} else {
			log_info("network: bridge %s up%s%s", b->name, b->uplink[0] ? ", uplink " : "", b->uplink);
		}
	}
	return failures;
}

json_object *net_status_json(void)
{
	json_object *o, *a;

	if (!set_up)
		return NULL;
	o = json_object_new_object();
	a = json_object_new_array();
	for (size_t i = 0; i < n_bridges; i++) {
		const struct bridge *b = &bridges[i];
		json_object *e = json_object_new_object();
		json_object_object_add(e, "name", json_object_new_string(b->name));
		json_object_object_add(e, "uplink", b->uplink[0] ? json_object_new_string(b->uplink) : NULL);
		json_object_object_add(e, "error", b->error[0] ? json_object_new_string(b->error) : NULL);
		json_object_array_add(a, e);
	}
	json_object_object_add(o, "bridges", a);
	return o;
}

void net_nic_init(struct net_nic *x)
{
	memset(x, 0, sizeof(*x));
	x->fd = -1;
}

int net_nic_up(struct net_nic *x, const char *vm, size_t index, const char *bridge, char *err, size_t errlen)
{
	char e[192];
	int fd = nl(), idx, br, r;

	if (x->fd < 0) {
		tap_name(vm, index, x->tap);
		x->bridge[0] = 0;
		if ((x->fd = tap_open(x->tap)) < 0) {
			r = x->fd;
			snprintf(err, errlen, "cannot create tap %s: %s", x->tap, strerror(-r));
			snprintf(x->error, sizeof(x->error), "%s", err);
			return r;
		}
		log_info("%s: tap %s for nics[%zu]", vm, x->tap, index);
	}
	if (!bridge)
		return 0; /* attached later (another call with its bridge) */
	if (strcmp(x->bridge, bridge) == 0 && !x->error[0])
		return 0; /* as it was: on its bridge, up */
	x->error[0] = 0;
	x->bridge[0] = 0;
	if (fd < 0 || (idx = link_index(fd, x->tap, NULL, 0)) < 0) {
		snprintf(x->error, sizeof(x->error), "tap %s: %s", x->tap, strerror(fd < 0 ? -fd : ENODEV));
	} else if ((br = link_index(fd, bridge, NULL, 0)) < 0) {
		snprintf(x->error, sizeof(x->error), "bridge %s: %s: tap %s is not attached", bridge,
			 br == -ENODEV ? "no such interface" : strerror(-br), x->tap);
		(void)link_set(fd, idx, 0, e, sizeof(e));
	} else if (link_set(fd, idx, br, e, sizeof(e)) < 0) {
		snprintf(x->error, sizeof(x->error), "cannot put tap %s on bridge %s: %s", x->tap, bridge, e);
	} else {
		snprintf(x->bridge, sizeof(x->bridge), "%s", bridge);
	}
	if (x->error[0])
		log_err("%s: %s (the VM runs, this NIC without a link)", vm, x->error);
	return 0;
}

void net_nic_close(struct net_nic *x)
{
	if (x->fd >= 0)
		close(x->fd);
	x->fd = -1;
	x->bridge[0] = 0;
}
