/* After a kexec: the new init restores the VMs the manifest lists, each on
 * the RAM it was saved with. A VM whose RAM or state cannot be had (cold
 * boot, failed retrieve, size mismatch, corrupt manifest) starts fresh and
 * its state is set aside in stale/, never deleted. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vm/cpr.h"
#include "update/handoff.h"
#include "pid1/event.h"
#include "pid1/log.h"
#include "pid1/loop.h"
#include "update/luo.h"
#include "vm/qmp.h"
#include "vm/ram.h"
#include "vm/spawn.h"
#include "supervisor/supervisor.h"
#include "update/update.h"
#include "vm/vm.h"

#define RESTORE_TIMEOUT 120000

struct rvm {
	struct vm *vm;
	const struct handoff_vm *m;
	int session, state_fd;
	bool ok;
	double t_started;
	char why[256];
};

static enum vmconf_accel accel_from(const char *s)
{
	return strcmp(s, "kvm") == 0 ? VMCONF_ACCEL_KVM : VMCONF_ACCEL_TCG;
}

static enum vmconf_ram ram_from(const char *s)
{
	return strcmp(s, "fdset") == 0 ? VMCONF_RAM_FDSET : VMCONF_RAM_PROCFD;
}

static int retrieve(int devfd, const struct handoff *h, struct rvm *r)
{
	const struct handoff_vm *m = r->m;
	char sname[64];
	int64_t sz;
	int fd;

	snprintf(sname, sizeof(sname), "%s%s", handoff_session_prefix(), m->name);
	r->session = luo_retrieve_session(devfd, sname);
	if (r->session < 0) {
		snprintf(r->why, sizeof(r->why), "LUO session %s: %s", sname, strerror(-r->session));
		return r->session;
	}
	fd = luo_retrieve_fd(r->session, handoff_ram_token(h));
	if (fd < 0) {
		snprintf(r->why, sizeof(r->why), "RETRIEVE_FD of the RAM (generation %016" PRIx64 "): %s",
			 h->generation, strerror(-fd));
		return fd;
	}
	r->vm->ram_fd = fd;
	if ((sz = ram_size(fd)) != m->ram_size) {
		snprintf(r->why, sizeof(r->why), "RAM is %lld bytes, the manifest says %lld", (long long)sz,
			 (long long)m->ram_size);
		return -EINVAL;
	}
	r->state_fd = luo_retrieve_fd(r->session, handoff_state_token(h));
	if (r->state_fd < 0) {
		snprintf(r->why, sizeof(r->why), "RETRIEVE_FD of the state: %s", strerror(-r->state_fd));
		return r->state_fd;
	}
	if ((sz = ram_size(r->state_fd)) != m->vmstate_bytes) {
		snprintf(r->why, sizeof(r->why), "state is %lld bytes, the manifest says %lld", (long long)sz,
			 (long long)m->vmstate_bytes);
		return -EINVAL;
	}
	return 0;
}

/* Sessions nobody will retrieve hold their memory until the next update:
 * FINISH those of our VMs to free it. */
static void release_sessions(int devfd)
{
	size_t n;
	struct vm *vms = sup_vms(&n);

	for (size_t i = 0; devfd >= 0 && i < n; i++) {
		char sname[64];
		int sfd;
		snprintf(sname, sizeof(sname), "%s%s", handoff_session_prefix(), vms[i].conf->name);
		sfd = luo_retrieve_session(devfd, sname);
		if (sfd < 0)
			continue;
		if (luo_finish(sfd) == 0)
			log_info("update: released the unused LUO session %s", sname);
		close(sfd);
	}
}

static void give_up(struct rvm *r)
{
	if (r->session >= 0) {
		/* Frees whatever the session still holds. */
		(void)luo_finish(r->session);
	}
	vm_end(r->vm, 0);
	if (r->vm->ram_fd >= 0)
		close(r->vm->ram_fd);
	r->vm->ram_fd = -1;
	vm_set_state(r->vm, VM_STOPPED, r->why[0] ? r->why : "not restored");
	r->ok = false;
}

