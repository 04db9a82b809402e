/* The VM lifecycle: start QEMU on a memfd, stop it, apply the restart policy. */
#include "vm/vm_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libgen.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pid1/event.h"
#include "pid1/log.h"
#include "pid1/loop.h"
#include "vm/qmp.h"
#include "vm/ram.h"
#include "vm/spawn.h"

#define VM_QMP_TIMEOUT 30000   /* QEMU to QMP greeting; ~1.3 s under nested TCG */
#define VM_BACKOFF_MIN 1000
#define VM_BACKOFF_MAX 30000
#define VM_STABLE_MS   30000   /* running this long resets the back-off */
/* QEMU's fd layout (vmconf argv CLI shows the same): */
#define VM_FD_QMP    3
#define VM_FD_SERIAL 4
#define VM_FD_RAM    5
#define VM_FD_NICS   6 /* then per NIC: its tap, and its vhost-net when it has one */
#define VM_RAM_FDSET 1

static int mkdir_parents(const char *path)
{
	char buf[4096];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

static struct vm *vm_alloc(const struct vmconf_vm *conf, const struct vm_host *host)
{
	struct vm *vm = calloc(1, sizeof(*vm));

	if (!vm)
		return NULL;
	vm->conf = vm->base_conf = conf;
	vm->host = host;
	vm_state_init(vm);
	vm->ram_fd = vm->serial_fd = vm->err_fd = vm->serial_log.fd = vm->restart_timer = -1;
	vm->start_timer = -1;
	vm->sandbox = -1;
	vm->accel = conf->accel;
	vm->ram_backing = conf->ram_backing;
	vm->backoff_ms = VM_BACKOFF_MIN;
	for (size_t i = 0; i < VMCONF_MAX_NICS; i++)
		net_nic_init(&vm->nics[i]);
	vm->ring = calloc(1, VM_RING_SIZE);
	if (!vm->ring) {
		free(vm);
		return NULL;
	}
	return vm;
}

struct vm *vm_new(const struct vmconf_vm *conf, const struct vm_host *host)
{
	struct vm *vm = vm_alloc(conf, host);

	if (vm)
		vm_log_open(vm);
	return vm;
}

struct vm *vm_new_early(const struct vmconf_vm *machine, const struct vm_host *host)
{
	return vm_alloc(machine, host);
}

void vm_adopt_config(struct vm *vm, const struct vmconf_vm *base_conf, const struct vm_host *host)
{
	vm->base_conf = base_conf;
	vm->host = host;
	vm_log_open(vm);
}

void vm_leave_early_machine(struct vm *vm)
{
	if (!vm->saved && vm->base_conf)
		vm->conf = vm->base_conf;
}

void vm_drop_early(struct vm *vm)
{
	vm_end(vm, 0);
	vm_set_ram(vm, -1);
	vm->want_running = false;
	vm_leave_early_machine(vm);
	vm_set_state(vm, VM_STOPPED, "not restored");
}

static void cancel_restart(struct vm *vm);

void vm_free(struct vm *vm)
{
	if (!vm)
		return;
	cancel_restart(vm);
	vm_end(vm, 0);
	vm_set_ram(vm, -1);
	vm_log_close(vm);
	for (size_t i = 0; i < VMCONF_MAX_NICS; i++)
		net_nic_close(&vm->nics[i]);
	vmconf_free(vm->saved);
	vmconf_free(vm->saved_conf);
	vmconf_strv_free(vm->config_pending);
	free(vm->ring);
	free(vm);
}

int vm_run_saved_machine(struct vm *vm, struct vmconf *saved, struct vmconf *as_configured)
{
	char **pending = NULL;
	int n = -EINVAL;

	if (saved && as_configured && saved->n_vms == 1 && as_configured->n_vms == 1 &&
	    strcmp(saved->vms[0].name, vm->base_conf->name) == 0)
		/* Config against config: the saved machine has its aliases resolved. */
		n = vmconf_vm_diff(&as_configured->vms[0], vm->base_conf, &pending);
	if (n < 0) {
		vmconf_free(saved);
		vmconf_free(as_configured);
		return n;
	}
	/* Kept for the next update's manifest, which records the config. */
	vmconf_free(vm->saved_conf);
	vm->saved_conf = as_configured;
	vmconf_free(vm->saved);
	vmconf_strv_free(vm->config_pending);
	vm->saved = saved;
	vm->config_pending = pending;
	vm->conf = &saved->vms[0];
	if (n > 0) {
		char list[512] = "";
		for (size_t i = 0, off = 0; pending[i] && off < sizeof(list); i++)
			off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "", pending[i]);
		log_info("%s: restored on the machine it was saved on; the configuration's changes (%s) apply "
			 "at its next cold start (vm-restart)", vm->conf->name, list);
	}
	return 0;
}

