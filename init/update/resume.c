/* After a kexec: the new init restores the VMs the manifest lists, each on
 * the RAM it was saved with. A VM whose RAM or state cannot be had (cold
 * boot, failed retrieve, size mismatch, corrupt manifest) starts fresh and
 * its state is set aside in stale/, never deleted. In order:
 *   read the manifest, time the kexec, hold what the operator had stopped,
 *   retrieve and spawn every QEMU, restore each, record and clean up. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pid1/event.h"
#include "pid1/log.h"
#include "pid1/loop.h"
#include "pid1/watchdog.h"
#include "update/fault.h"
#include "update/handoff.h"
#include "update/luo.h"
#include "update/update.h"
#include "vm/ram.h"
#include "vm/vm.h"

struct rvm {                    /* one VM of the manifest */
	struct vm *vm;
	struct handoff_vm *m;       /* its saved config moves to the VM */
	int session, state_fd;
	bool ok;
	bool preconfig;             /* its QEMU started before /state, waits to create the machine */
	bool begun;                 /* its migrate-incoming is under way */
	double t_spawn, t_started;
	char why[256];
};

struct resume {
	const struct update_ctx *c;
	struct handoff *h;
	struct rvm *rv;
	size_t n;
	bool luo;
	int devfd;
	double kexec_ms;
	char dir[512];
	char stale[1024];           /* why something was set aside (the last reason) */
};

/* QEMUs started before /state (update_prespawn), until update_resume
 * takes them over. */
struct early {
	const struct handoff_vm *m;
	struct vm *vm;
	struct vmconf *mach;        /* the saved machine it runs, until the VM owns it */
	int session, state_fd;
	bool spawned;               /* its QEMU runs (else update_resume starts one) */
	bool taken;                 /* the configuration's VM now */
	double t_spawn;
	char why[256];              /* why its RAM or state could not be had: it is not restored */
};
static struct early E[HANDOFF_MAX_VMS];
static size_t n_early;
static struct vm_host early_host;

static enum vmconf_accel accel_from(const char *s)
{
	return strcmp(s, "kvm") == 0 ? VMCONF_ACCEL_KVM : VMCONF_ACCEL_TCG;
}

static enum vmconf_ram ram_from(const char *s)
{
	return strcmp(s, "fdset") == 0 ? VMCONF_RAM_FDSET : VMCONF_RAM_PROCFD;
}

/* Sessions nobody will retrieve hold their memory until the next update:
 * FINISH those of our VMs to free it. */
static int release_sessions(const struct update_ctx *c, int devfd)
{
	int n = 0;

	for (size_t i = 0; devfd >= 0 && i < c->n_vms; i++) {
		char sname[64];
		int sfd;
		snprintf(sname, sizeof(sname), "%s%s", handoff_session_prefix(), vm_name(c->vms[i]));
		sfd = luo_retrieve_session(devfd, sname);
		if (sfd < 0)
			continue;
		if (luo_finish(sfd) == 0)
			log_info("update: released the unused LUO session %s", sname);
		close(sfd);
		n++;
	}
	return n;
}

/* A manifest that cannot be read: every VM starts fresh. */
static void refuse_manifest(struct resume *R, const char *err)
{
	log_err("update: manifest refused (%s): every VM starts fresh, the manifest goes to %s/stale/", err, R->dir);
	snprintf(R->stale, sizeof(R->stale), "corrupt manifest: %s", err);
	(void)handoff_set_aside(R->dir, NULL, R->stale);
	R->devfd = luo_open();
	(void)release_sessions(R->c, R->devfd);
}

/* The clocks of the two kernels are compared through the TSC: the new
 * kernel's CLOCK_REALTIME comes from a one-second RTC. Phases inside one
 * init use its own clock. */
