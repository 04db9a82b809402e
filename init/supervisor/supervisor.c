/* The supervisor loop. Before the loop a failure may be fatal to the
 * supervisor (never to PID 1: it then serves status with the error); inside
 * the loop every error is logged and the loop goes on. */
#include "supervisor/sup.h"

#include <errno.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "net/net.h"
#include "pid1/bootparams.h"
#include "pid1/cmdline.h"
#include "pid1/log.h"
#include "pid1/loop.h"
#include "pid1/modules.h"
#include "pid1/watchdog.h"

static struct sup S = { .port_timer = -1, .fdset_probe = -ENOENT /* status: null until a probe ran */ };

void sup_ask(struct sup *s, enum sup_action a, int timeout_ms)
{
	/* A reboot asked during a pending poweroff stays a poweroff. */
	if (s->pending == SUP_NONE) {
		s->pending = a;
		s->pending_timeout = timeout_ms;
		s->host.shutdown_pending = a != SUP_NONE;
	}
}

void sup_request(enum sup_action a, int timeout_ms)
{
	sup_ask(&S, a, timeout_ms);
}

struct vm *sup_find_vm(const char *name)
{
	return vm_find(S.vms, S.n_vms, name);
}

struct json_object *sup_status_json(void)
{
	return sup_status(&S);
}

int sup_update(const struct update_req *req, struct json_object **ret, char *err, size_t errlen)
{
	return update_start(&S.update, req, ret, err, errlen);
}

const char *sup_firmware_state_dir(char *err, size_t errlen)
{
	if (S.o.pid1 && !S.o.state_mounted) {
		snprintf(err, errlen, "%s is not mounted: nowhere to keep firmware images", S.o.state_dir);
		return NULL;
	}
	return S.o.state_dir;
}

int sup_image_install(const char *version, struct json_object **ret, char *err, size_t errlen)
{
	return sup_assess_install(&S, version, ret, err, errlen);
}

int sup_test_hang(const char *how, char *err, size_t errlen)
{
	return sup_hang_ask(&S, how, err, errlen);
}

int sup_init(const struct sup_opts *o)
{
	int r;

	S.o = *o;
	if ((r = loop_init()) < 0 || (r = sup_signals_setup(&S)) < 0)
		return log_errno(LOG_ERR, r, "event loop");
	if (!o->pid1 && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_errno(LOG_WARN, errno, "PR_SET_CHILD_SUBREAPER");
	return 0;
}

static void set_update_error(const char *msg)
{
	snprintf(S.update_error, sizeof(S.update_error), "%s", msg);
}

/* After a kexec: the VMs of the manifest continue on their RAM, first
 * thing, since every millisecond here is blackout. */
static void resume_update(void)
{
	struct update_resume_result res;

	if (!S.o.pid1)
		return;
	update_resume(&S.update, S.o.early_manifest, &res);
	S.o.early_manifest = NULL;
	S.resume_manifest = res.manifest;
	/* A cold boot may find an old manifest on /state: no kexec then. */
	S.kexec_ms = bootparams_by_kexec() ? res.kexec_ms : 0;
	if (res.error[0])
		set_update_error(res.error);
}

/* The modules the restore did not need, now that the guests run (the
 * earlier ones again too: the status lists them all). */
static void load_later_modules(void)
{
	char **loaded = NULL, **failed = NULL;
	int r;

	if (!S.o.modules_later)
		return;
	r = modules_load(NULL, S.o.modules_later, S.o.n_modules_later, &loaded, &failed);
	S.o.modules_later = NULL;
	if (r < 0) {
		log_errno(LOG_ERR, r, "kernel modules");
		return;
	}
	log_info("modules: the rest loaded after the restore%s", r > 0 ? " (some could not be loaded)" : "");
	cmdline_list_free(S.o.modules_loaded);
	cmdline_list_free(S.o.modules_failed);
	S.o.modules_loaded = loaded;
	S.o.modules_failed = failed;
}

/* The others start side by side: vm_start does not wait for QEMU. */
static void start_vms(void)
{
	for (size_t i = 0; i < S.n_vms; i++) {
		struct vm *vm = S.vms[i];
		char err[512];
		if (!vm_pid(vm) && vm_state(vm) != VM_RUNNING && !vm_held(vm))
			(void)vm_start(vm, err, sizeof(err));
	}
}

/* The init's own log on /state too, from now until /state is released. */
static void open_log_file(void)
{
	char dir[600], path[700];

	if (S.o.pid1 && !S.o.state_mounted)
		return;
	snprintf(dir, sizeof(dir), "%s/log", S.o.state_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_errno(LOG_WARN, errno, "%s", dir);
		return;
	}
	snprintf(path, sizeof(path), "%s/luoinit.log", dir);
	if (log_file_open(path) == 0)
		log_info("log also kept in %s", path);
}

int sup_run(void)
{
	char err[512];
	int r;

	sup_port_start(&S);
	open_log_file();
	sup_config_load(&S);
	watchdog_feed(); /* until the loop runs, each step feeds it */
	/* Bridges before any QEMU, the restored ones included (their taps go
	 * on them). In --host mode only when asked for: it changes the
	 * network namespace it runs in. */
	if (S.conf && (S.o.pid1 || S.conf->has_network))
		(void)net_setup(S.conf);
	S.update = (struct update_ctx){
		.pid1 = S.o.pid1,
		.test_faults = S.o.test_faults,
		.state_dir = S.o.state_dir,
		.state_device = S.o.state_device,
		.state_mounted = S.o.state_mounted,
		.conf = S.conf,
		.vms = S.vms,
		.n_vms = S.n_vms,
		.host = &S.host,
		.boot_realtime_ms = S.o.boot_realtime_ms,
		.boot_tsc = S.o.boot_tsc,
	};
	resume_update();
	watchdog_feed();
	/* The power button after the restore: no guest waits for it. */
	sup_button_start(&S);
	load_later_modules();
	watchdog_feed();
	sup_probe_qemu(&S);
	watchdog_feed();
	start_vms();
	sup_assess_start(&S);
	for (;;) {
		r = loop_run_once(-1);
		if (r < 0) {
			log_errno(LOG_ERR, r, "event loop");
			(void)loop_run_once(100); /* never spin hot on a persistent error */
		}
		if (S.hang)
			sup_hang(&S);
		sup_assess(&S);
		if (update_run_pending(&S.update, err, sizeof(err)) < 0)
			set_update_error(err);
		if (S.pending != SUP_NONE) {
			if (sup_shutdown(&S, S.pending, S.pending_timeout) == 0)
				return 0;
			S.pending = SUP_NONE;
			S.host.shutdown_pending = false;
		}
	}
}
