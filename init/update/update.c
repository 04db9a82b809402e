/* The host kernel live update, design.md §6, in the order it happens:
 *   update_start()        before the blackout: checks, kexec load, LUO sessions
 *                         and PRESERVE_FD of the RAM (slow: pins pages)
 *   update_run_pending()  the blackout: save every VM at once, quit QEMU,
 *                         preserve the states, manifest, unmount, kexec
 *   update_resume()       in the new init: retrieve, restore, FINISH
 * Any failure before the kexec rolls back: each VM is resumed, or restored
 * in place from the memfds the init still holds. */
#include "update/update.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "vm/cpr.h"
#include "update/handoff.h"
#include "update/kexec.h"
#include "pid1/event.h"
#include "pid1/log.h"
#include "pid1/loop.h"
#include "update/luo.h"
#include "pid1/mounts.h"
#include "vm/qmp.h"
#include "vm/ram.h"
#include "vm/resolve.h"
#include "vm/spawn.h"
#include "pid1/statefs.h"
#include "supervisor/supervisor.h"
#include "pid1/tsc.h"
#include "vm/vm.h"

#define SAVE_TIMEOUT    120000   /* full-RAM saves of GiBs under TCG are slow */
#define LUO_DIR         "luoinit"

struct pvm {                    /* one VM going through the update */
	struct vm *vm;
	int session;                /* LUO session fd, -1 */
	int state_fd;               /* memfd (luo) or file (full-ram), -1 */
	bool quit;                  /* its QEMU is gone: rollback restores in place */
	struct cpr_stats cs;
	char path[256];             /* full-ram state file */
	char machine[64], cpu[64];  /* what QEMU resolved the config's names to */
};

static struct {
	bool pending;
	bool luo;
	int devfd;
	uint64_t generation;
	double tsc_hz;
	char fault[32];
	char dir[200];              /* /state/luoinit */
	size_t n;
	struct pvm p[HANDOFF_MAX_VMS];
} U = { .devfd = -1 };

static bool fault(const char *name)
{
	if (strcmp(U.fault, name) != 0)
		return false;
	log_warn("update: injecting fault '%s' (test switch)", name);
	return true;
}

static void drop_sessions(void)
{
	for (size_t i = 0; i < U.n; i++) {
		/* Closing a session unpreserves everything in it. */
		if (U.p[i].session >= 0)
			close(U.p[i].session);
		U.p[i].session = -1;
		if (U.p[i].state_fd >= 0)
			close(U.p[i].state_fd);
		U.p[i].state_fd = -1;
		if (U.p[i].path[0])
			(void)unlink(U.p[i].path);
		U.p[i].path[0] = 0;
	}
	if (U.devfd >= 0)
		close(U.devfd);
	U.devfd = -1;
	U.n = 0;
	U.pending = false;
}

static void rollback_prepare(void)
{
	int r = kexec_unload();

	if (r < 0)
		log_errno(LOG_WARN, r, "update rollback: kexec unload");
	drop_sessions();
}

static int read_proc_cmdline(char *buf, size_t len)
{
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static int check_file(const char *what, const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode) || st.st_size == 0) {
		snprintf(err, errlen, "%s %s: not a regular non-empty file", what, path);
		return -EINVAL;
	}
	return 0;
}

static const char *kexec_hint(int r)
{
	switch (-r) {
	case ENOEXEC: return " (not a kernel kexec_file_load accepts: bzImage built with RELOCATABLE?)";
	case EADDRNOTAVAIL: return " (the images do not fit the KHO scratch area: kho_scratch=)";
	case EPERM: return " (kexec is disabled: kernel.kexec_load_disabled?)";
	case ENOSYS: return " (kernel without KEXEC_FILE)";
	default: return "";
	}
}

