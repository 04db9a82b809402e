/* Events for the control protocol's clients (QMP's "event" messages). The
 * layers below the control server report here and the server registers the
 * sink at start-up, so nothing calls up into the layers above. Best effort:
 * only clients that completed QMP negotiation get them, and none is kept for
 * a client that connects later.
 *
 * The events (design.md §4):
 *   VM_STATE_CHANGED {name, old, new, reason}   vm/lifecycle.c
 *   VM_RESTARTED     {name, restarts}           the restart policy started QEMU again
 *   UPDATE_PHASE     {phase, ms[, vm]}          a live-update phase ended, ms its length */
#ifndef LUOINIT_EVENT_H
#define LUOINIT_EVENT_H

struct json_object;

typedef void (*event_sink_fn)(const char *name, struct json_object *data);

/* Where events go (NULL: dropped). The sink borrows data. */
void event_set_sink(event_sink_fn fn);
/* Send one event; takes ownership of data (may be NULL: an empty object). */
void event_emit(const char *name, struct json_object *data);

/* The events above with their data, one call each. vm may be NULL (a phase
 * of the whole update). */
void event_vm_restarted(const char *name, unsigned restarts);
void event_update_phase(const char *phase, const char *vm, double ms);

#endif
