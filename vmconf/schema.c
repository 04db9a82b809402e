/* Schema version 1 (design.md §3): the tree json-c built, checked field by
 * field into struct vmconf. Every problem is recorded; checking goes on. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "internal.h"

#define STR_(x) #x
#define STR(x) STR_(x)

#define EXP_PATH     "an absolute path of at most " STR(VMCONF_PATH_MAX) " bytes"
#define EXP_PATH_OPT EXP_PATH ", or null"
#define EXP_CMDLINE  "a string of at most " STR(VMCONF_CMDLINE_MAX) " bytes, or null"
#define EXP_NAME     "a name of 1 to 32 characters from a-z, 0-9, \"_\" and \"-\" " \
                     "that starts with a letter or digit"
#define EXP_USER     "a user name of 1 to 32 characters from a-z, 0-9, \"_\" and \"-\" " \
                     "that starts with a letter or \"_\", or null"
#define EXP_TOKEN    "a string of 1 to 64 printable characters without spaces"
#define EXP_SERIAL   EXP_PATH ", \"log\" or null"
#define EXP_NO_NUL   "a string without NUL bytes"
#define EXP_IFNAME   "an interface name of 1 to " STR(VMCONF_IFNAME_MAX) " bytes without \"/\", \":\" " \
                     "or whitespace, other than \".\" and \"..\""
#define EXP_MAC      "a MAC address of six hex bytes separated by \":\" (52:54:00:12:34:56)"
#define EXP_MODEL    "a QEMU device name of 1 to 64 characters from a-z, 0-9, \"-\" and \"_\""

static const char *const root_keys[] = { "version", "vms", "update", "network", NULL };
static const char *const vm_keys[] = {
	"name", "memory_mib", "vcpus", "machine", "cpu", "accel", "kernel", "initrd",
	"cmdline", "disks", "serial", "restart", "ram_backing", "qemu", "qemu_args",
	"user", "nics", NULL
};
static const char *const disk_keys[] = { "path", "format", "readonly", NULL };
static const char *const nic_keys[] = { "bridge", "mac", "model", NULL };
static const char *const network_keys[] = { "bridges", NULL };
static const char *const bridge_keys[] = { "name", "uplink", NULL };
static const char *const update_keys[] = { "kernel", "initrd", "cmdline", NULL };

static const char *const accel_names[] = { "auto", "kvm", "tcg", NULL };
static const char *const restart_names[] = { "on-failure", "always", "never", NULL };
static const char *const ram_names[] = { "auto", "fdset", "procfd", NULL };
static const char *const format_names[] = { "raw", "qcow2", NULL };

/* String predicates: the rules beyond "a string without NUL". */
static bool is_path(const char *s, size_t len)
{
	return len >= 1 && len <= VMCONF_PATH_MAX && s[0] == '/';
}

static bool is_cmdline(const char *s, size_t len)
{
	(void)s;
	return len <= VMCONF_CMDLINE_MAX;
}

static bool is_serial(const char *s, size_t len)
{
	return strcmp(s, "log") == 0 || is_path(s, len);
}

