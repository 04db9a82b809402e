/* One VM's configuration as data that travels: written into the update
 * manifest as the machine a guest was saved on, read back through the same
 * validator, and compared with the current config field by field. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmconf.h"

static json_object *str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

json_object *vmconf_vm_to_json(const struct vmconf_vm *vm)
{
	json_object *o = json_object_new_object(), *disks, *args;

	if (!o)
		return NULL;
	json_object_object_add(o, "name", json_object_new_string(vm->name));
	json_object_object_add(o, "memory_mib", json_object_new_int64(vm->memory_mib));
	json_object_object_add(o, "vcpus", json_object_new_int64(vm->vcpus));
	json_object_object_add(o, "machine", str_or_null(vm->machine));
	json_object_object_add(o, "cpu", str_or_null(vm->cpu));
	json_object_object_add(o, "accel", json_object_new_string(vmconf_accel_name(vm->accel)));
	json_object_object_add(o, "kernel", str_or_null(vm->kernel));
	json_object_object_add(o, "initrd", str_or_null(vm->initrd));
	json_object_object_add(o, "cmdline", str_or_null(vm->cmdline));
	disks = json_object_new_array();
	for (size_t i = 0; disks && i < vm->n_disks; i++) {
		json_object *d = json_object_new_object();
		json_object_object_add(d, "path", json_object_new_string(vm->disks[i].path));
		json_object_object_add(d, "format", json_object_new_string(vm->disks[i].format));
		json_object_object_add(d, "readonly", json_object_new_boolean(vm->disks[i].readonly));
		json_object_array_add(disks, d);
	}
	json_object_object_add(o, "disks", disks);
	json_object_object_add(o, "serial", str_or_null(vm->serial));
	json_object_object_add(o, "restart", json_object_new_string(vmconf_restart_name(vm->restart)));
	json_object_object_add(o, "ram_backing", json_object_new_string(vmconf_ram_name(vm->ram_backing)));
	json_object_object_add(o, "qemu", str_or_null(vm->qemu));
	args = json_object_new_array();
	for (size_t i = 0; args && i < vm->n_qemu_args; i++)
		json_object_array_add(args, json_object_new_string(vm->qemu_args[i]));
	json_object_object_add(o, "qemu_args", args);
	json_object_object_add(o, "user", str_or_null(vm->user));
	/* Written with every MAC, derived ones too: the saved machine keeps the
	 * guest's MACs whatever derivation a later init would use. */
	json_object *nics = json_object_new_array();
	for (size_t i = 0; nics && i < vm->n_nics; i++) {
		json_object *n = json_object_new_object();
		json_object_object_add(n, "bridge", json_object_new_string(vm->nics[i].bridge));
		json_object_object_add(n, "mac", json_object_new_string(vm->nics[i].mac));
		json_object_object_add(n, "model", json_object_new_string(vm->nics[i].model));
		json_object_array_add(nics, n);
	}
	json_object_object_add(o, "nics", nics);
	return o;
}

int vmconf_vm_from_json(const json_object *o, struct vmconf **ret, struct vmconf_errors *errs)
{
	json_object *doc = json_object_new_object(), *vms = json_object_new_array();
	const char *text;
	int r;

	*ret = NULL;
	if (!doc || !vms) {
		json_object_put(doc);
		json_object_put(vms);
		return -ENOMEM;
	}
	json_object_object_add(doc, "version", json_object_new_int(1));
	/* get() because the document's put() drops a reference of its own. */
	json_object_array_add(vms, json_object_get((json_object *)o));
	json_object_object_add(doc, "vms", vms);
	/* The bridges its NICs name, so that the validator knows them; which
	 * bridges exist is the host's business, not the saved machine's. */
	{
		json_object *nics, *bridges = json_object_new_array(), *nw = json_object_new_object();
		size_t n = json_object_object_get_ex(o, "nics", &nics) && json_object_is_type(nics, json_type_array)
				   ? json_object_array_length(nics) : 0;
		for (size_t i = 0; bridges && i < n; i++) {
			json_object *b, *nic = json_object_array_get_idx(nics, i);
			if (!json_object_is_type(nic, json_type_object) || !json_object_object_get_ex(nic, "bridge", &b) ||
			    !json_object_is_type(b, json_type_string))
				continue;
			bool seen = false;
			for (size_t j = 0; j < i && !seen; j++) {
				json_object *bj;
				seen = json_object_object_get_ex(json_object_array_get_idx(nics, j), "bridge", &bj) &&
				       json_object_is_type(bj, json_type_string) &&
				       strcmp(json_object_get_string(bj), json_object_get_string(b)) == 0;
			}
			if (seen)
				continue;
			json_object *e = json_object_new_object();
			json_object_object_add(e, "name", json_object_get(b));
			json_object_object_add(e, "uplink", NULL);
			json_object_array_add(bridges, e);
		}
		json_object_object_add(nw, "bridges", bridges);
		json_object_object_add(doc, "network", nw);
	}
	text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN);
	r = text ? vmconf_parse_buffer(text, strlen(text), ret, errs) : -ENOMEM;
	json_object_put(doc);
	if (r == 0 && (*ret)->n_vms != 1) {
		vmconf_free(*ret);
		*ret = NULL;
		r = -EINVAL;
	}
	return r;
}

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