static void time_kexec(struct resume *R)
{
	const struct handoff *h = R->h;

	if (h->kexec_tsc && R->c->boot_tsc > h->kexec_tsc && h->tsc_hz > 0)
		R->kexec_ms = (double)(R->c->boot_tsc - h->kexec_tsc) * 1000.0 / h->tsc_hz;
	else
		R->kexec_ms = R->c->boot_realtime_ms - h->kexec_at;
	log_info("update: %.1f ms from reboot() in the old kernel to this init", R->kexec_ms);
	event_update_phase("kexec", NULL, R->kexec_ms);
	log_info("update: manifest generation %016" PRIx64 ", mode %s, %zu VM(s), from kernel %s", h->generation,
		 h->mode, h->n_vms, h->old_kernel);
}

static void hold_stopped(struct resume *R)
{
	for (size_t i = 0; i < R->h->n_held; i++) {
		struct vm *vm = vm_find(R->c->vms, R->c->n_vms, R->h->held[i]);
		if (vm) {
			vm_hold(vm);
			log_info("update: %s was stopped before the update: it stays stopped", R->h->held[i]);
		}
	}
}

static void open_luo(struct resume *R)
{
	if (!R->luo)
		return;
	R->devfd = luo_open();
	if (R->devfd < 0) {
		snprintf(R->stale, sizeof(R->stale), "%s: %s (cold boot or LUO off): the saved states cannot be used",
			 LUO_DEVICE, strerror(-R->devfd));
		log_err("update: %s", R->stale);
	}
}

/* The VM's session, RAM (now vm's) and state; why says what failed. */
static int retrieve_into(int devfd, const struct handoff *h, const struct handoff_vm *m, struct vm *vm,
			 int *ret_session, int *ret_state, char *why, size_t wlen)
{
	char sname[64];
	int64_t sz;
	int fd;

	snprintf(sname, sizeof(sname), "%s%s", handoff_session_prefix(), m->name);
	*ret_session = luo_retrieve_session(devfd, sname);
	if (*ret_session < 0) {
		snprintf(why, wlen, "LUO session %s: %s", sname, strerror(-*ret_session));
		return *ret_session;
	}
	fd = luo_retrieve_fd(*ret_session, handoff_ram_token(h));
	if (fd < 0) {
		snprintf(why, wlen, "RETRIEVE_FD of the RAM (generation %016" PRIx64 "): %s", h->generation,
			 strerror(-fd));
		return fd;
	}
	vm_set_ram(vm, fd);
	if ((sz = ram_size(fd)) != m->ram_size) {
		snprintf(why, wlen, "RAM is %lld bytes, the manifest says %lld", (long long)sz, (long long)m->ram_size);
		return -EINVAL;
	}
	*ret_state = luo_retrieve_fd(*ret_session, handoff_state_token(h));
	if (*ret_state < 0) {
		snprintf(why, wlen, "RETRIEVE_FD of the state: %s", strerror(-*ret_state));
		return *ret_state;
	}
	if ((sz = ram_size(*ret_state)) != m->vmstate_bytes) {
		snprintf(why, wlen, "state is %lld bytes, the manifest says %lld", (long long)sz,
			 (long long)m->vmstate_bytes);
		return -EINVAL;
	}
	return 0;
}

static int retrieve(struct resume *R, struct rvm *x)
{
	return retrieve_into(R->devfd, R->h, x->m, x->vm, &x->session, &x->state_fd, x->why, sizeof(x->why));
}

/* Its RAM and state are of no use: no QEMU, no RAM, stopped (the boot
 * starts it fresh). */
static void give_up(struct rvm *x)
{
	if (x->session >= 0) {
		/* Frees whatever the session still holds. */
		(void)luo_finish(x->session);
	}
	vm_end(x->vm, 0);
	vm_set_ram(x->vm, -1);
	vm_set_state(x->vm, VM_STOPPED, x->why[0] ? x->why : "not restored");
	{
		char e[320];
		snprintf(e, sizeof(e), "not restored after the update (its state is in stale/): %s", x->why);
		vm_set_error(x->vm, e);
	}
	x->ok = false;
}