void vm_set_error(struct vm *vm, const char *msg)
{
	snprintf(vm->last_error, sizeof(vm->last_error), "%s", msg);
}

/* A cold start runs the configuration as it is now. */
static void drop_saved_machine(struct vm *vm)
{
	if (!vm->saved)
		return;
	if (vm->config_pending && vm->config_pending[0])
		log_info("%s: cold start: the configuration's changes apply now", vm->conf->name);
	vm->conf = vm->base_conf;
	/* Resolved values stay unless the configuration now names its own. */
	if (vm->base_conf->accel != VMCONF_ACCEL_AUTO)
		vm->accel = vm->base_conf->accel;
	if (vm->base_conf->ram_backing != VMCONF_RAM_AUTO)
		vm->ram_backing = vm->base_conf->ram_backing;
	vm->sandbox = -1;
	vmconf_free(vm->saved);
	vmconf_free(vm->saved_conf);
	vmconf_strv_free(vm->config_pending);
	vm->saved = vm->saved_conf = NULL;
	vm->config_pending = NULL;
}

const struct vmconf_vm *vm_conf_as_configured(const struct vm *vm)
{
	return vm->saved_conf ? &vm->saved_conf->vms[0] : vm->base_conf;
}

struct vm *vm_find(struct vm *const *vms, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(vms[i]->conf->name, name) == 0)
			return vms[i];
	return NULL;
}

const char *vm_name(const struct vm *vm) { return vm->conf->name; }
const struct vmconf_vm *vm_conf(const struct vm *vm) { return vm->conf; }
enum vm_state vm_state(const struct vm *vm) { return vm->state; }
pid_t vm_pid(const struct vm *vm) { return vm->pid > 0 ? vm->pid : 0; }
bool vm_wanted(const struct vm *vm) { return vm->want_running; }
bool vm_held(const struct vm *vm) { return vm->held; }
int vm_ram_fd(const struct vm *vm) { return vm->ram_fd; }
const char *vm_qemu_version(const struct vm *vm) { return vm->qemu_version; }
void vm_hold(struct vm *vm) { vm->held = true; }

const char *vm_busy(const struct vm *vm)
{
	return vm->stopping ? "being stopped" : vm->starting ? "being started" : NULL;
}

static bool sandboxed(const struct vm *vm)
{
	return vm->sandbox >= 0 ? vm->sandbox == 1 : vm->host->sandbox;
}

void vm_machine(const struct vm *vm, struct vm_machine *ret)
{
	ret->accel = vm->accel;
	ret->ram_backing = vm->ram_backing;
	ret->sandbox = sandboxed(vm);
}

void vm_set_ram(struct vm *vm, int fd)
{
	if (vm->ram_fd >= 0 && vm->ram_fd != fd)
		close(vm->ram_fd);
	vm->ram_fd = fd;
}

void vm_set_last_update(struct vm *vm, const struct vm_update_record *rec)
{
	vm->last_update = *rec;
}

void vm_log_open(struct vm *vm)
{
	const struct vmconf_vm *conf = vm->conf;
	int r;

	if (strcmp(conf->serial, "log") == 0 || vm->serial_log.fd >= 0)
		return;
	r = mkdir_parents(conf->serial);
	if (r < 0)
		log_errno(LOG_WARN, r, "%s: cannot create the folder of %s", conf->name, conf->serial);
	r = logfile_open(&vm->serial_log, conf->serial, VM_SERIAL_CAP, VM_SERIAL_KEEP);
	if (r < 0)
		log_errno(LOG_WARN, -r, "%s: serial log %s (serial output goes to the log)", conf->name,
			  conf->serial);
}

void vm_log_close(struct vm *vm)
{
	logfile_close(&vm->serial_log);
}

static void cancel_restart(struct vm *vm)
{
	loop_timer_del(vm->restart_timer);
	vm->restart_timer = -1;
}

void vm_end_ask(struct vm *vm)
{
	char e[128];

	if (vm->pid <= 0 || !vm->qmp)
		return;
	(void)qmp_command(vm->qmp, "quit", NULL, -1, 2000, NULL, e, sizeof(e));
	/* Nothing more to say to it: this also makes a second ask a no-op. */
	loop_del(qmp_fd(vm->qmp));
	qmp_free(vm->qmp);
	vm->qmp = NULL;
}

void vm_crash(struct vm *vm)
{
	if (vm->pid > 0 && kill(vm->pid, SIGKILL) < 0)
		log_errno(LOG_WARN, errno, "%s: kill QEMU pid %d", vm->conf->name, (int)vm->pid);
}

