/* The supervisor loop. Before the loop a failure may be fatal to the
 * supervisor (never to PID 1: it then serves status with the error); inside
 * the loop every error is logged and the loop goes on. */
#include "supervisor/supervisor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl/commands.h"
#include "ctl/server.h"
#include "pid1/event.h"
#include "pid1/log.h"
#include "pid1/loop.h"
#include "pid1/mounts.h"
#include "vm/probe.h"
#include "vm/qmp.h"
#include "update/update.h"

#define PORT_RETRY_MS    1000
#define PORT_RETRIES     30

static struct {
	struct sup_opts o;
	struct vmconf *conf;
	struct vmconf_errors errs;
	char config_error[512];
	struct vm *vms;
	size_t n_vms;
	enum sup_action pending;
	int pending_timeout;
	int port_timer, port_tries;
	char port_dev[300];
	int fdset_probe;     /* 1, 0, or negative errno */
	char update_error[512];
	double kexec_ms;     /* this boot's kexec, 0 on a cold boot */
} S;

const struct sup_opts *sup_opts(void) { return &S.o; }

void sup_request(enum sup_action a, int timeout_ms)
{
	/* A reboot asked during a pending poweroff stays a poweroff. */
	if (S.pending == SUP_NONE) {
		S.pending = a;
		S.pending_timeout = timeout_ms;
	}
}

bool sup_shutdown_pending(void) { return S.pending != SUP_NONE; }

struct vm *sup_vms(size_t *ret_n)
{
	*ret_n = S.n_vms;
	return S.vms;
}

const struct vmconf *sup_config(void) { return S.conf; }

void sup_set_kexec_ms(double ms) { S.kexec_ms = ms; }

void sup_set_update_error(const char *msg)
{
	snprintf(S.update_error, sizeof(S.update_error), "%s", msg);
}

struct vm *sup_find_vm(const char *name)
{
	for (size_t i = 0; i < S.n_vms; i++)
		if (strcmp(S.vms[i].conf->name, name) == 0)
			return &S.vms[i];
	return NULL;
}

static void reap(void)
{
	int st;
	pid_t pid;

	/* Every child, orphans included, before looking at the ones we know. */
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		size_t i;
		for (i = 0; i < S.n_vms; i++)
			if (vm_owns_pid(&S.vms[i], pid)) {
				vm_exited(&S.vms[i], st);
				break;
			}
		if (i == S.n_vms)
			log_debug("reaped pid %d", (int)pid);
	}
}

static void on_signal(int fd, uint32_t events, void *data)
{
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap();
			break;
		case SIGTERM:
		case SIGINT: /* Ctrl-Alt-Del when PID 1 */
			log_info("signal %d: %s", (int)si.ssi_signo, S.o.pid1 ? "reboot" : "stop the VMs and exit");
			sup_request(SUP_REBOOT, SUP_SHUTDOWN_TIMEOUT);
			break;
		case SIGUSR2:
			log_info("signal SIGUSR2: power off");
			sup_request(SUP_POWEROFF, SUP_SHUTDOWN_TIMEOUT);
			break;
		default:
			log_debug("signal %d ignored", (int)si.ssi_signo);
		}
	}
}

static int signals_setup(void)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	(void)signal(SIGPIPE, SIG_IGN);
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	return loop_add(fd, EPOLLIN, on_signal, NULL);
}

/* Without udev there is no /dev/virtio-ports/NAME: find the port by the
 * name the host gave it in sysfs. */
static int find_port(const char *name, char *dev, size_t len)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	struct dirent *e;
	int found = 0;

	if (!d)
		return 0;
	while (!found && (e = readdir(d))) {
		char path[300], buf[128];
		int fd;
		ssize_t n;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = 0;
		buf[strcspn(buf, "\n")] = 0;
		if (strcmp(buf, name) == 0) {
			snprintf(dev, len, "/dev/%s", e->d_name);
			found = 1;
		}
	}
	closedir(d);
	return found;
}

static void try_port(void)
{
	int r;

	if (!find_port(S.o.mgmt_name, S.port_dev, sizeof(S.port_dev))) {
		if (++S.port_tries == PORT_RETRIES) {
			log_info("no virtio-serial port named %s: control on the socket only", S.o.mgmt_name);
			loop_timer_del(S.port_timer);
			S.port_timer = -1;
		}
		return;
	}
	loop_timer_del(S.port_timer);
	S.port_timer = -1;
	r = ctl_server_add_port(S.port_dev, commands_execute);
	if (r < 0)
		log_errno(LOG_ERR, r, "management port %s (%s)", S.o.mgmt_name, S.port_dev);
	else
		log_info("control protocol on management port %s (%s)", S.o.mgmt_name, S.port_dev);
}

