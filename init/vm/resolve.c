/* Aliases resolved by asking the running QEMU itself. */
#include "vm/resolve.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "vm/qmp.h"
#include "vm/vm_impl.h"

#define RESOLVE_TIMEOUT 5000

static const char *str_of(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v) : NULL;
}

/* In the list QEMU returned: the entry named `name`, or aliased so (key). */
static const char *lookup(json_object *list, const char *name, const char *alias_key, bool entry_is_alias)
{
	size_t n = json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;

	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(list, i);
		const char *en = str_of(e, "name"), *al = str_of(e, alias_key);
		if (!en)
			continue;
		/* query-machines: {"name": "pc-q35-10.0", "alias": "q35"}.
		 * query-cpu-definitions: {"name": "Skylake-Client", "alias-of": "Skylake-Client-v1"}. */
		if (!entry_is_alias && al && strcmp(al, name) == 0)
			return en;
		if (entry_is_alias && strcmp(en, name) == 0)
			return al ? al : en;
	}
	for (size_t i = 0; !entry_is_alias && i < n; i++) {
		const char *en = str_of(json_object_array_get_idx(list, i), "name");
		if (en && strcmp(en, name) == 0)
			return en;
	}
	return NULL;
}

static int resolve(struct qmp *q, const char *cmd, const char *key, bool entry_is_alias, const char *name,
		   char *out, size_t len, char *err, size_t errlen)
{
	json_object *list = NULL;
	const char *found;
	int r;

	snprintf(out, len, "%s", name);
	r = qmp_command(q, cmd, NULL, -1, RESOLVE_TIMEOUT, &list, err, errlen);
	if (r < 0)
		return r;
	found = lookup(list, name, key, entry_is_alias);
	if (found && strlen(found) < len)
		snprintf(out, len, "%s", found);
	else
		snprintf(err, errlen, "%s: QEMU lists no %s", cmd, name);
	r = found ? 0 : -ENOENT;
	json_object_put(list);
	return r;
}

int resolve_machine(struct qmp *q, const char *machine, char *out, size_t len, char *err, size_t errlen)
{
	return resolve(q, "query-machines", "alias", false, machine, out, len, err, errlen);
}

int resolve_cpu(struct qmp *q, const char *cpu, char *out, size_t len, char *err, size_t errlen)
{
	return resolve(q, "query-cpu-definitions", "alias-of", true, cpu, out, len, err, errlen);
}

int vm_resolve_names(struct vm *vm, char *machine, size_t mlen, char *cpu, size_t clen, char *err, size_t errlen)
{
	const struct vmconf_vm *c = vm->conf;
	int r;

	snprintf(machine, mlen, "%s", c->machine);
	snprintf(cpu, clen, "%s", c->cpu);
	if (!vm->qmp) {
		snprintf(err, errlen, "QEMU has no QMP connection to ask");
		return -ENOTCONN;
	}
	if ((r = resolve_machine(vm->qmp, c->machine, machine, mlen, err, errlen)) < 0)
		return r;
	return resolve_cpu(vm->qmp, c->cpu, cpu, clen, err, errlen);
}