void vm_end(struct vm *vm, int grace_ms)
{
	/* Without QMP (still starting) there is nobody to ask: kill at once. */
	bool asked = grace_ms > 0 && vm->qmp;
	int r;

	if (asked)
		vm_end_ask(vm);
	if (vm->pid > 0) {
		r = spawn_wait_or_kill(vm->pid, asked ? grace_ms : 0, &vm->last_status);
		if (r < 0)
			log_errno(LOG_ERR, r, "%s: QEMU pid %d not reaped", vm->conf->name, (int)vm->pid);
		vm->pid = 0;
	}
	vm_close_streams(vm);
}

/* auto is resolved once, on the first start, and kept: a state saved under
 * one accelerator is never restored under the other. */
static enum vmconf_accel resolve_accel(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int ok = fd >= 0 && ioctl(fd, KVM_GET_API_VERSION, 0) == KVM_API_VERSION;

	if (fd >= 0)
		close(fd);
	return ok ? VMCONF_ACCEL_KVM : VMCONF_ACCEL_TCG;
}

/* QMP is up: note the version and watch QEMU's streams in the loop. */
static int qmp_up(struct vm *vm)
{
	int maj = 0, min = 0, mic = 0, r;

	qmp_version(vm->qmp, &maj, &min, &mic);
	snprintf(vm->qemu_version, sizeof(vm->qemu_version), "%d.%d.%d", maj, min, mic);
	if ((r = vm_watch(vm)) < 0)
		return r;
	/* Commands that wait for QEMU outside the loop read its stderr too. */
	if (vm->err_fd >= 0)
		qmp_set_side(vm->qmp, vm->err_fd, vm_read_stderr, vm);
	log_info("%s: QEMU %s started, pid %d, %u MiB RAM (%s), accel %s", vm->conf->name, vm->qemu_version,
		 (int)vm->pid, vm->conf->memory_mib, vmconf_ram_name(vm->ram_backing), vmconf_accel_name(vm->accel));
	return 0;
}

int vm_wait_qmp(struct vm *vm, char *err, size_t errlen)
{
	/* From the fork, not from this call: QEMUs forked together are waited
	 * for one after another, and n hung ones must not cost n times 30 s. */
	uint64_t deadline = vm->started_ms + VM_QMP_TIMEOUT;
	char e[160] = "";
	int r = 0;

	if (vm->qmp)
		return 0;
	if (!vm->greet) {
		snprintf(err, errlen, "no QEMU is starting");
		return -ESRCH;
	}
	while ((r = qmp_handshake(vm->greet, e, sizeof(e))) == 0) {
		struct pollfd p = { .fd = qmp_fd(vm->greet), .events = POLLIN };
		uint64_t now = now_ms();
		if (now >= deadline) {
			r = -ETIMEDOUT;
			snprintf(e, sizeof(e), "no answer within %d s", VM_QMP_TIMEOUT / 1000);
			break;
		}
		if (poll(&p, 1, (int)(deadline - now)) < 0 && errno != EINTR) {
			r = -errno;
			snprintf(e, sizeof(e), "poll: %s", strerror(errno));
			break;
		}
	}
	if (r == 1) {
		vm->qmp = vm->greet;
		vm->greet = NULL;
		if ((r = qmp_up(vm)) == 0)
			return 0;
		snprintf(e, sizeof(e), "event loop: %s", strerror(-r));
	} else {
		qmp_free(vm->greet);
		vm->greet = NULL;
	}
	snprintf(err, errlen, "QEMU did not answer on QMP: %s", e[0] ? e : strerror(-r));
	/* Let it finish saying why; one that exits is reaped here, so vm_end
	 * does not wait for a pid that is gone. */
	if (vm->pid > 0 && spawn_wait(vm->pid, 2000, &vm->last_status) == 0)
		vm->pid = 0;
	vm_stderr_snapshot(vm, err, errlen);
	vm_end(vm, 0);
	vm_set_state(vm, VM_FAILED, err);
	return r < 0 ? r : -EIO;
}

/* A start that did not reach QMP. status: QEMU's wait status when it is
 * already reaped (vm->pid is 0 then), -1 when it may still run. */
static void start_failed(struct vm *vm, int status, const char *why)
{
	char msg[sizeof(vm->last_error)], how[64];

	if (status != -1)
		snprintf(msg, sizeof(msg), "QEMU %s before answering on QMP",
			 spawn_status_str(status, how, sizeof(how)));
	else
		snprintf(msg, sizeof(msg), "%s", why ? why : "QEMU failed to start");
	vm_stderr_snapshot(vm, msg, sizeof(msg));
	snprintf(vm->last_error, sizeof(vm->last_error), "%s", msg);
	log_err("%s: %s", vm->conf->name, msg);
	vm_end(vm, 0);
	if (vm->policy_spawn) {
		vm_exited(vm, -1); /* a restart that failed: the policy goes on */
		return;
	}
	vm_set_state(vm, VM_FAILED, msg);
	vm->want_running = false;
}

