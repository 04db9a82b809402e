/* One QMP session (design.md §4): after the greeting only qmp_capabilities
 * is served; once it succeeded, every command but it. No I/O: the server
 * keeps one of these per connection, and the unit tests drive it directly. */
#ifndef LUOINIT_CTL_SESSION_H
#define LUOINIT_CTL_SESSION_H

#include <stdbool.h>

#include "ctl/commands.h"

/* Runs a negotiated session's command; see commands_execute() for the contract. */
typedef int (*ctl_handler)(const char *name, struct json_object *args,
			   struct json_object **ret, struct cmd_error *err);

struct ctl_session {
	bool negotiated; /* qmp_capabilities succeeded: commands and events flow */
};

/* A new session, as after a greeting: negotiation comes first again. */
void ctl_session_reset(struct ctl_session *s);

/* Execute request NAME with ARGS (NULL: none) in session s: qmp_capabilities
 * here, anything else through fn once negotiated, with QEMU's errors
 * (CommandNotFound) otherwise. Same contract as fn: 0 and *ret, or a negative
 * errno and *err. */
int ctl_session_execute(struct ctl_session *s, ctl_handler fn, const char *name,
			struct json_object *args, struct json_object **ret, struct cmd_error *err);

#endif
