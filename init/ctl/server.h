/* The control server (design.md §4): QMP on the Unix socket and on the
 * management virtio-serial port, many clients, bounded buffers. */
#ifndef LUOINIT_CTL_SERVER_H
#define LUOINIT_CTL_SERVER_H

#include <stdint.h>

#include "ctl/session.h"

/* Listen on PATH (mode 0600, stale socket replaced) with the loop (loop.h).
 * Peers whose uid is neither 0 nor our euid are refused (an error line, no
 * greeting). Each client is greeted and must negotiate (ctl/session.h); fn
 * runs its requests after that. */
int ctl_server_listen(const char *path, ctl_handler fn);
/* Also serve the protocol on a character device (the virtio-serial port),
 * e.g. /dev/virtio-ports/luoinit.mgmt; survives the host side going away, and
 * greets each host that appears (a new session). */
int ctl_server_add_port(const char *devpath, ctl_handler fn);
/* Send an event line to every client that completed negotiation (best
 * effort, never blocks). data is borrowed. The event sink (pid1/event.h). */
void ctl_server_broadcast_event(const char *name, struct json_object *data);
/* The id of the client whose request is running (0: none): a socket
 * connection, or one host session on the port. Ids are never reused. */
uint64_t ctl_server_current_client(void);
/* fn(id) runs when that client is gone: its connection closed, the port's
 * host left or another host appeared. What it began is abandoned there. */
void ctl_server_set_gone_hook(void (*fn)(uint64_t client));
/* Close everything (before exec or exit). */
void ctl_server_close(void);

/* Close clients that keep a partial request line for over ms (0: the default,
 * 60 s). For tests. */
void ctl_server_set_idle_timeout(uint64_t ms);
/* Connected socket clients (not the port). For tests and status. */
int ctl_server_client_count(void);

#endif