static void on_port_timer(int fd, uint32_t events, void *data)
{
	uint64_t n;

	(void)!read(fd, &n, sizeof(n));
	try_port();
}

static void load_config(void)
{
	int r = vmconf_parse_file(S.o.config_path, &S.conf, &S.errs);

	if (r < 0) {
		snprintf(S.config_error, sizeof(S.config_error), "%s: %zu error(s), no VM started",
			 S.o.config_path, S.errs.n);
		log_err("configuration %s refused:", S.o.config_path);
		for (size_t i = 0; i < S.errs.n; i++) {
			char *m = vmconf_error_format(&S.errs.v[i]);
			log_err("  %s", m ? m : "(no memory)");
			free(m);
		}
		return;
	}
	S.vms = calloc(S.conf->n_vms ? S.conf->n_vms : 1, sizeof(*S.vms));
	if (!S.vms) {
		snprintf(S.config_error, sizeof(S.config_error), "out of memory");
		return;
	}
	for (size_t i = 0; i < S.conf->n_vms; i++)
		if (vm_init(&S.vms[i], &S.conf->vms[i]) == 0)
			S.n_vms = i + 1;
	log_info("configuration %s: %zu VM(s)", S.o.config_path, S.n_vms);
}

static void probe_qemu(void)
{
	const char *qemu = NULL;
	bool any_auto = false;
	int r;

	for (size_t i = 0; i < S.n_vms; i++)
		if (S.vms[i].conf->ram_backing == VMCONF_RAM_AUTO) {
			qemu = S.vms[i].conf->qemu;
			any_auto = true;
		}
	if (!qemu && S.n_vms)
		qemu = S.vms[0].conf->qemu;
	if (!qemu)
		return;
	r = probe_sandbox(qemu);
	vm_env.sandbox = r == 1;
	log_info("%s %s -sandbox (seccomp)%s", qemu, vm_env.sandbox ? "supports" : "does not support",
		 vm_env.sandbox ? ": QEMU runs confined" : "");
	if (!any_auto)
		return;
	S.fdset_probe = probe_fdset(qemu);
	vm_env.fdset_ok = S.fdset_probe == 1;
	if (S.fdset_probe < 0)
		log_errno(LOG_WARN, S.fdset_probe, "fdset probe of %s", qemu);
	log_info("%s %s /dev/fdset for guest RAM: ram_backing auto means %s", qemu,
		 vm_env.fdset_ok ? "resolves" : "does not resolve", vm_env.fdset_ok ? "fdset" : "procfd");
}

static json_object *strv_json(char **v)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; v && v[i]; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

static void add_file_string(json_object *o, const char *key, const char *path)
{
	char buf[128] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (n > 0) {
		buf[n] = 0;
		buf[strcspn(buf, "\n")] = 0;
	}
	json_object_object_add(o, key, n > 0 ? json_object_new_string(buf) : NULL);
}

/* Our own open fds, so a soak can see that nothing leaks across updates. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* not the one opendir holds */
}

json_object *sup_status_json(void)
{
	json_object *o = json_object_new_object(), *vms = json_object_new_array(), *c, *st;
	struct utsname u;

	add_file_string(o, "boot_id", "/proc/sys/kernel/random/boot_id");
	json_object_object_add(o, "kernel", uname(&u) == 0 ? json_object_new_string(u.release) : NULL);
	json_object_object_add(o, "luo", json_object_new_boolean(access("/dev/liveupdate", F_OK) == 0));
	json_object_object_add(o, "pid1", json_object_new_boolean(getpid() == 1));
	json_object_object_add(o, "pid", json_object_new_int(getpid()));
	json_object_object_add(o, "mode", json_object_new_string(S.o.pid1 ? "init" : "host"));
	json_object_object_add(o, "modules_loaded", strv_json(S.o.modules_loaded));
	json_object_object_add(o, "modules_failed", strv_json(S.o.modules_failed));
	st = json_object_new_object();
	json_object_object_add(st, "spec", S.o.state_spec ? json_object_new_string(S.o.state_spec) : NULL);
	json_object_object_add(st, "device", S.o.state_device ? json_object_new_string(S.o.state_device) : NULL);
	json_object_object_add(st, "mounted", json_object_new_boolean(S.o.state_mounted));
	json_object_object_add(st, "path", json_object_new_string(S.o.state_dir));
	json_object_object_add(o, "state", st);
	c = json_object_new_object();
	json_object_object_add(c, "path", json_object_new_string(S.o.config_path));
	json_object_object_add(c, "ok", json_object_new_boolean(S.conf != NULL));
	{
		json_object *errs = json_object_new_array();
		for (size_t i = 0; i < S.errs.n; i++) {
			char *m = vmconf_error_format(&S.errs.v[i]);
			if (m)
				json_object_array_add(errs, json_object_new_string(m));
			free(m);
		}
		json_object_object_add(c, "errors", errs);
	}
	json_object_object_add(c, "error", S.config_error[0] ? json_object_new_string(S.config_error) : NULL);
	json_object_object_add(o, "config", c);
	json_object_object_add(o, "open_fds", json_object_new_int(count_fds()));
	json_object_object_add(o, "kexec_ms", S.kexec_ms > 0 ? json_object_new_double(S.kexec_ms) : NULL);
	json_object_object_add(o, "last_update_error",
			       S.update_error[0] ? json_object_new_string(S.update_error) : NULL);
	json_object_object_add(o, "sandbox", json_object_new_boolean(vm_env.sandbox));
	json_object_object_add(o, "fdset_probe", S.fdset_probe < 0 ? NULL : json_object_new_boolean(S.fdset_probe == 1));
	for (size_t i = 0; i < S.n_vms; i++)
		json_object_array_add(vms, vm_status_json(&S.vms[i]));
	json_object_object_add(o, "vms", vms);
	return o;
}