struct diff {
	char **v;
	size_t n;
	bool oom;
};

static void diff_add(struct diff *d, const char *path)
{
	char **v;

	if (d->oom)
		return;
	v = realloc(d->v, (d->n + 2) * sizeof(*v));
	if (!v || !(v[d->n] = strdup(path))) {
		d->oom = true;
		if (v)
			d->v = v;
		return;
	}
	d->v = v;
	d->v[++d->n] = NULL;
}

int vmconf_vm_diff(const struct vmconf_vm *a, const struct vmconf_vm *b, char ***ret)
{
	struct diff d = { 0 };
	char path[64];

	*ret = NULL;
	if (strcmp(a->name, b->name) != 0) diff_add(&d, "name");
	if (a->memory_mib != b->memory_mib) diff_add(&d, "memory_mib");
	if (a->vcpus != b->vcpus) diff_add(&d, "vcpus");
	if (!str_eq(a->machine, b->machine)) diff_add(&d, "machine");
	if (!str_eq(a->cpu, b->cpu)) diff_add(&d, "cpu");
	if (a->accel != b->accel) diff_add(&d, "accel");
	if (!str_eq(a->kernel, b->kernel)) diff_add(&d, "kernel");
	if (!str_eq(a->initrd, b->initrd)) diff_add(&d, "initrd");
	if (!str_eq(a->cmdline, b->cmdline)) diff_add(&d, "cmdline");
	for (size_t i = 0; i < a->n_disks || i < b->n_disks; i++) {
		const struct vmconf_disk *x = i < a->n_disks ? &a->disks[i] : NULL;
		const struct vmconf_disk *y = i < b->n_disks ? &b->disks[i] : NULL;
		if (!x || !y) {
			snprintf(path, sizeof(path), "disks[%zu]", i);
			diff_add(&d, path);
			continue;
		}
		if (!str_eq(x->path, y->path)) {
			snprintf(path, sizeof(path), "disks[%zu].path", i);
			diff_add(&d, path);
		}
		if (!str_eq(x->format, y->format)) {
			snprintf(path, sizeof(path), "disks[%zu].format", i);
			diff_add(&d, path);
		}
		if (x->readonly != y->readonly) {
			snprintf(path, sizeof(path), "disks[%zu].readonly", i);
			diff_add(&d, path);
		}
	}
	if (!str_eq(a->serial, b->serial)) diff_add(&d, "serial");
	if (a->restart != b->restart) diff_add(&d, "restart");
	if (a->ram_backing != b->ram_backing) diff_add(&d, "ram_backing");
	if (!str_eq(a->qemu, b->qemu)) diff_add(&d, "qemu");
	if (a->n_qemu_args != b->n_qemu_args) {
		diff_add(&d, "qemu_args");
	} else {
		for (size_t i = 0; i < a->n_qemu_args; i++)
			if (strcmp(a->qemu_args[i], b->qemu_args[i]) != 0) {
				diff_add(&d, "qemu_args");
				break;
			}
	}
	if (!str_eq(a->user, b->user)) diff_add(&d, "user");
	for (size_t i = 0; i < a->n_nics || i < b->n_nics; i++) {
		const struct vmconf_nic *x = i < a->n_nics ? &a->nics[i] : NULL;
		const struct vmconf_nic *y = i < b->n_nics ? &b->nics[i] : NULL;
		if (!x || !y) {
			snprintf(path, sizeof(path), "nics[%zu]", i);
			diff_add(&d, path);
			continue;
		}
		if (!str_eq(x->bridge, y->bridge)) {
			snprintf(path, sizeof(path), "nics[%zu].bridge", i);
			diff_add(&d, path);
		}
		if (strcmp(x->mac, y->mac) != 0) {
			snprintf(path, sizeof(path), "nics[%zu].mac", i);
			diff_add(&d, path);
		}
		if (!str_eq(x->model, y->model)) {
			snprintf(path, sizeof(path), "nics[%zu].model", i);
			diff_add(&d, path);
		}
	}
	if (d.oom) {
		vmconf_strv_free(d.v);
		return -ENOMEM;
	}
	*ret = d.v;
	return (int)d.n;
}

void vmconf_strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}