void update_resume(const char *state_dir)
{
	const struct sup_opts *so = sup_opts();
	char dir[512], err[512], stale[1024] = "";
	struct handoff *h = calloc(1, sizeof(*h));
	struct rvm *rv = calloc(HANDOFF_MAX_VMS, sizeof(*rv));
	size_t n = 0;
	int devfd = -1, r;
	bool luo;
	double t_init = so->boot_realtime_ms;
	double kexec_ms = 0;

	if (!h || !rv)
		goto out;
	snprintf(dir, sizeof(dir), "%s/luoinit", state_dir);
	r = handoff_read(dir, h, err, sizeof(err));
	if (r == -ENOENT)
		goto out;
	if (r < 0) {
		log_err("update: manifest refused (%s): every VM starts fresh, the manifest goes to %s/stale/", err, dir);
		snprintf(stale, sizeof(stale), "corrupt manifest: %s", err);
		(void)handoff_set_aside(dir, NULL, stale);
		sup_set_update_error(stale);
		devfd = luo_open();
		release_sessions(devfd);
		goto out;
	}
	luo = strcmp(h->mode, "luo") == 0;
	/* The boot probes of QEMU run after the restore (they cost seconds
	 * under TCG): the restored QEMUs run as confined as the saved ones. */
	vm_env.sandbox = h->sandbox;
	/* The clocks of the two kernels are compared through the TSC: the new
	 * kernel's CLOCK_REALTIME comes from a one-second RTC. Phases inside one
	 * init use its own clock. */
	if (h->kexec_tsc && so->boot_tsc > h->kexec_tsc && h->tsc_hz > 0)
		kexec_ms = (double)(so->boot_tsc - h->kexec_tsc) * 1000.0 / h->tsc_hz;
	else
		kexec_ms = t_init - h->kexec_at;
	sup_set_kexec_ms(kexec_ms);
	log_info("update: %.1f ms from reboot() in the old kernel to this init", kexec_ms);
	event_update_phase("kexec", NULL, kexec_ms);
	log_info("update: manifest generation %016" PRIx64 ", mode %s, %zu VM(s), from kernel %s", h->generation,
		 h->mode, h->n_vms, h->old_kernel);
	for (size_t i = 0; i < h->n_held; i++) {
		struct vm *vm = sup_find_vm(h->held[i]);
		if (vm) {
			vm->held = true;
			log_info("update: %s was stopped before the update: it stays stopped", h->held[i]);
		}
	}
	if (luo) {
		devfd = luo_open();
		if (devfd < 0) {
			snprintf(stale, sizeof(stale), "%s: %s (cold boot or LUO off): the saved states cannot be used",
				 LUO_DEVICE, strerror(-devfd));
			log_err("update: %s", stale);
		}
	}
	/* Retrieve and start every QEMU first, so their start-ups overlap. */
	for (size_t i = 0; i < h->n_vms; i++) {
		struct vm *vm = sup_find_vm(h->vms[i].name);
		struct rvm *x = &rv[n];
		char e[256];
		double t_retrieve = realtime_ms(), t_spawn;
		if (!vm) {
			log_err("update: %s is in the manifest but not in the configuration: its state is set aside",
				h->vms[i].name);
			snprintf(stale, sizeof(stale), "%s not in the configuration", h->vms[i].name);
			continue;
		}
		n++;
		memset(x, 0, sizeof(*x));
		x->vm = vm;
		x->m = &h->vms[i];
		x->session = x->state_fd = -1;
		x->ok = true;
		if (vm->conf->memory_mib != x->m->memory_mib) {
			snprintf(x->why, sizeof(x->why), "memory_mib changed from %u to %u", x->m->memory_mib,
				 vm->conf->memory_mib);
			x->ok = false;
		} else if (luo) {
			if (devfd < 0) {
				snprintf(x->why, sizeof(x->why), "no LUO");
				x->ok = false;
			} else if (retrieve(devfd, h, x) < 0) {
				x->ok = false;
			}
		} else {
			x->state_fd = open(x->m->vmstate_file, O_RDONLY | O_CLOEXEC);
			if (x->state_fd < 0) {
				snprintf(x->why, sizeof(x->why), "%s: %s", x->m->vmstate_file, strerror(errno));
				x->ok = false;
			}
		}
		if (!x->ok) {
			give_up(x);
			continue;
		}
		/* The recorded accelerator and backing, never re-resolved. */
		t_spawn = realtime_ms();
		vm->accel = accel_from(x->m->accel);
		vm->ram_backing = ram_from(x->m->ram_backing);
		vm->want_running = true;
		/* LUO: the preserved RAM; full-RAM: a fresh memfd the stream fills. */
		if (vm_spawn(vm, luo, true, e, sizeof(e)) < 0) {
			snprintf(x->why, sizeof(x->why), "QEMU: %s", e);
			give_up(x);
			continue;
		}
		x->t_started = realtime_ms();
		log_info("%s: state %s in %.1f ms, QEMU up in %.1f ms", vm->conf->name,
			 luo ? "and RAM retrieved" : "opened", t_spawn - t_retrieve, x->t_started - t_spawn);
		event_update_phase("qemu_start", vm->conf->name, x->t_started - t_init);
	}
	for (size_t i = 0; i < n; i++) {
		struct rvm *x = &rv[i];
		struct vm_update_record rec = { .valid = true, .kind = "update", .mode = luo ? "luo" : "full-ram" };
		double t_restored;
		if (!x->ok)
			continue;
		r = cpr_restore(x->vm->qmp, x->state_fd, luo, RESTORE_TIMEOUT, x->why, sizeof(x->why));
		if (r < 0) /* the preserved RAM is worth one more QEMU */
			r = vm_restore_in_place(x->vm, x->state_fd, luo, 1, NULL, x->why, sizeof(x->why));
		t_restored = realtime_ms();
		if (r < 0) {
			give_up(x);
			continue;
		}
		vm_set_state(x->vm, VM_RUNNING, "restored after the kexec");
		if (x->session >= 0 && (r = luo_finish(x->session)) < 0)
			log_errno(LOG_WARN, r, "%s: LUO FINISH", x->vm->conf->name);
		rec.stopped_at = x->m->stopped_at;
		rec.save_ms = x->m->save_ms;
		rec.kexec_ms = kexec_ms;
		rec.qemu_start_ms = x->t_started - t_init;
		rec.restore_ms = t_restored - x->t_started;
		rec.resume_ms = realtime_ms() - t_restored;
		/* old init's stop to reboot(), + the kexec, + this init's start to now */
		rec.blackout_ms = (h->kexec_at - x->m->stopped_at) + kexec_ms + (realtime_ms() - t_init);
		rec.vmstate_bytes = x->m->vmstate_bytes;
		rec.ram_transferred = x->m->ram_transferred;
		x->vm->last_update = rec;
		log_info("%s: live update done (%s): blackout %.1f ms (save %.1f, kexec %.1f, qemu start %.1f, "
			 "restore %.1f, resume %.1f), vmstate %lld bytes", x->vm->conf->name, rec.mode, rec.blackout_ms,
			 rec.save_ms, rec.kexec_ms, rec.qemu_start_ms, rec.restore_ms, rec.resume_ms,
			 (long long)rec.vmstate_bytes);
		event_update_phase("restore", x->vm->conf->name, rec.restore_ms);
		event_update_phase("resume", x->vm->conf->name, rec.resume_ms);
		event_update_phase("blackout", x->vm->conf->name, rec.blackout_ms);
	}
	for (size_t i = 0; i < n; i++) {
		struct rvm *x = &rv[i];
		if (x->session >= 0)
			close(x->session);
		if (x->state_fd >= 0)
			close(x->state_fd);
		if (!x->ok) {
			log_err("%s: not restored (%s): it starts fresh, its saved state goes to %s/stale/",
				x->vm->conf->name, x->why, dir);
			snprintf(stale, sizeof(stale), "%s: %s", x->vm->conf->name, x->why);
		}
	}
	if (stale[0]) {
		sup_set_update_error(stale);
		(void)handoff_set_aside(dir, h, stale);
	} else {
		(void)handoff_consume(dir, h);
	}
out:
	if (devfd >= 0)
		close(devfd);
	free(h);
	free(rv);
}