/* The RAM and state of one VM: retrieved from LUO, or the state file. */
static bool get_state(struct resume *R, struct rvm *x)
{
	const struct vmconf_vm *conf = vm_conf(x->vm);

	/* A version 1 manifest has no saved machine: the configuration must
	 * still describe the guest's RAM. */
	if (!x->m->saved && conf->memory_mib != x->m->memory_mib) {
		snprintf(x->why, sizeof(x->why), "memory_mib changed from %u to %u", x->m->memory_mib, conf->memory_mib);
		return false;
	}
	if (R->luo) {
		if (R->devfd < 0) {
			snprintf(x->why, sizeof(x->why), "no LUO");
			return false;
		}
		return retrieve(R, x) == 0;
	}
	x->state_fd = open(x->m->vmstate_file, O_RDONLY | O_CLOEXEC);
	if (x->state_fd < 0) {
		snprintf(x->why, sizeof(x->why), "%s: %s", x->m->vmstate_file, strerror(errno));
		return false;
	}
	return true;
}

/* The machine the guest was saved on (version 2 manifests): its disks must
 * be the files they were; the VM runs on it until its next cold start. */
static bool run_saved_machine(struct rvm *x, struct vmconf *mach)
{
	int r;

	if (!x->m->saved) {
		vmconf_free(mach);
		return true;
	}
	if (!mach && handoff_vm_machine(x->m, &mach, x->why, sizeof(x->why)) < 0)
		return false;
	/* The manifest's copy of the config goes with the VM (no copy made). */
	r = vm_run_saved_machine(x->vm, mach, x->m->saved);
	x->m->saved = NULL;
	if (r < 0) {
		snprintf(x->why, sizeof(x->why), "the saved machine: %s", strerror(-r));
		return false;
	}
	return true;
}

/* A session of the manifest nobody restores: FINISH frees its RAM. */
static void release_session(struct resume *R, const char *name)
{
	char sname[64];
	int sfd;

	if (!R->luo || R->devfd < 0)
		return;
	snprintf(sname, sizeof(sname), "%s%s", handoff_session_prefix(), name);
	sfd = luo_retrieve_session(R->devfd, sname);
	if (sfd < 0) {
		log_errno(LOG_WARN, sfd, "update: LUO session %s", sname);
		return;
	}
	if (luo_finish(sfd) == 0)
		log_info("update: released the LUO session %s and the RAM it held", sname);
	close(sfd);
}

/* Can its QEMU start before /state is mounted? Before its machine is
 * created (x-exit-preconfig) QEMU opens its extra arguments' files and
 * itself; the kernel, initrd and disks (blockdev-add) come after. */
static bool early_ok(const struct vmconf_vm *v, const char *state_dir, char *why, size_t wlen)
{
	size_t n = strlen(state_dir);

	if (v->n_qemu_args)
		snprintf(why, wlen, "it has qemu_args");
	else if ((strncmp(v->qemu, state_dir, n) == 0 && v->qemu[n] == '/') || access(v->qemu, X_OK) < 0)
		snprintf(why, wlen, "%s is not there yet", v->qemu);
	else
		return true;
	return false;
}

/* The manifest's test fault, when this kernel's command line allows it. */
static const struct fault *carried_fault(const struct handoff *h, bool test_faults)
{
	const struct fault *f;
	char err[256];

	if (!h->test_fault[0])
		return NULL;
	if (!test_faults) {
		log_warn("update: the manifest asks for test fault '%s': ignored, luoinit.test_faults is off here",
			 h->test_fault);
		return NULL;
	}
	if (!(f = fault_find(h->test_fault, err, sizeof(err))))
		log_warn("update: the manifest's test fault: %s", err);
	return f;
}