static void stop_all(int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	/* Ask every guest first, so they power down in parallel. */
	for (size_t i = 0; i < S.n_vms; i++) {
		S.vms[i].want_running = false;
		if (timeout_ms > 0)
			(void)vm_powerdown(&S.vms[i]);
	}
	for (size_t i = 0; i < S.n_vms; i++) {
		uint64_t now = now_ms();
		int left = now < deadline ? (int)(deadline - now) : 0;
		if (S.vms[i].pid > 0)
			log_info("%s: stopping", S.vms[i].conf->name);
		(void)vm_power_off(&S.vms[i], left, false);
	}
}

int sup_unmount_state(void)
{
	/* Nothing of ours may keep /state busy: the serial logs live there. */
	for (size_t i = 0; i < S.n_vms; i++)
		vm_log_close(&S.vms[i]);
	return mounts_sync_umount(S.o.state_dir); /* syncs first */
}

static int shutdown_now(enum sup_action a, int timeout_ms)
{
	log_info("%s: stopping %zu VM(s)", !S.o.pid1 ? "exit" : a == SUP_REBOOT ? "reboot" : "power off", S.n_vms);
	stop_all(timeout_ms);
	if (!S.o.pid1) {
		ctl_server_close();
		return 0;
	}
	(void)sup_unmount_state();
	log_info("%s now", a == SUP_REBOOT ? "rebooting" : "powering off");
	sync();
	if (reboot(a == SUP_REBOOT ? RB_AUTOBOOT : RB_POWER_OFF) < 0)
		log_errno(LOG_ERR, errno, "reboot() failed; still serving");
	return -1;
}

int sup_run(const struct sup_opts *o)
{
	int r;

	S.o = *o;
	S.port_timer = -1;
	S.fdset_probe = -ENOENT; /* status says null until a probe ran */
	if ((r = loop_init()) < 0 || (r = signals_setup()) < 0) {
		log_errno(LOG_ERR, r, "event loop");
		if (!o->pid1)
			return 1;
	}
	if (!o->pid1 && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_errno(LOG_WARN, errno, "PR_SET_CHILD_SUBREAPER");
	/* Events from the layers below reach the negotiated control clients. */
	event_set_sink(ctl_server_broadcast_event);
	r = ctl_server_listen(o->socket_path, commands_execute);
	if (r < 0) {
		log_errno(LOG_ERR, r, "control socket %s", o->socket_path);
		if (!o->pid1)
			return 1;
	} else {
		log_info("control socket %s", o->socket_path);
	}
	if (o->mgmt_name) {
		try_port();
		if (S.port_dev[0] == 0)
			S.port_timer = loop_timer_add(PORT_RETRY_MS, PORT_RETRY_MS, on_port_timer, NULL);
	}
	load_config();
	/* After a kexec: the VMs of the manifest continue on their RAM, first
	 * thing, since every millisecond here is blackout. The others start
	 * side by side: vm_start does not wait for QEMU. */
	if (o->pid1 && o->state_mounted)
		update_resume(o->state_dir);
	probe_qemu();
	for (size_t i = 0; i < S.n_vms; i++) {
		char err[512];
		if (S.vms[i].pid <= 0 && S.vms[i].state != VM_RUNNING && !S.vms[i].held)
			(void)vm_start(&S.vms[i], err, sizeof(err));
	}
	for (;;) {
		r = loop_run_once(-1);
		if (r < 0) {
			log_errno(LOG_ERR, r, "event loop");
			(void)loop_run_once(100); /* never spin hot on a persistent error */
		}
		update_run_pending();
		if (S.pending != SUP_NONE) {
			enum sup_action a = S.pending;
			if (shutdown_now(a, S.pending_timeout) == 0)
				return 0;
			S.pending = SUP_NONE;
		}
	}
}