int update_start(const struct update_req *req, json_object **ret, char *err, size_t errlen)
{
	const struct sup_opts *so = sup_opts();
	const struct vmconf *c = sup_config();
	const char *kernel, *initrd, *cmdline;
	static char cmdbuf[4096];
	size_t nvms;
	struct vm *vms = sup_vms(&nvms);
	int r;

	if (U.pending) {
		snprintf(err, errlen, "an update is already in progress");
		return -EBUSY;
	}
	/* Only running guests are carried over; one in between states would be
	 * started afresh after the kexec, its guest lost: refuse instead. */
	for (size_t i = 0; i < nvms; i++) {
		const struct vm *v = &vms[i];
		if (v->stopping || (v->pid > 0 && v->state != VM_RUNNING)) {
			snprintf(err, errlen, "%s is %s: try again when it is running or stopped", v->conf->name,
				 v->stopping ? "being stopped" : vm_state_name(v->state));
			return -EBUSY;
		}
	}
	if (!so->pid1) {
		snprintf(err, errlen, "a host kernel update needs luoinit as PID 1 (this is --host mode)");
		return -EPERM;
	}
	if (!so->state_mounted) {
		snprintf(err, errlen, "/state is not mounted: the update manifest needs it");
		return -ENODEV;
	}
	kernel = req->kernel ? req->kernel : c ? c->update_kernel : NULL;
	initrd = req->initrd ? req->initrd : c ? c->update_initrd : NULL;
	cmdline = req->cmdline ? req->cmdline : c ? c->update_cmdline : NULL;
	if (!kernel) {
		snprintf(err, errlen, "no kernel: give kernel=PATH or set update.kernel in the config");
		return -EINVAL;
	}
	if ((r = check_file("kernel", kernel, err, errlen)) < 0 ||
	    (initrd && (r = check_file("initrd", initrd, err, errlen)) < 0))
		return r;
	if (!cmdline) {
		if ((r = read_proc_cmdline(cmdbuf, sizeof(cmdbuf))) < 0) {
			snprintf(err, errlen, "/proc/cmdline: %s", strerror(-r));
			return r;
		}
		cmdline = cmdbuf;
	}
	snprintf(U.fault, sizeof(U.fault), "%s", req->fault ? req->fault : "");
	snprintf(U.dir, sizeof(U.dir), "%s/%s", so->state_dir, LUO_DIR);
	if (mkdir(U.dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", U.dir, strerror(errno));
		return -errno;
	}

	U.devfd = luo_open();
	U.luo = U.devfd >= 0;
	if (U.devfd < 0 && U.devfd != -ENOENT) {
		snprintf(err, errlen, "%s: %s", LUO_DEVICE, strerror(-U.devfd));
		return U.devfd;
	}
	if (!U.luo) {
		/* Full-RAM fallback: every byte of guest RAM goes to /state. */
		struct statvfs sv;
		uint64_t need = 0;
		for (size_t i = 0; i < nvms; i++)
			if (vms[i].state == VM_RUNNING)
				need += ((uint64_t)vms[i].conf->memory_mib + 16) << 20;
		if (statvfs(U.dir, &sv) < 0 || (uint64_t)sv.f_bavail * sv.f_frsize < need ||
		    fault("no-space")) {
			U.fault[0] = 0;
			snprintf(err, errlen, "not enough space on /state for a full-RAM save (%" PRIu64 " MiB needed)",
				 need >> 20);
			return -ENOSPC;
		}
	}
	if (fault("kexec-load")) {
		snprintf(err, errlen, "kexec_file_load %s: injected failure", kernel);
		drop_sessions();
		return -ENOEXEC;
	}
	r = kexec_load(kernel, initrd, cmdline);
	if (r < 0) {
		snprintf(err, errlen, "kexec_file_load %s: %s%s", kernel, strerror(-r), kexec_hint(r));
		drop_sessions();
		return r;
	}
	U.generation = handoff_new_generation();
	U.tsc_hz = tsc_hz(); /* 50 ms, before the blackout */
	U.n = 0;
	for (size_t i = 0; i < nvms; i++) {
		struct pvm *p;
		char sname[64];
		if (vms[i].state != VM_RUNNING)
			continue;
		p = &U.p[U.n++];
		memset(p, 0, sizeof(*p));
		p->vm = &vms[i];
		p->session = p->state_fd = -1;
		/* Asked now, while QEMU runs: the manifest records what the
		 * guest runs on, not the alias (a newer QEMU may move it). */
		if (resolve_machine(vms[i].qmp, vms[i].conf->machine, p->machine, sizeof(p->machine), err, errlen) < 0 ||
		    resolve_cpu(vms[i].qmp, vms[i].conf->cpu, p->cpu, sizeof(p->cpu), err, errlen) < 0)
			log_warn("%s: %s; the manifest records the names as configured", vms[i].conf->name, err);
		err[0] = 0;
		if (!U.luo)
			continue;
		snprintf(sname, sizeof(sname), "%s%s", handoff_session_prefix(), vms[i].conf->name);
		p->session = luo_create_session(U.devfd, sname);
		if (p->session < 0) {
			r = p->session;
			snprintf(err, errlen, "LUO session %s: %s", sname, strerror(-r));
			rollback_prepare();
			return r;
		}
		r = fault("preserve-fd") ? -EIO : luo_preserve_fd(p->session, vms[i].ram_fd, U.generation);
		if (r < 0) {
			snprintf(err, errlen, "PRESERVE_FD of %s's RAM: %s", vms[i].conf->name, strerror(-r));
			rollback_prepare();
			return r;
		}
	}
	U.pending = true;
	*ret = json_object_new_object();
	{
		char gen[24];
		snprintf(gen, sizeof(gen), "%016" PRIx64, U.generation);
		json_object_object_add(*ret, "generation", json_object_new_string(gen));
	}
	json_object_object_add(*ret, "mode", json_object_new_string(U.luo ? "luo" : "full-ram"));
	json_object_object_add(*ret, "kernel", json_object_new_string(kernel));
	json_object_object_add(*ret, "vms", json_object_new_int((int)U.n));
	log_info("update: %s kernel %s loaded, %zu VM(s) prepared (%s), blackout next",
		 U.luo ? "LUO" : "full-RAM", kernel, U.n, U.luo ? "RAM preserved" : "no LUO");
	return 0;
}

/* Put every VM of the update back as it was (the kexec will not happen). */
static void rollback_vms(void)
{
	char e[256];

	for (size_t i = 0; i < U.n; i++) {
		struct pvm *p = &U.p[i];
		struct vm *vm = p->vm;
		int r = 0;
		if (!p->quit) {
			/* A QEMU that died meanwhile is the reaper's: its restart
			 * policy applies (its device state is gone with it). */
			if (vm->qmp && cpr_resume(vm->qmp) == 0)
				vm_set_state(vm, VM_RUNNING, "update rolled back");
			continue;
		}
		/* QEMU is gone but the RAM memfd and the state are ours. */
		if (p->state_fd < 0 && p->path[0])
			p->state_fd = open(p->path, O_RDONLY | O_CLOEXEC);
		r = vm_restore_in_place(vm, p->state_fd, U.luo, 2, NULL, e, sizeof(e));
		if (r < 0) {
			/* Its device state cannot be applied: a fresh start is all
			 * that is left (the restart a QEMU crash would get). */
			log_err("%s: rollback restore failed: %s; starting it fresh", vm->conf->name, e);
			vm_end(vm, 0);
			(void)vm_start(vm, e, sizeof(e));
		} else {
			log_info("%s: restored in place after the failed update", vm->conf->name);
		}
	}
}

static void fail_blackout(const char *what)
{
	char msg[512];
	size_t nv;
	struct vm *vms = sup_vms(&nv);

	for (size_t i = 0; i < nv; i++)
		vm_log_open(&vms[i]);

	snprintf(msg, sizeof(msg), "update failed before the kexec, VMs resumed: %s", what);
	log_err("%s", msg);
	sup_set_update_error(msg);
	rollback_vms();
	rollback_prepare();
}

static int open_state(struct pvm *p, char *err, size_t errlen)
{
	const char *name = p->vm->conf->name;

	if (U.luo) {
		p->state_fd = ram_create_state(name);
	} else {
		snprintf(p->path, sizeof(p->path), "%s/%s.vmstate", U.dir, name);
		p->state_fd = open(p->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (p->state_fd < 0)
			p->state_fd = -errno;
	}
	if (p->state_fd < 0) {
		snprintf(err, errlen, "%s: state %s: %s", name, U.luo ? "memfd" : p->path, strerror(-p->state_fd));
		return p->state_fd;
	}
	return 0;
}

/* Rollback: /state back where it was (the manifest must be removed from it). */
static void remount_state(void)
{
	const struct sup_opts *so = sup_opts();

	if (mounts_is_mountpoint(so->state_dir) == 1)
		return;
	if (!so->state_device || statefs_mount(so->state_device, NULL, so->state_dir) < 0)
		log_err("update rollback: cannot mount %s on %s again", so->state_device ? so->state_device : "?",
			so->state_dir);
}

/* Test switch: cut the manifest in half, as a torn write would. */
static void corrupt_manifest(void)
{
	char path[512];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", U.dir, HANDOFF_FILE);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && ftruncate(fd, st.st_size / 2) == 0)
		(void)fsync(fd);
	close(fd);
}

void update_run_pending(void)
{
	const struct sup_opts *so = sup_opts();
	struct handoff *h;
	struct utsname u;
	char e[256], what[512];
	int r;

	if (!U.pending)
		return;
	U.pending = false;
	h = calloc(1, sizeof(*h));
	if (!h) {
		fail_blackout("out of memory");
		return;
	}
	/* Save all VMs at once: each one's blackout starts at its own migrate. */
	for (size_t i = 0; i < U.n; i++) {
		struct pvm *p = &U.p[i];
		if (open_state(p, e, sizeof(e)) < 0 ||
		    cpr_save_begin(p->vm->qmp, p->state_fd, U.luo, &p->cs, e, sizeof(e)) < 0)
			goto save_failed;
	}
	for (size_t i = 0; i < U.n; i++) {
		struct pvm *p = &U.p[i];
		if (fault("qemu-dies") && i == 0) {
			(void)kill(p->vm->pid, SIGKILL);
		}
		r = cpr_save_finish(p->vm->qmp, p->state_fd, SAVE_TIMEOUT, &p->cs, e, sizeof(e));
		if (r < 0)
			goto save_failed;
	}
	for (size_t i = 0; i < U.n; i++)
		vm_end_ask(U.p[i].vm);
	for (size_t i = 0; i < U.n; i++) {
		struct pvm *p = &U.p[i];
		vm_end(p->vm, VM_END_GRACE_MS);
		vm_set_state(p->vm, VM_RESTORING, "saved for the update");
		p->quit = true;
		/* A state file on /state must not keep it busy: synced and closed
		 * now, reopened by its path for a rollback. */
		if (p->path[0]) {
			if (fsync(p->state_fd) < 0)
				log_errno(LOG_WARN, errno, "fsync %s", p->path);
			close(p->state_fd);
			p->state_fd = -1;
		}
		log_info("%s: saved, %lld bytes of state (RAM in stream %lld bytes) in %.1f ms", p->vm->conf->name,
			 (long long)p->cs.vmstate_bytes, (long long)p->cs.ram_total, p->cs.done_at - p->cs.stopped_at);
		event_update_phase("save", p->vm->conf->name, p->cs.done_at - p->cs.stopped_at);
	}
	if (U.luo)
		for (size_t i = 0; i < U.n; i++) {
			struct pvm *p = &U.p[i];
			r = luo_preserve_fd(p->session, p->state_fd, U.generation + 1); /* see handoff.h */
			if (r < 0) {
				snprintf(what, sizeof(what), "PRESERVE_FD of %s's state: %s", p->vm->conf->name, strerror(-r));
				goto failed;
			}
		}

	h->generation = U.generation;
	snprintf(h->mode, sizeof(h->mode), "%s", U.luo ? "luo" : "full-ram");
	snprintf(h->old_kernel, sizeof(h->old_kernel), "%s", uname(&u) == 0 ? u.release : "");
	h->n_vms = U.n;
	for (size_t i = 0; i < U.n; i++) {
		struct pvm *p = &U.p[i];
		struct handoff_vm *m = &h->vms[i];
		const struct vm *vm = p->vm;
		snprintf(m->name, sizeof(m->name), "%s", vm->conf->name);
		m->memory_mib = vm->conf->memory_mib;
		snprintf(m->machine, sizeof(m->machine), "%s", p->machine);
		snprintf(m->cpu, sizeof(m->cpu), "%s", p->cpu);
		if (handoff_vm_save_machine(m, vm->conf, what, sizeof(what)) < 0)
			goto failed;
		snprintf(m->accel, sizeof(m->accel), "%s", vmconf_accel_name(vm->accel));
		snprintf(m->ram_backing, sizeof(m->ram_backing), "%s", vmconf_ram_name(vm->ram_backing));
		snprintf(m->qemu_version, sizeof(m->qemu_version), "%s", vm->qemu_version);
		m->ram_size = ram_size(vm->ram_fd);
		m->vmstate_bytes = p->cs.vmstate_bytes;
		snprintf(m->vmstate_file, sizeof(m->vmstate_file), "%s", p->path);
		m->ram_transferred = p->cs.ram_total;
		m->stopped_at = p->cs.stopped_at;
		m->save_ms = p->cs.done_at - p->cs.stopped_at;
	}
	{
		/* What the operator stopped stays stopped after the kexec. */
		size_t nv;
		const struct vm *vms = sup_vms(&nv);
		for (size_t i = 0; i < nv && h->n_held < HANDOFF_MAX_VMS; i++)
			if (!vms[i].want_running && vms[i].pid <= 0)
				snprintf(h->held[h->n_held++], sizeof(h->held[0]), "%s", vms[i].conf->name);
	}
	/* Faults the new init must survive: a manifest that does not match
	 * the preserved sessions, or that is not valid at all. */
	if (fault("retrieve"))
		h->generation += 2;
	if (fault("size-mismatch"))
		for (size_t i = 0; i < h->n_vms; i++)
			h->vms[i].vmstate_bytes += 1;
	h->tsc_hz = U.tsc_hz;
	h->sandbox = vm_env.sandbox;
	h->kexec_at = realtime_ms();
	h->kexec_tsc = tsc_read();
	r = fault("no-space") ? -ENOSPC : handoff_write(U.dir, h);
	if (r < 0) {
		snprintf(what, sizeof(what), "writing the manifest: %s", strerror(-r));
		goto failed;
	}
	if (fault("corrupt-manifest"))
		corrupt_manifest();
	if (fault("umount") || sup_unmount_state() < 0) {
		snprintf(what, sizeof(what), "unmounting %s failed", so->state_dir);
		remount_state();
		(void)handoff_consume(U.dir, NULL);
		goto failed;
	}
	log_info("update: kexec now (generation %016" PRIx64 ", %zu VM(s), %s)", U.generation, U.n, h->mode);
	r = fault("kexec") ? -EINVAL : kexec_jump();
	/* Still here: the kexec did not happen. */
	snprintf(what, sizeof(what), "reboot(KEXEC): %s", strerror(-r));
	remount_state();
	(void)handoff_consume(U.dir, NULL);
	goto failed;

save_failed:
	snprintf(what, sizeof(what), "save: %s", e);
	for (size_t i = 0; i < U.n; i++)
		if (U.p[i].vm->qmp)
			cpr_save_abort(U.p[i].vm->qmp);
failed:
	if (h)
		handoff_free(h);
	free(h);
	fail_blackout(what);
}