void update_prespawn(const struct handoff *h, const char *state_dir, bool test_faults)
{
	const struct fault *fault;
	int devfd;

	if (strcmp(h->mode, "luo") != 0 || (devfd = luo_open()) < 0)
		return; /* update_resume says why */
	fault = carried_fault(h, test_faults);
	early_host.sandbox = h->sandbox != 0;
	for (size_t i = 0; i < h->n_vms; i++) {
		const struct handoff_vm *m = &h->vms[i];
		struct vm_machine mach = { accel_from(m->accel), ram_from(m->ram_backing), h->sandbox != 0 };
		struct early *e = &E[n_early];
		char why[256] = "", err[256];

		if (!m->saved)
			continue; /* a version 1 manifest: the configuration must say what the machine was */
		memset(e, 0, sizeof(*e));
		e->m = m;
		e->session = e->state_fd = -1;
		if (handoff_vm_machine_early(m, &e->mach, why, sizeof(why)) < 0 ||
		    !early_ok(&e->mach->vms[0], state_dir, why, sizeof(why))) {
			log_info("%s: QEMU starts once %s is mounted (%s)", m->name, state_dir, why);
			vmconf_free(e->mach);
			continue;
		}
		if (!(e->vm = vm_new_early(&e->mach->vms[0], &early_host))) {
			vmconf_free(e->mach);
			continue;
		}
		n_early++;
		/* A failed retrieve is final: the VM is not restored (update_resume). */
		if (retrieve_into(devfd, h, m, e->vm, &e->session, &e->state_fd, e->why, sizeof(e->why)) < 0)
			continue;
		e->t_spawn = realtime_ms();
		if (vm_spawn_restore(e->vm, &mach, true, true, err, sizeof(err)) < 0) {
			log_warn("%s: QEMU did not start before %s (%s): again once it is mounted", m->name, state_dir,
				 err);
			continue;
		}
		e->spawned = true;
		log_info("%s: RAM and state retrieved, QEMU started before %s is mounted (its machine waits)",
			 m->name, state_dir);
		(void)fault_inject(fault, FAULT_AT_EARLY_QEMU, e->vm);
	}
	close(devfd);
}

struct vm *update_take_prespawned(const char *name)
{
	for (size_t i = 0; i < n_early; i++)
		if (!E[i].taken && strcmp(E[i].m->name, name) == 0) {
			E[i].taken = true;
			return E[i].vm;
		}
	return NULL;
}

static struct early *early_find(const char *name)
{
	for (size_t i = 0; i < n_early; i++)
		if (E[i].vm && strcmp(E[i].m->name, name) == 0)
			return &E[i];
	return NULL;
}

/* What an early start holds and nobody restores: its QEMU ended, its RAM
 * released (FINISH), as for a session nobody retrieves. */
static void early_release(struct early *e)
{
	if (e->taken)
		vm_drop_early(e->vm); /* the configuration's VM: it stays, stopped */
	else
		vm_free(e->vm);
	if (e->session >= 0) {
		if (luo_finish(e->session) == 0)
			log_info("update: released the LUO session %s%s and the RAM it held", handoff_session_prefix(),
				 e->m->name);
		close(e->session);
	}
	if (e->state_fd >= 0)
		close(e->state_fd);
	vmconf_free(e->mach);
	memset(e, 0, sizeof(*e));
}

static void early_release_all(void)
{
	for (size_t i = 0; i < n_early; i++)
		if (E[i].vm)
			early_release(&E[i]);
	n_early = 0;
}

/* A VM whose QEMU started early: what update_prespawn retrieved becomes x's. */
static void adopt_early(struct rvm *x, struct early *e)
{
	x->session = e->session;
	x->state_fd = e->state_fd;
	x->t_spawn = e->t_spawn;
	e->session = e->state_fd = -1;
	/* Its conf pointed into e->mach: from here it is the configuration's
	 * until run_saved_machine takes e->mach, or e->mach is freed. */
	vm_leave_early_machine(x->vm);
	if (e->why[0]) {
		snprintf(x->why, sizeof(x->why), "%s", e->why);
		x->ok = false;
		vmconf_free(e->mach);
	} else if (handoff_vm_disks_check(x->m, x->why, sizeof(x->why)) < 0) {
		/* /state is there now: the disks are checked before QEMU opens them. */
		x->ok = false;
		vmconf_free(e->mach);
	} else {
		x->ok = run_saved_machine(x, e->mach); /* takes e->mach, whatever it returns */
	}
	e->mach = NULL;
	x->preconfig = x->ok && e->spawned;
	e->vm = NULL; /* x's now */
}

