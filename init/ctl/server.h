/* The control server (design.md §4): the Unix socket and the management
 * virtio-serial port, JSON lines, many clients, bounded buffers. */
#ifndef LUOINIT_CTL_SERVER_H
#define LUOINIT_CTL_SERVER_H

#include <stdint.h>

#include "ctl/commands.h"

/* Called for every well-formed request; see commands_execute() for the contract. */
typedef int (*ctl_handler)(const char *name, struct json_object *args,
			   struct json_object **ret, struct cmd_error *err);

/* Listen on PATH (mode 0600, stale socket replaced) with the loop (loop.h).
 * Peers whose uid is neither 0 nor our euid are refused. */
int ctl_server_listen(const char *path, ctl_handler fn);
/* Also serve the protocol on a character device (the virtio-serial port),
 * e.g. /dev/virtio-ports/luoinit.mgmt; survives the host side going away. */
int ctl_server_add_port(const char *devpath, ctl_handler fn);
/* Send an event line to every connected client (best effort, never blocks). */
void ctl_server_broadcast_event(const char *name, struct json_object *data);
/* Close everything (before exec or exit). */
void ctl_server_close(void);

/* Close clients that keep a partial request line for over ms (0: the default,
 * 60 s). For tests. */
void ctl_server_set_idle_timeout(uint64_t ms);
/* Connected socket clients (not the port). For tests and status. */
int ctl_server_client_count(void);

#endif