/* QEMU's QMP socket is readable: one more step of the handshake. */
static void on_greeting(int fd, uint32_t events, void *data)
{
	struct vm *vm = data;
	char err[160] = "", msg[200];
	int r = qmp_handshake(vm->greet, err, sizeof(err));

	if (r == 0)
		return;
	loop_del(fd);
	if (r == -EPIPE)
		return; /* QEMU is exiting: the reaper reports how (vm_exited) */
	loop_timer_del(vm->start_timer);
	vm->start_timer = -1;
	if (r < 0) {
		snprintf(msg, sizeof(msg), "QEMU did not answer on QMP: %s", err[0] ? err : strerror(-r));
		start_failed(vm, -1, msg);
		return;
	}
	vm->qmp = vm->greet;
	vm->greet = NULL;
	if ((r = qmp_up(vm)) < 0) {
		snprintf(msg, sizeof(msg), "event loop: %s", strerror(-r));
		start_failed(vm, -1, msg);
		return;
	}
	vm_set_state(vm, VM_RUNNING, "QMP up");
	vm->started_ms = now_ms(); /* the back-off resets after VM_STABLE_MS of this */
}

static void on_start_timeout(int fd, uint32_t events, void *data)
{
	struct vm *vm = data;
	char err[96];

	/* The loop read the expiry (loop.h); a timer of an earlier start is not ours. */
	if (fd != vm->start_timer)
		return;
	snprintf(err, sizeof(err), "QEMU did not answer on QMP within %d s", VM_QMP_TIMEOUT / 1000);
	start_failed(vm, -1, err);
}

/* The host side of the VM's NICs for this QEMU: each tap (kept from the
 * last QEMU, created the first time, put on its bridge) and, under KVM, a
 * fresh vhost-net device. QEMU 10.0 runs vhost=on under TCG too (it
 * emulates the ioeventfds and injects the interrupts itself; tried on the
 * board), but there every kick and interrupt passes through QEMU anyway:
 * vhost only where KVM's ioeventfd/irqfd let the guest bypass QEMU. */
/* bridges: false before the bridges exist (the taps are attached later,
 * vm_nics_attach). */
static int nics_up(struct vm *vm, const struct vmconf_vm *c, bool bridges, int *vfd, char *err, size_t errlen)
{
	bool want_vhost = vm->accel == VMCONF_ACCEL_KVM;
	int r;

	for (size_t i = 0; i < VMCONF_MAX_NICS; i++) {
		vfd[i] = -1;
		vm->vhost[i] = false;
		if (i >= c->n_nics) {
			net_nic_close(&vm->nics[i]); /* a NIC the configuration no longer has */
			continue;
		}
		if ((r = net_nic_up(&vm->nics[i], c->name, i, bridges ? c->nics[i].bridge : NULL, err, errlen)) < 0)
			return r;
		if (!want_vhost)
			continue;
		vfd[i] = vhost_open();
		if (vfd[i] < 0)
			log_warn("%s: nics[%zu]: /dev/vhost-net: %s: QEMU moves its packets itself", c->name, i,
				 strerror(-vfd[i]));
		vm->vhost[i] = vfd[i] >= 0;
	}
	return 0;
}

void vm_nics_attach(struct vm *vm)
{
	char e[256];

	for (size_t i = 0; i < vm->conf->n_nics; i++)
		(void)net_nic_up(&vm->nics[i], vm->conf->name, i, vm->conf->nics[i].bridge, e, sizeof(e));
}

static void close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

/* VM_SERIAL_SNDBUF on QEMU's end of the serial socket: past the system's
 * limit where we may (root: SO_SNDBUFFORCE), else as far as it goes. */
static void serial_room(const struct vmconf_vm *c, int fd)
{
	int want = VM_SERIAL_SNDBUF;

	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) == 0)
		return;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want)) < 0)
		log_errno(LOG_WARN, errno, "%s: serial socket's buffer", c->name);
	else
		log_debug("%s: serial socket's buffer only as large as net.core.wmem_max allows", c->name);
}