/* Retrieve and start every QEMU first, so their start-ups overlap. */
static void spawn_all(struct resume *R)
{
	for (size_t i = 0; i < R->h->n_vms; i++) {
		struct handoff_vm *m = &R->h->vms[i];
		struct vm *vm = vm_find(R->c->vms, R->c->n_vms, m->name);
		/* The recorded accelerator, backing and confinement, never re-resolved. */
		struct vm_machine mach = { accel_from(m->accel), ram_from(m->ram_backing), R->h->sandbox != 0 };
		struct rvm *x = &R->rv[R->n];
		struct early *early = early_find(m->name);
		char e[256];
		double t_retrieve = realtime_ms();
		watchdog_feed(); /* each QEMU's start is a bounded wait */
		if (!vm) {
			log_err("update: %s is in the manifest but not in the configuration: its RAM is released, "
				"its state set aside", m->name);
			snprintf(R->stale, sizeof(R->stale), "%s not in the configuration", m->name);
			if (early)
				early_release(early);
			else
				release_session(R, m->name);
			continue;
		}
		R->n++;
		memset(x, 0, sizeof(*x));
		x->vm = vm;
		x->m = m;
		x->session = x->state_fd = -1;
		if (early && early->vm == vm) {
			adopt_early(x, early);
			if (!x->ok) {
				give_up(x);
				continue;
			}
			if (x->preconfig) {
				vm_nics_attach(vm); /* the bridges exist now */
				continue;
			}
			/* retrieved, but its QEMU did not start: it starts now */
		} else {
			x->ok = get_state(R, x) && run_saved_machine(x, NULL);
			if (!x->ok) {
				give_up(x);
				continue;
			}
		}
		x->t_spawn = realtime_ms();
		/* LUO: the preserved RAM; full-RAM: a fresh memfd the stream fills.
		 * Forked only: the next QEMU starts while this one comes up. */
		if (vm_spawn_restore(vm, &mach, R->luo, false, e, sizeof(e)) < 0) {
			snprintf(x->why, sizeof(x->why), "QEMU: %s", e);
			give_up(x);
			continue;
		}
		log_info("%s: state %s in %.1f ms", vm_name(vm), R->luo ? "and RAM retrieved" : "opened",
			 x->t_spawn - t_retrieve);
	}
}

/* An early QEMU failed: the RAM and the state are still ours, so one
 * started the usual way takes over (false: that failed too, given up). */
static bool early_failed(struct resume *R, struct rvm *x, const char *e)
{
	struct vm_machine mach = { accel_from(x->m->accel), ram_from(x->m->ram_backing), R->h->sandbox != 0 };
	char e2[256];

	log_warn("%s: the QEMU started before /state failed (%s): a fresh one", vm_name(x->vm), e);
	x->preconfig = false;
	vm_end(x->vm, 0);
	x->t_spawn = realtime_ms();
	if (vm_spawn_restore(x->vm, &mach, R->luo, false, e2, sizeof(e2)) < 0) {
		snprintf(x->why, sizeof(x->why), "QEMU: %s", e2);
		give_up(x);
		return false;
	}
	return true;
}

/* Every QEMU forked: now each one's QMP handshake (they came up side by
 * side, so this waits for the slowest, not for the sum). The early ones
 * are told to create their machines as soon as each answers, and their
 * machines are created side by side too. */
