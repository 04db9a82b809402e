/* The QMP session rules, worded as QEMU words them (monitor/qmp.c and
 * qmp-cmds-control.c), so that QMP clients read our errors as QEMU's. */
#include "ctl/session.h"

#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "ctl/proto.h"

void ctl_session_reset(struct ctl_session *s)
{
	s->negotiated = false;
}

/* qmp_capabilities {"enable": [...]}: we offer no capability, so only an
 * absent or empty list is accepted. */
static int capabilities(struct ctl_session *s, struct json_object *args,
			struct json_object **ret, struct cmd_error *err)
{
	struct json_object *en = NULL;

	if (s->negotiated) {
		ctl_proto_set_error(err, "CommandNotFound",
				    "Capabilities negotiation is already complete, command ignored");
		return -EALREADY;
	}
	if (args) {
		json_object_object_foreach(args, key, val) {
			if (strcmp(key, "enable") != 0) {
				ctl_proto_set_error(err, NULL, "Parameter '%.64s' is unexpected", key);
				return -EINVAL;
			}
			en = val;
		}
	}
	if (en && !json_object_is_type(en, json_type_array)) {
		ctl_proto_set_error(err, NULL, "Invalid parameter type for 'enable', expected: array");
		return -EINVAL;
	}
	for (size_t i = 0; en && i < json_object_array_length(en); i++) {
		struct json_object *c = json_object_array_get_idx(en, i);

		if (!json_object_is_type(c, json_type_string)) {
			ctl_proto_set_error(err, NULL, "Invalid parameter type for 'enable[%zu]', expected: string", i);
			return -EINVAL;
		}
		ctl_proto_set_error(err, NULL, "Capability %.64s not available", json_object_get_string(c));
		return -EINVAL;
	}
	*ret = json_object_new_object();
	if (!*ret) {
		ctl_proto_set_error(err, NULL, "out of memory");
		return -ENOMEM;
	}
	s->negotiated = true;
	return 0;
}

int ctl_session_execute(struct ctl_session *s, ctl_handler fn, const char *name,
			struct json_object *args, struct json_object **ret, struct cmd_error *err)
{
	*ret = NULL;
	if (strcmp(name, "qmp_capabilities") == 0)
		return capabilities(s, args, ret, err);
	if (!s->negotiated) {
		ctl_proto_set_error(err, "CommandNotFound",
				    "Expecting capabilities negotiation with 'qmp_capabilities'");
		return -EPERM;
	}
	return fn(name, args, ret, err);
}