int vm_spawn(struct vm *vm, bool keep_ram, enum vm_spawn_mode mode, char *err, size_t errlen)
{
	bool incoming = mode != VM_SPAWN_BOOT;
	const struct vmconf_vm *c;
	int qs[2] = { -1, -1 }, ss[2] = { -1, -1 }, ep[2] = { -1, -1 };
	struct vmconf_argv_opts o = { 0 };
	struct vmconf_argv_nic an[VMCONF_MAX_NICS];
	int vfd[VMCONF_MAX_NICS], fds[3 + 2 * VMCONF_MAX_NICS];
	size_t nfds = 3;
	char **argv = NULL;
	int r;

	err[0] = 0;
	for (size_t i = 0; i < VMCONF_MAX_NICS; i++)
		vfd[i] = -1;
	if (!incoming)
		drop_saved_machine(vm);
	c = vm->conf;
	if (vm->accel == VMCONF_ACCEL_AUTO) {
		vm->accel = resolve_accel();
		log_info("%s: accel auto resolved to %s", c->name, vmconf_accel_name(vm->accel));
	}
	if (vm->ram_backing == VMCONF_RAM_AUTO)
		vm->ram_backing = vm->host->fdset_ok ? VMCONF_RAM_FDSET : VMCONF_RAM_PROCFD;
	if (!keep_ram || vm->ram_fd < 0) {
		if (vm->ram_fd >= 0)
			close(vm->ram_fd);
		vm->ram_fd = ram_create(c->name, c->memory_mib);
		if (vm->ram_fd < 0) {
			r = vm->ram_fd;
			snprintf(err, errlen, "cannot create %u MiB of RAM: %s", c->memory_mib, strerror(-r));
			return r;
		}
	}
	/* A QEMU started early (preconfig) starts before the bridges exist. */
	if ((r = nics_up(vm, c, mode != VM_SPAWN_PRECONFIG, vfd, err, errlen)) < 0)
		goto fail;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qs) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, ss) < 0 ||
	    pipe2(ep, O_CLOEXEC | O_NONBLOCK) < 0) {
		r = -errno;
		snprintf(err, errlen, "socketpair/pipe: %s", strerror(errno));
		goto fail;
	}
	serial_room(c, ss[1]);
	/* The child's ends must block: QEMU does not expect nonblocking stdio. */
	(void)fcntl(ss[1], F_SETFL, 0);
	(void)fcntl(ep[1], F_SETFL, 0);

	o.ram_backing = vm->ram_backing;
	o.ram_fd = VM_FD_RAM;
	o.ram_fdset = VM_RAM_FDSET;
	o.accel = vm->accel;
	o.qmp_fd = VM_FD_QMP;
	o.serial_fd = VM_FD_SERIAL;
	o.incoming_defer = incoming;
	o.preconfig = mode == VM_SPAWN_PRECONFIG;
	/* Before /state is mounted its disks are not there: QEMU gets them
	 * once they are, by QMP (vm_exit_preconfig_begin). */
	o.disks_by_qmp = o.preconfig;
	o.sandbox = sandboxed(vm);
	fds[0] = qs[1];
	fds[1] = ss[1];
	fds[2] = vm->ram_fd;
	for (size_t i = 0; i < c->n_nics; i++) {
		an[i].tap_fd = VM_FD_NICS + (int)nfds - 3;
		fds[nfds++] = vm->nics[i].fd;
		an[i].vhost_fd = -1;
		if (vfd[i] >= 0) {
			an[i].vhost_fd = VM_FD_NICS + (int)nfds - 3;
			fds[nfds++] = vfd[i];
		}
	}
	o.nics = an;
	o.n_nics = c->n_nics;
	r = vmconf_build_argv(c, &o, &argv);
	if (r < 0) {
		snprintf(err, errlen, "cannot build QEMU's argv: %s", strerror(-r));
		goto fail;
	}
	{
		struct spawn_opts so = { .fds = fds, .n_fds = nfds, .stdout_fd = ep[1], .stderr_fd = ep[1],
					 .user = c->user, .new_session = 1 };
		r = spawn(argv, &so, &vm->pid);
	}
	vmconf_argv_free(argv);
	close_fds(vfd, VMCONF_MAX_NICS); /* QEMU's own now */
	close(qs[1]);
	close(ss[1]);
	close(ep[1]);
	qs[1] = ss[1] = ep[1] = -1;
	if (r < 0) {
		snprintf(err, errlen, "cannot start %s: %s", c->qemu, strerror(-r));
		goto fail;
	}
	vm->serial_fd = ss[0];
	vm->err_fd = ep[0];
	ss[0] = ep[0] = -1;
	vm->started_ms = now_ms();
	vm->qemu_version[0] = 0; /* this QEMU's, once it greets */
	if (!incoming) {
		vm_set_state(vm, VM_STARTING, "QEMU forked");
		r = qmp_connect(qs[0], &vm->greet);
		qs[0] = -1; /* qmp_connect owns it now, even on failure */
		if (r < 0 || (r = loop_add(qmp_fd(vm->greet), EPOLLIN, on_greeting, vm)) < 0 ||
		    (r = vm->start_timer = loop_timer_add(VM_QMP_TIMEOUT, 0, on_start_timeout, vm)) < 0) {
			snprintf(err, errlen, "event loop: %s", strerror(-r));
			goto fail_pid;
		}
		log_debug("%s: QEMU pid %d forked, waiting for its QMP greeting", c->name, (int)vm->pid);
		return 0;
	}
	/* Not waited for here: vm_wait_qmp, after every restore's QEMU is forked. */
	vm_set_state(vm, VM_RESTORING, "QEMU forked to restore");
	r = qmp_connect(qs[0], &vm->greet);
	qs[0] = -1; /* qmp_connect owns it now, even on failure */
	if (r < 0) {
		snprintf(err, errlen, "QMP: %s", strerror(-r));
		goto fail_pid;
	}
	return 0;