static void greet_all(struct resume *R)
{
	char e[256];

	for (size_t i = 0; i < R->n; i++) {
		struct rvm *x = &R->rv[i];
		if (!x->ok || !x->preconfig)
			continue;
		watchdog_feed(); /* each handshake is a bounded wait */
		if (vm_wait_qmp(x->vm, e, sizeof(e)) < 0 || vm_exit_preconfig_begin(x->vm, e, sizeof(e)) < 0)
			(void)early_failed(R, x, e);
	}
	for (size_t i = 0; i < R->n; i++) {
		struct rvm *x = &R->rv[i];
		if (!x->ok || !x->preconfig)
			continue;
		watchdog_feed();
		if (vm_exit_preconfig_finish(x->vm, e, sizeof(e)) < 0)
			(void)early_failed(R, x, e);
		else
			x->t_started = realtime_ms();
	}
	for (size_t i = 0; i < R->n; i++) {
		struct rvm *x = &R->rv[i];
		if (!x->ok)
			continue;
		watchdog_feed(); /* each handshake is a bounded wait */
		if (vm_wait_qmp(x->vm, e, sizeof(e)) < 0) {
			snprintf(x->why, sizeof(x->why), "QEMU: %s", e);
			give_up(x);
			continue;
		}
		if (!x->t_started)
			x->t_started = realtime_ms();
		log_info("%s: QEMU up in %.1f ms", vm_name(x->vm), x->t_started - x->t_spawn);
		event_update_phase("qemu_start", vm_name(x->vm), x->t_started - R->c->boot_realtime_ms);
	}
}

static void record(struct resume *R, struct rvm *x, double t_restored)
{
	struct vm_update_record rec = { .valid = true, .kind = "update", .mode = R->luo ? "luo" : "full-ram" };
	double t_init = R->c->boot_realtime_ms;

	rec.stopped_at = x->m->stopped_at;
	rec.save_ms = x->m->save_ms;
	rec.kexec_ms = R->kexec_ms;
	rec.qemu_start_ms = x->t_started - t_init;
	rec.restore_ms = t_restored - x->t_started;
	rec.resume_ms = realtime_ms() - t_restored;
	/* old init's stop to reboot(), + the kexec, + this init's start to now */
	rec.blackout_ms = (R->h->kexec_at - x->m->stopped_at) + R->kexec_ms + (realtime_ms() - t_init);
	rec.vmstate_bytes = x->m->vmstate_bytes;
	rec.ram_transferred = x->m->ram_transferred;
	vm_set_last_update(x->vm, &rec);
	log_info("%s: live update done (%s): blackout %.1f ms (save %.1f, kexec %.1f, qemu start %.1f, "
		 "restore %.1f, resume %.1f), vmstate %lld bytes", vm_name(x->vm), rec.mode, rec.blackout_ms,
		 rec.save_ms, rec.kexec_ms, rec.qemu_start_ms, rec.restore_ms, rec.resume_ms,
		 (long long)rec.vmstate_bytes);
	event_update_phase("restore", vm_name(x->vm), rec.restore_ms);
	event_update_phase("resume", vm_name(x->vm), rec.resume_ms);
	event_update_phase("blackout", vm_name(x->vm), rec.blackout_ms);
}

/* Every state handed over first, so the guests load side by side; then
 * each one waited for and let run. */
static void restore_all(struct resume *R)
{
	for (size_t i = 0; i < R->n; i++) {
		struct rvm *x = &R->rv[i];
		x->begun = x->ok && vm_restore_begin(x->vm, x->state_fd, R->luo, x->why, sizeof(x->why)) == 0;
	}
	for (size_t i = 0; i < R->n; i++) {
		struct rvm *x = &R->rv[i];
		double t_restored;
		int r = -EIO;
		if (!x->ok)
			continue;
		watchdog_feed();
		if (x->begun)
			r = vm_restore_finish(x->vm, x->why, sizeof(x->why));
		if (r < 0) /* the preserved RAM is worth one more QEMU */
			r = vm_restore_in_place(x->vm, x->state_fd, R->luo, 1, NULL, x->why, sizeof(x->why));
		t_restored = realtime_ms();
		if (r < 0) {
			give_up(x);
			continue;
		}
		vm_set_state(x->vm, VM_RUNNING, "restored after the kexec");
		if (x->session >= 0 && (r = luo_finish(x->session)) < 0)
			log_errno(LOG_WARN, r, "%s: LUO FINISH", vm_name(x->vm));
		record(R, x, t_restored);
	}
}

/* Close what is left; a VM not restored says why, and the manifest is
 * consumed, or set aside with the states when anything went wrong. */
