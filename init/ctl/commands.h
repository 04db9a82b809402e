/* The control commands of design.md §4, executed for the control server. */
#ifndef LUOINIT_COMMANDS_H
#define LUOINIT_COMMANDS_H

struct json_object;

struct cmd_error {
	char class_[32];  /* QEMU's error classes: "GenericError", "CommandNotFound", "DeviceNotFound" */
	char desc[512];
};

/* Execute NAME with ARGS (a JSON object, possibly NULL). On success returns 0
 * and *ret holds the "return" value (caller owns it); on failure returns a
 * negative errno and fills *err. May take seconds (vmm-update, update). */
int commands_execute(const char *name, struct json_object *args,
		     struct json_object **ret, struct cmd_error *err);

#endif
