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

static int retrieve(struct resume *R, struct rvm *x)
{
	const struct handoff_vm *m = x->m;
	char sname[64];
	int64_t sz;
	int fd;

	snprintf(sname, sizeof(sname), "%s%s", handoff_session_prefix(), m->name);
	x->session = luo_retrieve_session(R->devfd, sname);
	if (x->session < 0) {
		snprintf(x->why, sizeof(x->why), "LUO session %s: %s", sname, strerror(-x->session));
		return x->session;
	}
	fd = luo_retrieve_fd(x->session, handoff_ram_token(R->h));
	if (fd < 0) {
		snprintf(x->why, sizeof(x->why), "RETRIEVE_FD of the RAM (generation %016" PRIx64 "): %s",
			 R->h->generation, strerror(-fd));
		return fd;
	}
	vm_set_ram(x->vm, fd);
	if ((sz = ram_size(fd)) != m->ram_size) {
		snprintf(x->why, sizeof(x->why), "RAM is %lld bytes, the manifest says %lld", (long long)sz,
			 (long long)m->ram_size);
		return -EINVAL;
	}
	x->state_fd = luo_retrieve_fd(x->session, handoff_state_token(R->h));
	if (x->state_fd < 0) {
		snprintf(x->why, sizeof(x->why), "RETRIEVE_FD of the state: %s", strerror(-x->state_fd));
		return x->state_fd;
	}
	if ((sz = ram_size(x->state_fd)) != m->vmstate_bytes) {
		snprintf(x->why, sizeof(x->why), "state is %lld bytes, the manifest says %lld", (long long)sz,
			 (long long)m->vmstate_bytes);
		return -EINVAL;
	}
	return 0;
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
static bool run_saved_machine(struct rvm *x)
{
	struct vmconf *mach = NULL;
	int r;

	if (!x->m->saved)
		return true;
	if (handoff_vm_machine(x->m, &mach, x->why, sizeof(x->why)) < 0)
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

/* Retrieve and start every QEMU first, so their start-ups overlap. */
static void spawn_all(struct resume *R)
{
	for (size_t i = 0; i < R->h->n_vms; i++) {
		struct handoff_vm *m = &R->h->vms[i];
		struct vm *vm = vm_find(R->c->vms, R->c->n_vms, m->name);
		/* The recorded accelerator, backing and confinement, never re-resolved. */
		struct vm_machine mach = { accel_from(m->accel), ram_from(m->ram_backing), R->h->sandbox != 0 };
		struct rvm *x = &R->rv[R->n];
		char e[256];
		double t_retrieve = realtime_ms();
		watchdog_feed(); /* each QEMU's start is a bounded wait */
		if (!vm) {
			log_err("update: %s is in the manifest but not in the configuration: its RAM is released, "
				"its state set aside", m->name);
			snprintf(R->stale, sizeof(R->stale), "%s not in the configuration", m->name);
			release_session(R, m->name);
			continue;
		}
		R->n++;
		memset(x, 0, sizeof(*x));
		x->vm = vm;
		x->m = m;
		x->session = x->state_fd = -1;
		x->ok = get_state(R, x) && run_saved_machine(x);
		if (!x->ok) {
			give_up(x);
			continue;
		}
		x->t_spawn = realtime_ms();
		/* LUO: the preserved RAM; full-RAM: a fresh memfd the stream fills.
		 * Forked only: the next QEMU starts while this one comes up. */
		if (vm_spawn_restore(vm, &mach, R->luo, e, sizeof(e)) < 0) {
			snprintf(x->why, sizeof(x->why), "QEMU: %s", e);
			give_up(x);
			continue;
		}
		log_info("%s: state %s in %.1f ms", vm_name(vm), R->luo ? "and RAM retrieved" : "opened",
			 x->t_spawn - t_retrieve);
	}
}

/* Every QEMU forked: now each one's QMP handshake (they came up side by
 * side, so this waits for the slowest, not for the sum). */
static void greet_all(struct resume *R)
{
	for (size_t i = 0; i < R->n; i++) {
		struct rvm *x = &R->rv[i];
		char e[256];
		if (!x->ok)
			continue;
		watchdog_feed(); /* each handshake is a bounded wait */
		if (vm_wait_qmp(x->vm, e, sizeof(e)) < 0) {
			snprintf(x->why, sizeof(x->why), "QEMU: %s", e);
			give_up(x);
			continue;
		}
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