static void finish(struct resume *R)
{
	for (size_t i = 0; i < R->n; i++) {
		struct rvm *x = &R->rv[i];
		if (x->session >= 0)
			close(x->session);
		if (x->state_fd >= 0)
			close(x->state_fd);
		if (!x->ok) {
			log_err("%s: not restored (%s): it starts fresh, its saved state goes to %s/stale/",
				vm_name(x->vm), x->why, R->dir);
			snprintf(R->stale, sizeof(R->stale), "%s: %s", vm_name(x->vm), x->why);
		}
	}
	if (R->stale[0])
		(void)handoff_set_aside(R->dir, R->h, R->stale);
	else
		(void)handoff_consume(R->dir, R->h);
}

int update_early_manifest(struct handoff *h, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	int devfd, sfd = -1, fd = -1, r;

	devfd = luo_open();
	if (devfd < 0)
		return -ENOENT;
	sfd = luo_retrieve_session(devfd, HANDOFF_SESSION);
	if (sfd < 0) {
		r = sfd == -ENOENT ? -ENOENT : sfd;
		snprintf(err, errlen, "LUO session %s: %s", HANDOFF_SESSION, strerror(-r));
		goto out;
	}
	fd = luo_retrieve_fd(sfd, HANDOFF_TOKEN);
	if (fd < 0) {
		r = fd;
		snprintf(err, errlen, "RETRIEVE_FD of the manifest: %s", strerror(-r));
		goto out;
	}
	buf = malloc(HANDOFF_MAX_SIZE + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = pread(fd, buf + len, HANDOFF_MAX_SIZE + 1 - len, (off_t)len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			snprintf(err, errlen, "reading the manifest's memfd: %s", strerror(errno));
			goto out;
		}
		if (n == 0 || (len += (size_t)n) > HANDOFF_MAX_SIZE)
			break;
	}
	r = handoff_parse(buf, len, h, err, errlen);
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	if (sfd >= 0) {
		(void)luo_finish(sfd); /* the copy is read: free it */
		close(sfd);
	}
	close(devfd);
	return r;
}

void update_resume(const struct update_ctx *c, struct handoff *early, struct update_resume_result *ret)
{
	struct resume R = { .c = c, .devfd = -1 };
	char err[512];
	int r;

	memset(ret, 0, sizeof(*ret));
	if (!c->state_mounted) {
		/* No manifest to describe the preserved RAM: it cannot be
		 * restored onto, and must not stay pinned until the next update. */
		R.devfd = luo_open();
		if (R.devfd >= 0 && release_sessions(c, R.devfd) > 0) {
			snprintf(R.stale, sizeof(R.stale), "%s is not mounted: without the manifest the RAM preserved "
				 "for our VMs could not be restored onto and was released", c->state_dir);
			log_err("update: %s", R.stale);
		}
		goto out;
	}
	R.rv = calloc(HANDOFF_MAX_VMS, sizeof(*R.rv));
	if (!R.rv)
		goto out;
	snprintf(R.dir, sizeof(R.dir), "%s/luoinit", c->state_dir);
	if (early) {
		/* The same bytes as the file (update.c), read before /state. */
		R.h = early;
		early = NULL;
		ret->manifest = "luo";
	} else {
		R.h = calloc(1, sizeof(*R.h));
		if (!R.h)
			goto out;
		r = handoff_read(R.dir, R.h, err, sizeof(err));
		if (r == -ENOENT)
			goto out;
		if (r < 0) {
			refuse_manifest(&R, err);
			goto out;
		}
		ret->manifest = "state";
	}
	R.luo = strcmp(R.h->mode, "luo") == 0;
	time_kexec(&R);
	ret->kexec_ms = R.kexec_ms;
	hold_stopped(&R);
	open_luo(&R);
	spawn_all(&R);
	greet_all(&R);
	restore_all(&R);
	finish(&R);
out:
	/* Early starts nobody took over (no /state, no such VM any more). */
	early_release_all();
	snprintf(ret->error, sizeof(ret->error), "%s", R.stale);
	if (early) {
		handoff_free(early);
		free(early);
	}
	if (R.devfd >= 0)
		close(R.devfd);
	if (R.h)
		handoff_free(R.h);
	free(R.h);
	free(R.rv);
}
