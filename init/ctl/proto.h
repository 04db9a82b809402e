/* The control protocol's wire format (design.md §4), QMP: parse one request
 * line, format the greeting, reply and event lines. Pure functions, no I/O, so
 * they can be fuzzed. */
#ifndef LUOINIT_CTL_PROTO_H
#define LUOINIT_CTL_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "ctl/commands.h"

struct json_object;

/* luoinit's version. QMP's greeting and query-version carry it in QEMU's
 * "qemu" triple (luoinit is not QEMU: "package" says so). */
#define LUOINIT_VERSION_MAJOR 0
#define LUOINIT_VERSION_MINOR 1
#define LUOINIT_VERSION_MICRO 0
#define LUOINIT_PACKAGE "luoinit 0.1.0"

/* Longest request line, without its terminator. */
#define CTL_LINE_MAX (64 * 1024)
/* json-c nesting limit for requests (deeper input is an error, not a stack risk). */
#define CTL_JSON_DEPTH 32

struct ctl_request {
	const char *execute;      /* points into root; valid until ctl_request_clear */
	struct json_object *args; /* the "arguments" object, NULL when absent */
	struct json_object *id;   /* the "id" value, NULL when absent,
				   * ctl_proto_null_id() for a JSON null (never
				   * pass that to json-c: only to the formatters) */
	struct json_object *root; /* owns all of the above */
};

/* Framing: where the next request in the input ends. At a newline, as
 * ever; or at the brace closing a top-level object that is valid JSON, since
 * QMP clients (QEMU's own python/qemu/qmp) send requests without newlines:
 * QMP is a stream of JSON objects, not of lines. An object that is not valid
 * JSON at its closing brace runs on to the newline, so a line of junk stays
 * one request (one error). The state carries across reads; zero it (or
 * ctl_framer_reset) for each request. */
struct ctl_framer {
	size_t pos;   /* bytes of the request scanned so far */
	int depth;    /* open braces and brackets */
	int mode;     /* 0: only whitespace yet, 1: an object, 2: a line */
	int in_str, esc;
};
void ctl_framer_reset(struct ctl_framer *f);
/* buf[0..len) holds the request's start and whatever arrived after it.
 * Returns 1 when it ends there: *msg_len bytes are the request (without its
 * newline), *used the bytes to drop; 0 when more input is needed. */
int ctl_proto_frame(struct ctl_framer *f, const char *buf, size_t len, size_t *msg_len,
		    size_t *used);

/* Parse one request line of LEN bytes (no LF; a trailing CR is ignored).
 * Returns 0 and fills *req, -ENODATA for a blank line (nothing to answer), or
 * another negative errno with *err filled; on error req->id still holds the id
 * when the line was an object carrying one, so the error reply can echo it.
 * *req is always initialised: call ctl_request_clear in every case.
 * A JSON null id is treated as absent (json-c represents null as NULL). */
int ctl_proto_parse(const char *line, size_t len, struct ctl_request *req,
		    struct cmd_error *err);
void ctl_request_clear(struct ctl_request *req);

/* Fill *err (class defaults to "GenericError"); printf-style desc, truncated. */
void ctl_proto_set_error(struct cmd_error *err, const char *class_, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* query-version's value: {"qemu": {"major", "minor", "micro"}, "package"}
 * (a new reference, NULL on ENOMEM). */
struct json_object *ctl_proto_version(void);

/* Format one line ending in '\n', malloc'd (caller frees), NULL on ENOMEM.
 * id may be NULL (then no "id" key). ret/data NULL mean {}. */
struct json_object *ctl_proto_null_id(void);
char *ctl_proto_format_return(struct json_object *ret, struct json_object *id);
char *ctl_proto_format_error(const struct cmd_error *err, struct json_object *id);
/* {"QMP": {"version": ctl_proto_version(), "capabilities": []}}: what the
 * server says first on every connection. */
char *ctl_proto_format_greeting(void);
char *ctl_proto_format_event(const char *name, struct json_object *data,
			     int64_t seconds, int64_t microseconds);

#endif