fail_pid:
	vm_end(vm, 0);
	vm_set_state(vm, VM_FAILED, err);
	return r;
fail:
	close_fds(vfd, VMCONF_MAX_NICS);
	for (int i = 0; i < 2; i++) {
		if (qs[i] >= 0) close(qs[i]);
		if (ss[i] >= 0) close(ss[i]);
		if (ep[i] >= 0) close(ep[i]);
	}
	vm_set_state(vm, VM_FAILED, err);
	return r;
}

int vm_start(struct vm *vm, char *err, size_t errlen)
{
	int r;

	cancel_restart(vm);
	vm->want_running = true;
	vm->held = false;
	vm->policy_spawn = false;
	r = vm_spawn(vm, false, VM_SPAWN_BOOT, err, errlen);
	if (r < 0) {
		snprintf(vm->last_error, sizeof(vm->last_error), "%s", err);
		log_err("%s: %s", vm->conf->name, err);
	}
	return r;
}

int vm_start_serving(struct vm *vm, bool reset_restarts, char *err, size_t errlen)
{
	pid_t pid;
	int r;

	if (reset_restarts)
		vm->restarts = 0;
	if ((r = vm_start(vm, err, errlen)) < 0)
		return r;
	pid = vm->pid;
	vm->starting = true;
	while (vm->greet && vm->pid == pid && !vm->host->shutdown_pending)
		(void)loop_run_once(200);
	vm->starting = false;
	if (vm->state == VM_RUNNING || vm->state == VM_STARTING)
		return 0; /* up, or still coming up while the appliance shuts down */
	snprintf(err, errlen, "%s", vm->last_error);
	return -EIO;
}

static void on_restart_timer(int fd, uint32_t events, void *data)
{
	struct vm *vm = data;
	char err[256];

	/* The loop read the expiry (loop.h); a timer cancelled meanwhile is not ours. */
	if (fd != vm->restart_timer)
		return;
	cancel_restart(vm);
	if (!vm->want_running || vm->pid > 0)
		return;
	vm->restarts++;
	vm->policy_spawn = true;
	log_info("%s: restarting QEMU (restart %u)", vm->conf->name, vm->restarts);
	event_vm_restarted(vm->conf->name, vm->restarts);
	if (vm_spawn(vm, false, VM_SPAWN_BOOT, err, sizeof(err)) < 0) {
		snprintf(vm->last_error, sizeof(vm->last_error), "%s", err);
		log_err("%s: restart failed: %s", vm->conf->name, err);
		vm_exited(vm, -1);
	}
}

bool vm_owns_pid(const struct vm *vm, pid_t pid)
{
	return vm->pid > 0 && vm->pid == pid;
}

static bool policy_restarts(const struct vm *vm, int status)
{
	bool clean = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;

	switch (vm->conf->restart) {
	case VMCONF_RESTART_ALWAYS: return true;
	case VMCONF_RESTART_NEVER: return false;
	default: return !clean;
	}
}

static void reaped_stop(struct vm *vm, int status);

