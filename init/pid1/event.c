/* Events: a single sink, set by whoever serves the clients. */
#include "pid1/event.h"

#include <json-c/json.h>

static event_sink_fn sink;

void event_set_sink(event_sink_fn fn)
{
	sink = fn;
}

void event_emit(const char *name, struct json_object *data)
{
	if (!data)
		data = json_object_new_object();
	if (sink && data)
		sink(name, data);
	json_object_put(data);
}

void event_vm_restarted(const char *name, unsigned restarts)
{
	struct json_object *d = sink ? json_object_new_object() : NULL;

	if (!d) /* nobody listens (or no memory): nothing to build */
		return;
	json_object_object_add(d, "name", json_object_new_string(name));
	json_object_object_add(d, "restarts", json_object_new_int64(restarts));
	event_emit("VM_RESTARTED", d);
}

void event_update_phase(const char *phase, const char *vm, double ms)
{
	struct json_object *d = sink ? json_object_new_object() : NULL;

	if (!d)
		return;
	json_object_object_add(d, "phase", json_object_new_string(phase));
	json_object_object_add(d, "ms", json_object_new_double(ms));
	if (vm)
		json_object_object_add(d, "vm", json_object_new_string(vm));
	event_emit("UPDATE_PHASE", d);
}
