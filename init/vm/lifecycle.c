/* The VM lifecycle as a table: the only place that writes vm->state. Every
 * change is logged at debug level and sent as a VM_STATE_CHANGED event; a
 * change the table does not allow is logged as a bug and refused. */
#include "vm/vm_impl.h"

#include <json-c/json.h>

#include "pid1/event.h"
#include "pid1/log.h"

#define S(x) (1u << (x))

/* allowed[from]: the states it may go to. Staying in a state is always
 * allowed (a retry: restoring again, a restart after a failed start). */
static const unsigned allowed[] = {
	/* QMP up; the start failed; stopped before it was up */
	[VM_STARTING] = S(VM_RUNNING) | S(VM_FAILED) | S(VM_STOPPED),
	/* guest paused; QEMU exited (restart, stop, failure); saved for an update */
	[VM_RUNNING] = S(VM_PAUSED) | S(VM_STARTING) | S(VM_STOPPED) | S(VM_FAILED) | S(VM_RESTORING),
	[VM_PAUSED] = S(VM_RUNNING) | S(VM_STARTING) | S(VM_STOPPED) | S(VM_FAILED) | S(VM_RESTORING),
	/* restored; gave up; QEMU died and the policy restarts it */
	[VM_RESTORING] = S(VM_RUNNING) | S(VM_FAILED) | S(VM_STOPPED) | S(VM_STARTING),
	/* a start, or a restore of a saved state (after a kexec) */
	[VM_STOPPED] = S(VM_STARTING) | S(VM_RESTORING) | S(VM_FAILED),
	[VM_FAILED] = S(VM_STARTING) | S(VM_RESTORING) | S(VM_STOPPED),
};

const char *vm_state_name(enum vm_state s)
{
	static const char *const n[] = { "starting", "running", "paused", "restoring", "stopped", "failed" };
	return (unsigned)s < sizeof(n) / sizeof(n[0]) ? n[s] : "unknown";
}

void vm_state_init(struct vm *vm)
{
	vm->state = VM_STOPPED;
}

bool vm_transition_allowed(enum vm_state from, enum vm_state to)
{
	if ((unsigned)from >= sizeof(allowed) / sizeof(allowed[0]) ||
	    (unsigned)to >= sizeof(allowed) / sizeof(allowed[0]))
		return false;
	return from == to || (allowed[from] & S(to)) != 0;
}

bool vm_set_state(struct vm *vm, enum vm_state to, const char *reason)
{
	enum vm_state from = vm->state;
	json_object *d;

	if (!vm_transition_allowed(from, to)) {
		log_err("%s: refused the illegal state change %s -> %s (%s)", vm->conf->name, vm_state_name(from),
			vm_state_name(to), reason);
		return false;
	}
	if (from == to)
		return true;
	vm->state = to;
	log_debug("%s: %s -> %s (%s)", vm->conf->name, vm_state_name(from), vm_state_name(to), reason);
	d = json_object_new_object();
	if (d) {
		json_object_object_add(d, "name", json_object_new_string(vm->conf->name));
		json_object_object_add(d, "old", json_object_new_string(vm_state_name(from)));
		json_object_object_add(d, "new", json_object_new_string(vm_state_name(to)));
		json_object_object_add(d, "reason", json_object_new_string(reason));
	}
	event_emit("VM_STATE_CHANGED", d);
	return true;
}