void vm_exited(struct vm *vm, int status)
{
	char how[64] = "failed to start";

	if (vm->stopping && status != -1) {
		/* A vm-stop is waiting for exactly this: not a failure. */
		reaped_stop(vm, status);
		return;
	}
	if (vm->greet && status != -1) {
		vm->pid = 0; /* reaped */
		start_failed(vm, status, NULL);
		return;
	}

	if (status != -1) {
		spawn_status_str(status, how, sizeof(how));
		log_warn("%s: QEMU (pid %d) %s", vm->conf->name, (int)vm->pid, how);
		snprintf(vm->last_error, sizeof(vm->last_error), "QEMU %s", how);
	}
	vm->pid = 0;
	vm->last_status = status;
	vm_close_streams(vm);
	if (!vm->want_running || !policy_restarts(vm, status)) {
		bool clean = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
		vm_set_state(vm, clean ? VM_STOPPED : VM_FAILED, clean ? "QEMU exited" : how);
		vm->want_running = false;
		return;
	}
	if (now_ms() - vm->started_ms >= VM_STABLE_MS)
		vm->backoff_ms = VM_BACKOFF_MIN;
	vm_set_state(vm, VM_STARTING, "restart policy");
	vm->restart_timer = loop_timer_add(vm->backoff_ms, 0, on_restart_timer, vm);
	if (vm->restart_timer < 0) {
		log_errno(LOG_ERR, vm->restart_timer, "%s: cannot arm the restart timer", vm->conf->name);
		vm_set_state(vm, VM_FAILED, "no restart timer");
		return;
	}
	log_info("%s: restart in %u ms (policy %s)", vm->conf->name, vm->backoff_ms,
		 vmconf_restart_name(vm->conf->restart));
	vm->backoff_ms = vm->backoff_ms * 2 > VM_BACKOFF_MAX ? VM_BACKOFF_MAX : vm->backoff_ms * 2;
}

/* Reap pid and finish the exit without the restart policy. */
static void reaped_stop(struct vm *vm, int status)
{
	char how[64];

	log_info("%s: QEMU (pid %d) %s", vm->conf->name, (int)vm->pid, spawn_status_str(status, how, sizeof(how)));
	vm->pid = 0;
	vm_close_streams(vm);
	vm_set_state(vm, VM_STOPPED, "stopped");
}

/* Run the loop until the reaper has seen pid go (0), timeout_ms passed
 * (-ETIMEDOUT) or a shutdown is pending (-ECANCELED: it takes over). */
static int wait_exit_serving(struct vm *vm, pid_t pid, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	while (vm->pid == pid) {
		uint64_t now = now_ms();
		if (vm->host->shutdown_pending)
			return -ECANCELED;
		if (now >= deadline)
			return -ETIMEDOUT;
		(void)loop_run_once((int)(deadline - now < 200 ? deadline - now : 200));
	}
	return 0;
}

/* Press the guest's power button (QMP system_powerdown). */
static int powerdown(struct vm *vm)
{
	char e[128];

	if (vm->pid <= 0 || !vm->qmp)
		return -ESRCH;
	return qmp_command(vm->qmp, "system_powerdown", NULL, -1, 2000, NULL, e, sizeof(e));
}

void vm_power_off_ask(struct vm *vm, bool press_button)
{
	vm->want_running = false;
	cancel_restart(vm);
	if (press_button)
		(void)powerdown(vm);
}

static int stop(struct vm *vm, int timeout_ms, bool serve);

int vm_power_off(struct vm *vm, int timeout_ms, bool serve)
{
	int r;

	if (!serve)
		return stop(vm, timeout_ms, false);
	if (vm->stopping)
		return -EBUSY;
	vm->stopping = true;
	r = stop(vm, timeout_ms, true);
	vm->stopping = false;
	return r;
}

static int stop(struct vm *vm, int timeout_ms, bool serve)
{
	int st, r;

	vm_power_off_ask(vm, false);
	if (vm->pid <= 0) {
		vm_set_state(vm, VM_STOPPED, "stopped");
		return 0;
	}
	/* The shutdown path (!serve) pressed every guest's button already. */
	if (timeout_ms > 0 && vm->qmp && (!serve || powerdown(vm) == 0)) {
		if (serve) {
			r = wait_exit_serving(vm, vm->pid, timeout_ms);
			if (r == 0)
				return 0;
			if (r == -ECANCELED) {
				log_info("%s: a shutdown is pending: it stops this VM", vm->conf->name);
				return 0;
			}
		} else if (spawn_wait(vm->pid, timeout_ms, &st) == 0) {
			reaped_stop(vm, st);
			return 0;
		}
		log_info("%s: guest did not power down within %d ms, quitting QEMU", vm->conf->name, timeout_ms);
	}
	vm_end(vm, 3000);
	vm_set_state(vm, VM_STOPPED, "stopped");
	return 0;
}

/* KiB of QEMU's mappings backed by 2 MiB pages of shmem (the guest RAM
 * memfd), from /proc/PID/smaps_rollup; -1 when unknown. */
