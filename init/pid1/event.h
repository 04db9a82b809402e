/* Events for the control protocol's clients (QMP's "event" messages). The
 * layers below the control server report here and the server registers the
 * sink at start-up, so nothing calls up into the layers above. */
#ifndef LUOINIT_EVENT_H
#define LUOINIT_EVENT_H

struct json_object;

typedef void (*event_sink_fn)(const char *name, struct json_object *data);

/* Where events go (NULL: dropped). */
void event_set_sink(event_sink_fn fn);
/* Send one event; takes ownership of data (may be NULL: an empty object). */
void event_emit(const char *name, struct json_object *data);

#endif
