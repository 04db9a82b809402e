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