static long long ram_huge_kib(pid_t pid)
{
	char path[64], line[128];
	long long kib = -1;
	FILE *f;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	if (!(f = fopen(path, "re")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "ShmemPmdMapped: %lld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

struct json_object *vm_status_json(const struct vm *vm)
{
	json_object *o = json_object_new_object(), *u;
	const struct vm_update_record *lu = &vm->last_update;

	json_object_object_add(o, "name", json_object_new_string(vm->conf->name));
	json_object_object_add(o, "state", json_object_new_string(vm_state_name(vm->state)));
	json_object_object_add(o, "pid", vm->pid > 0 ? json_object_new_int(vm->pid) : NULL);
	json_object_object_add(o, "ram_backing", json_object_new_string(vmconf_ram_name(vm->ram_backing)));
	json_object_object_add(o, "accel", json_object_new_string(vmconf_accel_name(vm->accel)));
	json_object_object_add(o, "memory_mib", json_object_new_int64(vm->conf->memory_mib));
	json_object_object_add(o, "restarts", json_object_new_int((int)vm->restarts));
	json_object_object_add(o, "restart", json_object_new_string(vmconf_restart_name(vm->conf->restart)));
	json_object_object_add(o, "qemu_version", vm->qemu_version[0] ? json_object_new_string(vm->qemu_version) : NULL);
	json_object_object_add(o, "last_error", vm->last_error[0] ? json_object_new_string(vm->last_error) : NULL);
	{
		/* Configuration changes waiting for the guest's next cold start. */
		json_object *p = json_object_new_array();
		for (size_t i = 0; vm->config_pending && vm->config_pending[i]; i++)
			json_object_array_add(p, json_object_new_string(vm->config_pending[i]));
		json_object_object_add(o, "config_pending", p);
	}
	{
		/* How much of the guest's RAM its QEMU maps in 2 MiB pages. */
		long long k = ram_huge_kib(vm->pid);
		json_object_object_add(o, "ram_huge_kib", k >= 0 ? json_object_new_int64(k) : NULL);
	}
	{
		/* What its QEMU runs with (the saved machine after a restore). */
		json_object *m = json_object_new_object(), *d = json_object_new_array();
		json_object_object_add(m, "machine", json_object_new_string(vm->conf->machine));
		json_object_object_add(m, "cpu", json_object_new_string(vm->conf->cpu));
		json_object_object_add(m, "vcpus", json_object_new_int((int)vm->conf->vcpus));
		for (size_t i = 0; i < vm->conf->n_disks; i++)
			json_object_array_add(d, json_object_new_string(vm->conf->disks[i].path));
		json_object_object_add(m, "disks", d);
		json_object_object_add(m, "user", vm->conf->user ? json_object_new_string(vm->conf->user) : NULL);
		json_object_object_add(o, "machine", m);
	}
	{
		/* Its NICs as this QEMU has them: the tap on the host, the guest's MAC. */
		json_object *a = json_object_new_array();
		for (size_t i = 0; i < vm->conf->n_nics; i++) {
			const struct vmconf_nic *n = &vm->conf->nics[i];
			const struct net_nic *x = &vm->nics[i];
			json_object *e = json_object_new_object();
			json_object_object_add(e, "tap", x->tap[0] ? json_object_new_string(x->tap) : NULL);
			json_object_object_add(e, "mac", json_object_new_string(n->mac));
			json_object_object_add(e, "bridge", json_object_new_string(n->bridge));
			json_object_object_add(e, "model", json_object_new_string(n->model));
			json_object_object_add(e, "vhost", json_object_new_boolean(vm->pid > 0 && vm->vhost[i]));
			json_object_object_add(e, "error", x->error[0] ? json_object_new_string(x->error) : NULL);
			json_object_array_add(a, e);
		}
		json_object_object_add(o, "nics", a);
	}
	if (!lu->valid) {
		json_object_object_add(o, "last_update", NULL);
		return o;
	}
	u = json_object_new_object();
	json_object_object_add(u, "kind", json_object_new_string(lu->kind));
	json_object_object_add(u, "mode", json_object_new_string(lu->mode));
	json_object_object_add(u, "blackout_ms", json_object_new_double(lu->blackout_ms));
	{
		json_object *p = json_object_new_object();
		json_object_object_add(p, "save_ms", json_object_new_double(lu->save_ms));
		json_object_object_add(p, "kexec_ms", json_object_new_double(lu->kexec_ms));
		json_object_object_add(p, "qemu_start_ms", json_object_new_double(lu->qemu_start_ms));
		json_object_object_add(p, "restore_ms", json_object_new_double(lu->restore_ms));
		json_object_object_add(p, "resume_ms", json_object_new_double(lu->resume_ms));
		json_object_object_add(u, "phases", p);
	}
	json_object_object_add(u, "vmstate_bytes", json_object_new_int64(lu->vmstate_bytes));
	json_object_object_add(u, "ram_transferred", json_object_new_int64(lu->ram_transferred));
	json_object_object_add(u, "stopped_at_ms", json_object_new_double(lu->stopped_at));
	json_object_object_add(o, "last_update", u);
	return o;
}
