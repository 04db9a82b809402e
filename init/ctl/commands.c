/* The control commands (design.md §4). Arguments are checked here, with
 * errors that name the argument; the work is done by the supervisor and the
 * VM layer's operations. */
#include "ctl/commands.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/proto.h"
#include "ctl/server.h"
#include "pid1/log.h"
#include "pid1/logfile.h"
#include "supervisor/supervisor.h"
#include "update/fwpush.h"
#include "update/update.h"
#include "vm/vm.h"

#define VM_STOP_TIMEOUT 5000
#define LOG_MAX_BYTES   (64 * 1024)

__attribute__((format(printf, 3, 4)))
static int fail(struct cmd_error *err, const char *cls, const char *fmt, ...)
{
	va_list ap;

	snprintf(err->class_, sizeof(err->class_), "%s", cls);
	va_start(ap, fmt);
	vsnprintf(err->desc, sizeof(err->desc), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Only the named keys are accepted: a typo must not silently do something else. */
static int check_keys(const char *cmd, json_object *args, const char *const *keys, struct cmd_error *err)
{
	if (!args)
		return 0;
	json_object_object_foreach(args, k, v) {
		size_t i;
		(void)v;
		for (i = 0; keys[i]; i++)
			if (strcmp(k, keys[i]) == 0)
				break;
		if (!keys[i])
			return fail(err, "GenericError", "%s: unknown argument '%s'", cmd, k);
	}
	return 0;
}

static int arg_string(const char *cmd, json_object *args, const char *key, bool required,
		      const char **ret, struct cmd_error *err)
{
	json_object *v;

	*ret = NULL;
	if (!args || !json_object_object_get_ex(args, key, &v) || json_object_is_type(v, json_type_null)) {
		if (required)
			return fail(err, "GenericError", "%s: missing argument '%s' (a string)", cmd, key);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return fail(err, "GenericError", "%s: argument '%s' must be a string, got %s", cmd, key,
			    json_type_to_name(json_object_get_type(v)));
	*ret = json_object_get_string(v);
	return 0;
}

/* A firmware version: a string, or a non-negative integer taken as its
 * decimal text (a git short hash can be all digits, and `luoinit ctl
 * update image=1053384` sends a number; the client sends only canonical
 * integers, so the text comes back exactly). buf holds that text. */
static int arg_version(const char *cmd, json_object *args, const char *key, bool required, char *buf,
		       size_t len, const char **ret, struct cmd_error *err)
{
	json_object *v;

	if (args && json_object_object_get_ex(args, key, &v) && json_object_is_type(v, json_type_int) &&
	    json_object_get_int64(v) >= 0) {
		snprintf(buf, len, "%lld", (long long)json_object_get_int64(v));
		*ret = buf;
		return 0;
	}
	return arg_string(cmd, args, key, required, ret, err);
}

static int arg_vm(const char *cmd, json_object *args, struct vm **ret, struct cmd_error *err)
{
	const char *name;
	int r = arg_string(cmd, args, "name", true, &name, err);

	if (r < 0)
		return r;
	*ret = sup_find_vm(name);
	if (!*ret)
		return fail(err, "DeviceNotFound", "%s: no VM named '%.64s'", cmd, name);
	/* vm-stop and vm-start run the loop while the guest powers down or
	 * QEMU comes up: only vm-log may touch that VM meanwhile. */
	if (vm_busy(*ret) && strcmp(cmd, "vm-log") != 0)
		return fail(err, "GenericError", "%s: %s is %s, try again", cmd, name, vm_busy(*ret));
	return 0;
}

static int cmd_status(json_object *args, json_object **ret, struct cmd_error *err)
{
	static const char *const keys[] = { NULL };

	if (check_keys("status", args, keys, err) < 0)
		return -EINVAL;
	*ret = sup_status_json();
	return 0;
}

static int cmd_vm_start(json_object *args, json_object **ret, struct cmd_error *err)
{
	static const char *const keys[] = { "name", NULL };
	char e[512];
	struct vm *vm;

	if (check_keys("vm-start", args, keys, err) < 0 || arg_vm("vm-start", args, &vm, err) < 0)
		return -EINVAL;
	if (vm_pid(vm))
		return fail(err, "GenericError", "vm-start: %s is already %s", vm_name(vm), vm_state_name(vm_state(vm)));
	if (vm_start_serving(vm, true, e, sizeof(e)) < 0)
		return fail(err, "GenericError", "vm-start: %s: %s", vm_name(vm), e);
	*ret = vm_status_json(vm);
	return 0;
}

static int arg_timeout(const char *cmd, json_object *args, int *ret, struct cmd_error *err)
{
	json_object *v;

	*ret = VM_STOP_TIMEOUT;
	if (!args || !json_object_object_get_ex(args, "timeout", &v))
		return 0;
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 || json_object_get_int64(v) > 600)
		return fail(err, "GenericError", "%s: 'timeout' must be an integer from 0 to 600 (seconds)", cmd);
	*ret = (int)json_object_get_int64(v) * 1000;
	return 0;
}

static int cmd_vm_stop(json_object *args, json_object **ret, struct cmd_error *err)
{
	static const char *const keys[] = { "name", "timeout", NULL };
	struct vm *vm;
	int t;

	if (check_keys("vm-stop", args, keys, err) < 0 || arg_vm("vm-stop", args, &vm, err) < 0 ||
	    arg_timeout("vm-stop", args, &t, err) < 0)
		return -EINVAL;
	if (vm_power_off(vm, t, true) < 0)
		return fail(err, "GenericError", "vm-stop: %s: QEMU could not be stopped", vm_name(vm));
	*ret = vm_status_json(vm);
	return 0;
}

static int cmd_vm_restart(json_object *args, json_object **ret, struct cmd_error *err)
{
	static const char *const keys[] = { "name", "timeout", NULL };
	char e[512];
	struct vm *vm;
	int t;

	if (check_keys("vm-restart", args, keys, err) < 0 || arg_vm("vm-restart", args, &vm, err) < 0 ||
	    arg_timeout("vm-restart", args, &t, err) < 0)
		return -EINVAL;
	if (vm_power_off(vm, t, true) < 0)
		return fail(err, "GenericError", "vm-restart: %s: QEMU could not be stopped", vm_name(vm));
	if (vm_start_serving(vm, false, e, sizeof(e)) < 0)
		return fail(err, "GenericError", "vm-restart: %s: %s", vm_name(vm), e);
	*ret = vm_status_json(vm);
	return 0;
}

static int cmd_vmm_update(json_object *args, json_object **ret, struct cmd_error *err)
{
	static const char *const keys[] = { "name", NULL };
	char e[512];
	struct vm *vm;

	if (check_keys("vmm-update", args, keys, err) < 0 || arg_vm("vmm-update", args, &vm, err) < 0)
		return -EINVAL;
	if (vm_vmm_update(vm, e, sizeof(e)) < 0)
		return fail(err, "GenericError", "vmm-update: %s: %s", vm_name(vm), e);
	*ret = vm_status_json(vm);
	return 0;
}

/* "bytes": how much of a log's tail (default: *ret as it is). */
static int arg_bytes(const char *cmd, json_object *args, int64_t *ret, struct cmd_error *err)
{
	json_object *v;

	if (!json_object_object_get_ex(args, "bytes", &v))
		return 0;
	if (!json_object_is_type(v, json_type_int) || (*ret = json_object_get_int64(v)) < 0 || *ret > LOG_MAX_BYTES)
		return fail(err, "GenericError", "%s: 'bytes' must be an integer from 0 to %d", cmd, LOG_MAX_BYTES);
	return 0;
}

static int cmd_vm_log(json_object *args, json_object **ret, struct cmd_error *err)
{
	static const char *const keys[] = { "name", "bytes", NULL };
	struct vm *vm;
	int64_t bytes = 4096;
	char *s;

	if (check_keys("vm-log", args, keys, err) < 0 || arg_vm("vm-log", args, &vm, err) < 0 ||
	    arg_bytes("vm-log", args, &bytes, err) < 0)
		return -EINVAL;
	s = vm_log_tail(vm, (size_t)bytes);
	if (!s)
		return fail(err, "GenericError", "vm-log: out of memory");
	*ret = json_object_new_object();
	json_object_object_add(*ret, "log", json_object_new_string(s));
	free(s);
	return 0;
}

/* The init's own log, from its file on /state: across reboots and kexecs. */
static int cmd_log(json_object *args, json_object **ret, struct cmd_error *err)
{
	static const char *const keys[] = { "bytes", NULL };
	int64_t bytes = 4096;
	size_t len;
	char *s;

	if (check_keys("log", args, keys, err) < 0 || arg_bytes("log", args, &bytes, err) < 0)
		return -EINVAL;
	if (!log_file_path()[0])
		return fail(err, "GenericError", "log: no log file (/state is not mounted)");
	s = logfile_tail(log_file_path(), LOG_FILE_KEEP, (size_t)bytes, &len);
	if (!s)
		return fail(err, "GenericError", "log: out of memory");
	logfile_utf8_sanitize(s, len);
	*ret = json_object_new_object();
	json_object_object_add(*ret, "path", json_object_new_string(log_file_path()));
	json_object_object_add(*ret, "log", json_object_new_string(s));
	free(s);
	return 0;
}

static int cmd_power(const char *cmd, enum sup_action a, json_object *args, json_object **ret,
		     struct cmd_error *err)
{
	static const char *const keys[] = { "timeout", NULL };
	int t;

	if (check_keys(cmd, args, keys, err) < 0 || arg_timeout(cmd, args, &t, err) < 0)
		return -EINVAL;
	if (!args || !json_object_object_get_ex(args, "timeout", NULL))
		t = SUP_SHUTDOWN_TIMEOUT;
	sup_request(a, t);
	*ret = json_object_new_object();
	return 0;
}

static int cmd_poweroff(json_object *args, json_object **ret, struct cmd_error *err)
{
	return cmd_power("poweroff", SUP_POWEROFF, args, ret, err);
}

static int cmd_reboot(json_object *args, json_object **ret, struct cmd_error *err)
{
	return cmd_power("reboot", SUP_REBOOT, args, ret, err);
}

static int cmd_update(json_object *args, json_object **ret, struct cmd_error *err)
{
	static const char *const keys[] = { "kernel", "initrd", "image", "cmdline", "mode", "fault", NULL };
	struct update_req req = { 0 };
	char e[512], imagebuf[24];

	if (check_keys("update", args, keys, err) < 0 ||
	    arg_string("update", args, "kernel", false, &req.kernel, err) < 0 ||
	    arg_string("update", args, "initrd", false, &req.initrd, err) < 0 ||
	    arg_version("update", args, "image", false, imagebuf, sizeof(imagebuf), &req.image, err) < 0 ||
	    arg_string("update", args, "cmdline", false, &req.cmdline, err) < 0 ||
	    arg_string("update", args, "mode", false, &req.mode, err) < 0 ||
	    arg_string("update", args, "fault", false, &req.fault, err) < 0)
		return -EINVAL;
	if (sup_update(&req, ret, e, sizeof(e)) < 0)
		return fail(err, "GenericError", "update: %s", e);
	return 0;
}

/* A test switch (luoinit.test_faults=1): PID 1 stops feeding the watchdog
 * (how=pid1, the default) or the kernel panics (how=panic) once this reply
 * is out; the watchdog must reset the machine. */
static int cmd_x_hang(json_object *args, json_object **ret, struct cmd_error *err)
{
	static const char *const keys[] = { "how", NULL };
	const char *how;
	char e[300];

	if (check_keys("x-hang", args, keys, err) < 0 || arg_string("x-hang", args, "how", false, &how, err) < 0)
		return -EINVAL;
	if (sup_test_hang(how, e, sizeof(e)) < 0)
		return fail(err, "GenericError", "x-hang: %s", e);
	*ret = json_object_new_object();
	return 0;
}

static int cmd_query_version(json_object *args, json_object **ret, struct cmd_error *err)
{
	static const char *const keys[] = { NULL };

	if (check_keys("query-version", args, keys, err) < 0)
		return -EINVAL;
	*ret = ctl_proto_version();
	return *ret ? 0 : fail(err, "GenericError", "query-version: out of memory");
}

/* A required non-negative integer up to max. */
static int arg_u64(const char *cmd, json_object *args, const char *key, uint64_t max, uint64_t *ret,
		   struct cmd_error *err)
{
	json_object *v;

	if (!args || !json_object_object_get_ex(args, key, &v) || json_object_is_type(v, json_type_null))
		return fail(err, "GenericError", "%s: missing argument '%s' (an integer)", cmd, key);
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
	    (uint64_t)json_object_get_int64(v) > max)
		return fail(err, "GenericError", "%s: '%s' must be an integer from 0 to %llu", cmd, key,
			    (unsigned long long)max);
	*ret = (uint64_t)json_object_get_int64(v);
	return 0;
}

/* Firmware delivery (update/fwpush.h): begin, one chunk per request, end. */
static int cmd_image_push_begin(json_object *args, json_object **ret, struct cmd_error *err)
{
	static const char *const keys[] = { "size", "sha256", "abi", NULL };
	const char *dir, *sha, *abi = NULL;
	uint64_t size = 0, handle = 0;
	char e[512];

	if (check_keys("image-push-begin", args, keys, err) < 0 ||
	    arg_u64("image-push-begin", args, "size", INT64_MAX, &size, err) < 0 ||
	    arg_string("image-push-begin", args, "sha256", true, &sha, err) < 0 ||
	    arg_string("image-push-begin", args, "abi", false, &abi, err) < 0)
		return -EINVAL;
	if (!(dir = sup_firmware_state_dir(e, sizeof(e))) ||
	    fwpush_begin(dir, ctl_server_current_client(), size, sha, &handle, e, sizeof(e)) < 0)
		return fail(err, "GenericError", "image-push-begin: %s", e);
	if (abi && fwpush_set_abi(ctl_server_current_client(), handle, abi, e, sizeof(e)) < 0) {
		char e2[64];
		(void)fwpush_abort(ctl_server_current_client(), handle, e2, sizeof(e2));
		return fail(err, "GenericError", "image-push-begin: %s", e);
	}
	*ret = json_object_new_object();
	json_object_object_add(*ret, "handle", json_object_new_int64((int64_t)handle));
	json_object_object_add(*ret, "chunk_max", json_object_new_int(FWPUSH_CHUNK_MAX));
	json_object_object_add(*ret, "idle_timeout", json_object_new_int(FWPUSH_IDLE_MS / 1000));
	return 0;
}

static int cmd_image_push_chunk(json_object *args, json_object **ret, struct cmd_error *err)
{
	static const char *const keys[] = { "handle", "offset", "data", NULL };
	uint64_t handle = 0, offset = 0, received = 0;
	const char *data;
	json_object *v;
	char e[512];

	if (check_keys("image-push-chunk", args, keys, err) < 0 ||
	    arg_u64("image-push-chunk", args, "handle", INT64_MAX, &handle, err) < 0 ||
	    arg_u64("image-push-chunk", args, "offset", INT64_MAX, &offset, err) < 0 ||
	    arg_string("image-push-chunk", args, "data", true, &data, err) < 0)
		return -EINVAL;
	(void)json_object_object_get_ex(args, "data", &v);
	if (fwpush_chunk(ctl_server_current_client(), handle, offset, data, (size_t)json_object_get_string_len(v),
			 &received, e, sizeof(e)) < 0)
		return fail(err, "GenericError", "image-push-chunk: %s", e);
	*ret = json_object_new_object();
	json_object_object_add(*ret, "received", json_object_new_int64((int64_t)received));
	return 0;
}

static int cmd_image_push_end(json_object *args, json_object **ret, struct cmd_error *err)
{
	static const char *const keys[] = { "handle", NULL };
	uint64_t handle = 0;
	char e[512];

	if (check_keys("image-push-end", args, keys, err) < 0 ||
	    arg_u64("image-push-end", args, "handle", INT64_MAX, &handle, err) < 0)
		return -EINVAL;
	if (fwpush_end(ctl_server_current_client(), handle, ret, e, sizeof(e)) < 0)
		return fail(err, "GenericError", "image-push-end: %s", e);
	return 0;
}

static int cmd_image_push_abort(json_object *args, json_object **ret, struct cmd_error *err)
{
	static const char *const keys[] = { "handle", NULL };
	uint64_t handle = 0;
	char e[512];

	if (check_keys("image-push-abort", args, keys, err) < 0 ||
	    arg_u64("image-push-abort", args, "handle", INT64_MAX, &handle, err) < 0)
		return -EINVAL;
	if (fwpush_abort(ctl_server_current_client(), handle, e, sizeof(e)) < 0)
		return fail(err, "GenericError", "image-push-abort: %s", e);
	*ret = json_object_new_object();
	return 0;
}

static int cmd_image_remove(json_object *args, json_object **ret, struct cmd_error *err)
{
	static const char *const keys[] = { "version", NULL };
	const char *dir, *version;
	char e[512], vbuf[24];

	if (check_keys("image-remove", args, keys, err) < 0 ||
	    arg_version("image-remove", args, "version", true, vbuf, sizeof(vbuf), &version, err) < 0)
		return -EINVAL;
	if (!(dir = sup_firmware_state_dir(e, sizeof(e))) || fwpush_remove(dir, version, ret, e, sizeof(e)) < 0)
		return fail(err, "GenericError", "image-remove: %s", e);
	return 0;
}

static int cmd_image_install(json_object *args, json_object **ret, struct cmd_error *err)
{
	static const char *const keys[] = { "version", NULL };
	const char *version;
	char e[512], vbuf[24];

	if (check_keys("image-install", args, keys, err) < 0 ||
	    arg_version("image-install", args, "version", true, vbuf, sizeof(vbuf), &version, err) < 0)
		return -EINVAL;
	if (sup_image_install(version, ret, e, sizeof(e)) < 0)
		return fail(err, "GenericError", "image-install: %s", e);
	return 0;
}

static int cmd_query_commands(json_object *args, json_object **ret, struct cmd_error *err);

static const struct {
	const char *name;
	int (*fn)(json_object *args, json_object **ret, struct cmd_error *err);
} commands[] = {
	{ "status", cmd_status },         { "vm-start", cmd_vm_start },
	{ "vm-stop", cmd_vm_stop },       { "vm-restart", cmd_vm_restart },
	{ "vmm-update", cmd_vmm_update }, { "vm-log", cmd_vm_log },
	{ "log", cmd_log },
	{ "poweroff", cmd_poweroff },     { "reboot", cmd_reboot },
	{ "update", cmd_update },         { "query-commands", cmd_query_commands },
	{ "query-version", cmd_query_version }, { "x-hang", cmd_x_hang },
	{ "image-push-begin", cmd_image_push_begin }, { "image-push-chunk", cmd_image_push_chunk },
	{ "image-push-end", cmd_image_push_end },     { "image-push-abort", cmd_image_push_abort },
	{ "image-remove", cmd_image_remove },         { "image-install", cmd_image_install },
};

/* QEMU's [{"name": ...}, ...]: the table, and qmp_capabilities, which the
 * session serves (ctl/session.c). */
static int cmd_query_commands(json_object *args, json_object **ret, struct cmd_error *err)
{
	static const char *const keys[] = { NULL };
	json_object *a, *o;

	if (check_keys("query-commands", args, keys, err) < 0)
		return -EINVAL;
	a = json_object_new_array();
	for (size_t i = 0; a && i <= sizeof(commands) / sizeof(commands[0]); i++) {
		const char *name = i ? commands[i - 1].name : "qmp_capabilities";

		o = json_object_new_object();
		if (!o || json_object_object_add(o, "name", json_object_new_string(name)) < 0 ||
		    json_object_array_add(a, o) < 0) {
			json_object_put(o);
			json_object_put(a);
			a = NULL;
		}
	}
	if (!a)
		return fail(err, "GenericError", "query-commands: out of memory");
	*ret = a;
	return 0;
}

int commands_execute(const char *name, json_object *args, json_object **ret, struct cmd_error *err)
{
	*ret = NULL;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(name, commands[i].name) == 0) {
			int r = commands[i].fn(args, ret, err);
			if (r < 0)
				log_info("command %s failed: %s", name, err->desc);
			return r;
		}
	/* QEMU's words, so that QMP clients recognise them (query-commands lists them all). */
	return fail(err, "CommandNotFound", "The command %.64s has not been found", name);
}