static bool is_token(const char *s, size_t len)
{
	if (len < 1 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

static bool is_name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
}

/* [a-z0-9][a-z0-9_-]{0,31} */
static bool is_vm_name(const char *s, size_t len)
{
	if (len < 1 || len > VMCONF_NAME_MAX || s[0] == '_' || s[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_name_char(s[i]))
			return false;
	return true;
}

/* [a-z_][a-z0-9_-]{0,31} */
static bool is_user_name(const char *s, size_t len)
{
	if (len < 1 || len > 32 || (s[0] >= '0' && s[0] <= '9') || s[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_name_char(s[i]))
			return false;
	return true;
}

/* What the kernel takes as a network interface name (dev_valid_name). */
static bool is_ifname(const char *s, size_t len)
{
	if (len < 1 || len > VMCONF_IFNAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '/' || s[i] == ':' || s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r'))
			return false;
	return true;
}

static bool is_model(const char *s, size_t len)
{
	if (len < 1 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_name_char(s[i]))
			return false;
	return true;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* xx:xx:xx:xx:xx:xx in either case. */
static bool is_mac(const char *s, size_t len)
{
	if (len != VMCONF_MAC_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (i % 3 == 2 ? s[i] != ':' : hexval(s[i]) < 0)
			return false;
	return true;
}

static bool is_any(const char *s, size_t len)
{
	(void)s;
	(void)len;
	return true;
}

static void vc_unknown_keys(struct vc *c, struct json_object *o, const char *const *known)
{
	char expected[256] = "no such key (known: ";
	size_t n = strlen(expected);

	for (size_t i = 0; known[i]; i++)
		n += (size_t)snprintf(expected + n, sizeof(expected) - n, "%s%s", i ? ", " : "",
				      known[i]);
	snprintf(expected + n, sizeof(expected) - n, ")");

	json_object_object_foreach(o, key, val) {
		size_t i;
		for (i = 0; known[i] && strcmp(known[i], key) != 0; i++)
			;
		if (known[i])
			continue;
		size_t mark = vc_push_key(c, key, strlen(key));
		vc_error_value(c, expected, val);
		vc_pop(c, mark);
	}
}

/* A field: where it is in the tree, and whether it is there at all. */
struct field {
	struct json_object *v; /* NULL for JSON null */
	bool present;
	size_t mark;
};

static struct field vc_enter(struct vc *c, struct json_object *o, const char *key)
{
	struct field f = { 0 };

	f.present = json_object_object_get_ex(o, key, &f.v);
	f.mark = vc_push_key(c, key, strlen(key));
	return f;
}

static void vc_leave(struct vc *c, const struct field *f)
{
	vc_pop(c, f->mark);
}

/* A string value checked with ok(). Absent: *out keeps its default unless
 * required. null: *out becomes NULL when nullable. */
static void vc_string(struct vc *c, const struct field *f, bool required, bool nullable,
		      bool (*ok)(const char *, size_t), const char *expected, char **out)
{
	if (!f->present) {
		if (required)
			vc_error_missing(c, expected);
		return;
	}
	if (!f->v && nullable) {
		free(*out);
		*out = NULL;
		return;
	}
	if (!json_object_is_type(f->v, json_type_string)) {
		vc_error_value(c, expected, f->v);
		return;
	}
	const char *s = json_object_get_string(f->v);
	size_t len = (size_t)json_object_get_string_len(f->v);
	if (strlen(s) != len) {
		vc_error_value(c, EXP_NO_NUL, f->v);
		return;
	}
	if (!ok(s, len)) {
		vc_error_value(c, expected, f->v);
		return;
	}
	char *d = strdup(s);
	if (!d) {
		c->oom = true;
		return;
	}
	free(*out);
	*out = d;
}

static void vc_enum(struct vc *c, const struct field *f, const char *const *names,
		    const char *expected, int *out)
{
	if (!f->present)
		return;
	if (json_object_is_type(f->v, json_type_string)) {
		const char *s = json_object_get_string(f->v);
		if (strlen(s) == (size_t)json_object_get_string_len(f->v))
			for (int i = 0; names[i]; i++)
				if (strcmp(names[i], s) == 0) {
					*out = i;
					return;
				}
	}
	vc_error_value(c, expected, f->v);
}

static void vc_uint(struct vc *c, const struct field *f, int64_t min, int64_t max,
		    int64_t multiple, const char *expected, uint32_t *out)
{
	if (!f->present) {
		vc_error_missing(c, expected);
		return;
	}
	/* json-c saturates huge literals: they land outside every range here. */
	int64_t v = json_object_get_int64(f->v);
	if (!json_object_is_type(f->v, json_type_int) || v < min || v > max || v % multiple) {
		vc_error_value(c, expected, f->v);
		return;
	}
	*out = (uint32_t)v;
}

static int vc_dup(struct vc *c, char **out, const char *s)
{
	*out = strdup(s);
	if (!*out)
		c->oom = true;
	return *out ? 0 : -ENOMEM;
}

/* An array field: NULL when absent (fine) or wrong (recorded). *ret_n is the
 * number of elements to check, at most max. */
static struct json_object *vc_array(struct vc *c, const struct field *f, size_t max,
				    const char *expected, const char *what, size_t *ret_n)
{
	*ret_n = 0;
	if (!f->present)
		return NULL;
	if (!json_object_is_type(f->v, json_type_array)) {
		vc_error_value(c, expected, f->v);
		return NULL;
	}
	size_t n = json_object_array_length(f->v);
	if (n > max) {
		vc_error(c, expected, "an array of %zu %s", n, what);
		n = max;
	}
	*ret_n = n;
	return f->v;
}

static void vc_disk(struct vc *c, struct json_object *o, struct vmconf_disk *d)
{
	int format = 0;

	if (vc_dup(c, &d->format, "raw") < 0)
		return;
	if (!json_object_is_type(o, json_type_object)) {
		vc_error_value(c, "an object", o);
		return;
	}
	struct field f = vc_enter(c, o, "path");
	vc_string(c, &f, true, false, is_path, EXP_PATH, &d->path);
	vc_leave(c, &f);

	f = vc_enter(c, o, "format");
	vc_enum(c, &f, format_names, "\"raw\" or \"qcow2\"", &format);
	vc_leave(c, &f);
	if (format) {
		free(d->format);
		(void)vc_dup(c, &d->format, format_names[format]);
	}

	f = vc_enter(c, o, "readonly");
	if (f.present) {
		if (json_object_is_type(f.v, json_type_boolean))
			d->readonly = json_object_get_boolean(f.v);
		else
			vc_error_value(c, "true or false", f.v);
	}
	vc_leave(c, &f);
	vc_unknown_keys(c, o, disk_keys);
}

static void vc_disks(struct vc *c, struct json_object *o, struct vmconf_vm *vm)
{
	struct field f = vc_enter(c, o, "disks");
	size_t n;
	struct json_object *a = vc_array(c, &f, VMCONF_MAX_DISKS, "an array of at most "
					 STR(VMCONF_MAX_DISKS) " disks", "disks", &n);

	if (a && n) {
		vm->disks = calloc(n, sizeof(*vm->disks));
		if (!vm->disks) {
			c->oom = true;
			n = 0;
		}
		vm->n_disks = n;
		for (size_t i = 0; i < n; i++) {
			size_t mark = vc_push_index(c, i);
			vc_disk(c, json_object_array_get_idx(a, i), &vm->disks[i]);
			vc_pop(c, mark);
		}
	}
	vc_leave(c, &f);
}

static void vc_nic(struct vc *c, struct json_object *o, struct vmconf_nic *n)
{
	char *mac = NULL;

	if (vc_dup(c, &n->model, "virtio-net-pci") < 0)
		return;
	if (!json_object_is_type(o, json_type_object)) {
		vc_error_value(c, "an object", o);
		return;
	}
	struct field f = vc_enter(c, o, "bridge");
	vc_string(c, &f, true, false, is_ifname, EXP_IFNAME, &n->bridge);
	vc_leave(c, &f);

	/* Absent or null: derived from the VM's name once the VM is read. */
	f = vc_enter(c, o, "mac");
	vc_string(c, &f, false, true, is_mac, EXP_MAC, &mac);
	if (mac) {
		for (size_t i = 0; mac[i]; i++)
			n->mac[i] = (char)(mac[i] >= 'A' && mac[i] <= 'F' ? mac[i] - 'A' + 'a' : mac[i]);
		if (hexval(mac[1]) & 1) {
			vc_error(c, "a unicast MAC address (the first byte even)", "\"%s\"", mac);
			n->mac[0] = 0;
		} else if (strcmp(n->mac, "00:00:00:00:00:00") == 0) {
			vc_error(c, "a MAC address other than 00:00:00:00:00:00", "\"%s\"", mac);
			n->mac[0] = 0;
		}
	} else if (!f.present || !f.v) {
		n->mac_derived = true;
	}
	free(mac);
	vc_leave(c, &f);

	f = vc_enter(c, o, "model");
	vc_string(c, &f, false, false, is_model, EXP_MODEL, &n->model);
	vc_leave(c, &f);
	vc_unknown_keys(c, o, nic_keys);
}

static void vc_nics(struct vc *c, struct json_object *o, struct vmconf_vm *vm)
{
	struct field f = vc_enter(c, o, "nics");
	size_t n;
	struct json_object *a = vc_array(c, &f, VMCONF_MAX_NICS, "an array of at most "
					 STR(VMCONF_MAX_NICS) " NICs", "NICs", &n);

	if (a && n) {
		vm->nics = calloc(n, sizeof(*vm->nics));
		if (!vm->nics) {
			c->oom = true;
			n = 0;
		}
		vm->n_nics = n;
		for (size_t i = 0; i < n; i++) {
			size_t mark = vc_push_index(c, i);
			vc_nic(c, json_object_array_get_idx(a, i), &vm->nics[i]);
			vc_pop(c, mark);
		}
	}
	vc_leave(c, &f);
}

static void vc_qemu_args(struct vc *c, struct json_object *o, struct vmconf_vm *vm)
{
	struct field f = vc_enter(c, o, "qemu_args");
	size_t n;
	struct json_object *a = vc_array(c, &f, VMCONF_MAX_QEMU_ARGS, "an array of at most "
					 STR(VMCONF_MAX_QEMU_ARGS) " strings", "elements", &n);

	if (a && n) {
		vm->qemu_args = calloc(n, sizeof(*vm->qemu_args));
		if (!vm->qemu_args) {
			c->oom = true;
			n = 0;
		}
		vm->n_qemu_args = n;
		for (size_t i = 0; i < n; i++) {
			struct field e = { .present = true, .v = json_object_array_get_idx(a, i),
					   .mark = vc_push_index(c, i) };
			vc_string(c, &e, true, false, is_any, "a string", &vm->qemu_args[i]);
			vc_leave(c, &e);
		}
	}
	vc_leave(c, &f);
}

/* The fields that share one shape: a string with a rule. */
struct string_field {
	const char *key;
	bool required, nullable;
	bool (*ok)(const char *, size_t);
	const char *expected;
	size_t offset; /* of the char * in struct vmconf_vm */
};

#define SF(k, req, null, fn, exp) { #k, req, null, fn, exp, offsetof(struct vmconf_vm, k) }
static const struct string_field vm_strings[] = {
	SF(machine, false, false, is_token, EXP_TOKEN),
	SF(cpu, false, false, is_token, EXP_TOKEN),
	SF(kernel, false, true, is_path, EXP_PATH_OPT),
	SF(initrd, false, true, is_path, EXP_PATH_OPT),
	SF(cmdline, false, true, is_cmdline, EXP_CMDLINE),
	SF(serial, false, true, is_serial, EXP_SERIAL),
	SF(qemu, false, false, is_path, EXP_PATH),
	SF(user, false, true, is_user_name, EXP_USER),
};

static void vc_vm_defaults(struct vc *c, struct vmconf_vm *vm)
{
	(void)vc_dup(c, &vm->machine, "q35");
	(void)vc_dup(c, &vm->cpu, "max");
	(void)vc_dup(c, &vm->serial, "log");
	(void)vc_dup(c, &vm->qemu, "/usr/bin/qemu-system-x86_64");
}

/* vms[i] of conf; the VMs before it are done (for unique names). */
static void vc_vm(struct vc *c, struct json_object *o, struct vmconf *conf, size_t i)
{
	struct vmconf_vm *vm = &conf->vms[i];
	struct field f;
	int e;

	vc_vm_defaults(c, vm);
	if (!json_object_is_type(o, json_type_object)) {
		vc_error_value(c, "an object", o);
		return;
	}

	char *name = NULL;
	f = vc_enter(c, o, "name");
	vc_string(c, &f, true, false, is_vm_name, EXP_NAME, &name);
	if (name)
		snprintf(vm->name, sizeof(vm->name), "%s", name);
	free(name);
	for (size_t j = 0; vm->name[0] && j < i; j++)
		if (strcmp(conf->vms[j].name, vm->name) == 0) {
			vc_error(c, "a name not used by another VM", "\"%s\"", vm->name);
			break;
		}
	vc_leave(c, &f);

	f = vc_enter(c, o, "memory_mib");
	vc_uint(c, &f, 16, 1048576, 2, "an integer from 16 to 1048576 that is a multiple of 2",
		&vm->memory_mib);
	vc_leave(c, &f);

	f = vc_enter(c, o, "vcpus");
	vc_uint(c, &f, 1, 256, 1, "an integer from 1 to 256", &vm->vcpus);
	vc_leave(c, &f);

	for (size_t k = 0; k < sizeof(vm_strings) / sizeof(vm_strings[0]); k++) {
		const struct string_field *s = &vm_strings[k];
		f = vc_enter(c, o, s->key);
		vc_string(c, &f, s->required, s->nullable, s->ok, s->expected,
			  (char **)((char *)vm + s->offset));
		vc_leave(c, &f);
	}
	if (!vm->serial) /* null means the default */
		(void)vc_dup(c, &vm->serial, "log");

	e = VMCONF_ACCEL_AUTO;
	f = vc_enter(c, o, "accel");
	vc_enum(c, &f, accel_names, "\"kvm\", \"tcg\" or \"auto\"", &e);
	vc_leave(c, &f);
	vm->accel = (enum vmconf_accel)e;

	e = VMCONF_RESTART_ON_FAILURE;
	f = vc_enter(c, o, "restart");
	vc_enum(c, &f, restart_names, "\"always\", \"on-failure\" or \"never\"", &e);
	vc_leave(c, &f);
	vm->restart = (enum vmconf_restart)e;

	e = VMCONF_RAM_AUTO;
	f = vc_enter(c, o, "ram_backing");
	vc_enum(c, &f, ram_names, "\"fdset\", \"procfd\" or \"auto\"", &e);
	vc_leave(c, &f);
	vm->ram_backing = (enum vmconf_ram)e;

	vc_disks(c, o, vm);
	vc_qemu_args(c, o, vm);
	vc_nics(c, o, vm);
	for (size_t k = 0; vm->name[0] && k < vm->n_nics; k++)
		if (vm->nics[k].mac_derived)
			vmconf_mac_derive(vm->name, k, vm->nics[k].mac);
	vc_unknown_keys(c, o, vm_keys);
}

static void vc_vms(struct vc *c, struct json_object *root, struct vmconf *conf)
{
	struct field f = vc_enter(c, root, "vms");
	size_t n;
	struct json_object *a = vc_array(c, &f, VMCONF_MAX_VMS, "an array of at most "
					 STR(VMCONF_MAX_VMS) " VMs", "VMs", &n);

	if (a && n) {
		conf->vms = calloc(n, sizeof(*conf->vms));
		if (!conf->vms) {
			c->oom = true;
			n = 0;
		}
		conf->n_vms = n;
		for (size_t i = 0; i < n; i++) {
			size_t mark = vc_push_index(c, i);
			vc_vm(c, json_object_array_get_idx(a, i), conf, i);
			vc_pop(c, mark);
		}
	}
	vc_leave(c, &f);
}

static void vc_update(struct vc *c, struct json_object *root, struct vmconf *conf)
{
	struct field u = vc_enter(c, root, "update");

	if (u.present && !json_object_is_type(u.v, json_type_object)) {
		vc_error_value(c, "an object with kernel, initrd and cmdline", u.v);
	} else if (u.present) {
		struct field f = vc_enter(c, u.v, "kernel");
		vc_string(c, &f, false, true, is_path, EXP_PATH_OPT, &conf->update_kernel);
		vc_leave(c, &f);
		f = vc_enter(c, u.v, "initrd");
		vc_string(c, &f, false, true, is_path, EXP_PATH_OPT, &conf->update_initrd);
		vc_leave(c, &f);
		f = vc_enter(c, u.v, "cmdline");
		vc_string(c, &f, false, true, is_cmdline, EXP_CMDLINE, &conf->update_cmdline);
		vc_leave(c, &f);
		vc_unknown_keys(c, u.v, update_keys);
	}
	vc_leave(c, &u);
}

static void vc_bridge(struct vc *c, struct json_object *o, struct vmconf *conf, size_t i)
{
	struct vmconf_bridge *b = &conf->bridges[i];
	char *name = NULL;

	if (!json_object_is_type(o, json_type_object)) {
		vc_error_value(c, "an object", o);
		return;
	}
	struct field f = vc_enter(c, o, "name");
	vc_string(c, &f, true, false, is_ifname, EXP_IFNAME, &name);
	if (name)
		snprintf(b->name, sizeof(b->name), "%s", name);
	free(name);
	for (size_t j = 0; b->name[0] && j < i; j++)
		if (strcmp(conf->bridges[j].name, b->name) == 0) {
			vc_error(c, "a name not used by another bridge", "\"%s\"", b->name);
			break;
		}
	vc_leave(c, &f);

	f = vc_enter(c, o, "uplink");
	vc_string(c, &f, false, true, is_ifname, EXP_IFNAME ", or null", &b->uplink);
	for (size_t j = 0; b->uplink && j < i; j++)
		if (conf->bridges[j].uplink && strcmp(conf->bridges[j].uplink, b->uplink) == 0) {
			char exp[96];
			snprintf(exp, sizeof(exp), "an uplink no other bridge has (network.bridges[%zu] has it)", j);
			vc_error(c, exp, "\"%s\"", b->uplink);
			break;
		}
	vc_leave(c, &f);
	vc_unknown_keys(c, o, bridge_keys);
}

static void vc_network(struct vc *c, struct json_object *root, struct vmconf *conf)
{
	struct field nw = vc_enter(c, root, "network");

	if (nw.present && !json_object_is_type(nw.v, json_type_object)) {
		vc_error_value(c, "an object with bridges", nw.v);
	} else if (nw.present) {
		struct field f = vc_enter(c, nw.v, "bridges");
		size_t n;
		struct json_object *a = vc_array(c, &f, VMCONF_MAX_BRIDGES, "an array of at most "
						 STR(VMCONF_MAX_BRIDGES) " bridges", "bridges", &n);
		conf->has_network = true;
		if (a && n) {
			conf->bridges = calloc(n, sizeof(*conf->bridges));
			if (!conf->bridges) {
				c->oom = true;
				n = 0;
			}
			conf->n_bridges = n;
			for (size_t i = 0; i < n; i++) {
				size_t mark = vc_push_index(c, i);
				vc_bridge(c, json_object_array_get_idx(a, i), conf, i);
				vc_pop(c, mark);
			}
		}
		vc_leave(c, &f);
		/* An uplink that is itself one of the bridges would loop. */
		for (size_t i = 0; i < conf->n_bridges; i++)
			for (size_t j = 0; conf->bridges[i].uplink && j < conf->n_bridges; j++)
				if (strcmp(conf->bridges[i].uplink, conf->bridges[j].name) == 0) {
					size_t m1 = vc_push_key(c, "bridges", 7), m2 = vc_push_index(c, i);
					size_t m3 = vc_push_key(c, "uplink", 6);
					vc_error(c, "an interface that is not one of the bridges", "\"%s\"",
						 conf->bridges[i].uplink);
					vc_pop(c, m3);
					vc_pop(c, m2);
					vc_pop(c, m1);
					break;
				}
		vc_unknown_keys(c, nw.v, network_keys);
	}
	vc_leave(c, &nw);
}

/* What spans VMs and the network section: every NIC on a bridge that is
 * configured, and no MAC twice, derived ones included. */
static void vc_nic_refs(struct vc *c, const struct vmconf *conf)
{
	size_t m0 = vc_push_key(c, "vms", 3);

	for (size_t i = 0; i < conf->n_vms; i++) {
		const struct vmconf_vm *vm = &conf->vms[i];
		size_t m1 = vc_push_index(c, i), m2 = vc_push_key(c, "nics", 4);
		for (size_t k = 0; k < vm->n_nics; k++) {
			const struct vmconf_nic *n = &vm->nics[k];
			size_t m3 = vc_push_index(c, k), b = 0, m4;
			while (n->bridge && b < conf->n_bridges && strcmp(conf->bridges[b].name, n->bridge) != 0)
				b++;
			if (n->bridge && b == conf->n_bridges) {
				m4 = vc_push_key(c, "bridge", 6);
				vc_error(c, "the name of a bridge in network.bridges", "\"%s\"", n->bridge);
				vc_pop(c, m4);
			}
			for (size_t j = 0; n->mac[0] && j <= i; j++) {
				const struct vmconf_vm *o = &conf->vms[j];
				size_t l = 0;
				while (l < (j == i ? k : o->n_nics) && strcmp(o->nics[l].mac, n->mac) != 0)
					l++;
				if (l == (j == i ? k : o->n_nics))
					continue;
				char exp[96];
				snprintf(exp, sizeof(exp), "a MAC address no other NIC has (vms[%zu].nics[%zu] has it)", j, l);
				m4 = vc_push_key(c, "mac", 3);
				vc_error(c, exp, "\"%s\"%s", n->mac, n->mac_derived ? " (derived from the VM's name)" : "");
				vc_pop(c, m4);
				break;
			}
			vc_pop(c, m3);
		}
		vc_pop(c, m2);
		vc_pop(c, m1);
	}
	vc_pop(c, m0);
}

int vc_schema(struct vc *c, struct json_object *root, struct vmconf **ret)
{
	struct vmconf *conf = calloc(1, sizeof(*conf));

	*ret = conf;
	if (!conf)
		return -ENOMEM;
	if (!json_object_is_type(root, json_type_object)) {
		vc_error_value(c, "a JSON object", root);
		return 0;
	}
	struct field f = vc_enter(c, root, "version");
	if (!f.present)
		vc_error_missing(c, "the integer 1");
	else if (!json_object_is_type(f.v, json_type_int) || json_object_get_int64(f.v) != 1)
		vc_error_value(c, "the integer 1", f.v);
	else
		conf->version = 1;
	vc_leave(c, &f);

	vc_vms(c, root, conf);
	vc_update(c, root, conf);
	vc_network(c, root, conf);
	vc_nic_refs(c, conf);
	vc_unknown_keys(c, root, root_keys);
	return c->oom ? -ENOMEM : 0;
}
